"""Objectives, selectable by object or by name (with options: ``get_objective("iwae", K=16)``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from vifit.errors import ConfigError
from vifit.objectives.base import Objective
from vifit.objectives.cubo import CUBO
from vifit.objectives.elbo import ELBO
from vifit.objectives.forward_kl import ForwardKL
from vifit.objectives.iwae import IWAE
from vifit.objectives.renyi import Renyi

_REGISTRY: dict[str, Callable[..., Objective]] = {
    "elbo": ELBO,
    "iwae": IWAE,
    "renyi": Renyi,
    "chi2": CUBO,
    "cubo": CUBO,
    "forward_kl": ForwardKL,
}


def register_objective(name: str, factory: Callable[..., Objective]) -> None:
    _REGISTRY[name] = factory


def objective_names() -> list[str]:
    return sorted(_REGISTRY)


def get_objective(spec: str | Objective, **options: Any) -> Objective:
    """An Objective from an object (returned as is) or a registered name. ``options`` (e.g.
    ``K=16``, ``alpha=-0.5``) set its fields; ``None`` values are ignored."""
    if isinstance(spec, Objective):
        return spec
    if not (isinstance(spec, str) and spec in _REGISTRY):
        raise ConfigError(
            f"unknown objective {spec!r}; choose one of {', '.join(objective_names())}.")
    factory = _REGISTRY[spec]
    options = {k: v for k, v in options.items() if v is not None}
    if options and isinstance(factory, type) and dataclasses.is_dataclass(factory):
        known = {f.name for f in dataclasses.fields(factory)}
        extra = sorted(set(options) - known)
        if extra:
            takes = ", ".join(sorted(known)) or "no options"
            raise ConfigError(f"objective {spec!r} has no option {', '.join(extra)} "
                              f"(it takes {takes}).")
    return factory(**options)


__all__ = ["CUBO", "ELBO", "IWAE", "ForwardKL", "Objective", "Renyi", "get_objective",
           "objective_names", "register_objective"]
