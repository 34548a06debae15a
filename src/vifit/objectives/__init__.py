"""Objectives, selectable by object or by name."""

from __future__ import annotations

from collections.abc import Callable

from vifit.errors import ConfigError
from vifit.objectives.base import Objective
from vifit.objectives.elbo import ELBO

_REGISTRY: dict[str, Callable[[], Objective]] = {"elbo": ELBO}


def register_objective(name: str, factory: Callable[[], Objective]) -> None:
    _REGISTRY[name] = factory


def objective_names() -> list[str]:
    return sorted(_REGISTRY)


def get_objective(spec: str | Objective) -> Objective:
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, str) and spec in _REGISTRY:
        return _REGISTRY[spec]()
    raise ConfigError(f"unknown objective {spec!r}; choose one of {', '.join(objective_names())}.")


__all__ = ["ELBO", "Objective", "get_objective", "objective_names", "register_objective"]
