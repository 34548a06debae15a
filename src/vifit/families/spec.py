"""Family names with settings, ``"name:key=value,key=value"``, for the CLI and for ``fit``."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from vifit.errors import ConfigError


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"mixture:k=4,component=meanfield"`` -> ``("mixture", {"k": 4, "component": ...})``."""
    name, _, rest = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"family setting {item!r} in {spec!r} is not key=value; "
                              "write e.g. 'mixture:k=4,component=meanfield'.")
        kwargs[key.strip()] = _value(value.strip())
    return name.strip(), kwargs


def build_family(factory: Callable[..., Any], name: str, kwargs: dict[str, Any]) -> Any:
    if kwargs and dataclasses.is_dataclass(factory):
        fields = {f.name: f for f in dataclasses.fields(factory)}
        unknown = sorted(set(kwargs) - set(fields))
        if unknown:
            raise ConfigError(f"family {name!r} has no setting {', '.join(unknown)}; its "
                              f"settings are {', '.join(sorted(fields)) or 'none'}.")
        for key, value in kwargs.items():
            _check_setting(name, key, value, fields[key].default)
    return factory(**kwargs)


def _check_setting(family: str, key: str, value: Any, default: Any) -> None:
    """A setting must have its default's type; counts (ints) are at least 1 and other numbers
    finite and positive (scales, spreads, rates: zero only where the default is zero)."""
    bad = None
    if isinstance(default, bool):
        bad = None if isinstance(value, bool) else "true or false"
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            bad = "a positive integer"
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or value < 0 or (value == 0 and default != 0):
            bad = "a positive number"
    elif isinstance(default, str) and not isinstance(value, str):
        bad = "a name"
    if bad:
        raise ConfigError(f"family {family!r}: setting {key} must be {bad}, got {value!r}.")
