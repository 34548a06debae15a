"""Family names with settings, ``"name:key=value,key=value"``, for the CLI and for ``fit``."""

from __future__ import annotations

import dataclasses
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
        known = {f.name for f in dataclasses.fields(factory)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConfigError(f"family {name!r} has no setting {', '.join(unknown)}; its "
                              f"settings are {', '.join(sorted(known)) or 'none'}.")
    return factory(**kwargs)
