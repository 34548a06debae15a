"""Errors a user can act on. Each message says what was wrong and what to do."""


class VifitError(Exception):
    """Base class: every error vifit raises on purpose."""


class TargetError(VifitError, ValueError):
    """The log density is unusable as given (shape, value or gradient)."""


class ConfigError(VifitError, ValueError):
    """An unknown name or an incompatible combination of options."""


class ModelFileError(VifitError):
    """A model file that is missing or does not define what vifit needs."""
