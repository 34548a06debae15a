"""Errors a user can act on. Each message says what was wrong and what to do."""


class VifitError(Exception):
    """Base class: every error vifit raises on purpose."""


class TargetError(VifitError, ValueError):
    """The log density is unusable as given (shape, value or gradient)."""


class ConfigError(VifitError, ValueError):
    """An unknown name or an incompatible combination of options."""


class ModelFileError(VifitError):
    """A model file that is missing or does not define what vifit needs."""


def describe(exc: BaseException) -> str:
    """``"TypeName: first line of the message"``: the cause of an error in one line, for
    messages that quote an exception from the user's code or from JAX (whose messages run to
    many lines of advice), without a final full stop."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[0].rstrip(".") if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
