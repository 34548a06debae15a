"""Gradient estimators, selectable by object or by name."""

from __future__ import annotations

from collections.abc import Callable

from vifit.errors import ConfigError
from vifit.estimators.base import Aux, Estimator
from vifit.estimators.pathwise import STL, Reparam
from vifit.estimators.score import ScoreFunction
from vifit.estimators.stratified import Stratified

_REGISTRY: dict[str, Callable[[], Estimator]] = {
    "score": ScoreFunction,
    "reparam": Reparam,
    "stl": STL,
    "stratified": Stratified,
}


def register_estimator(name: str, factory: Callable[[], Estimator]) -> None:
    _REGISTRY[name] = factory


def estimator_names() -> list[str]:
    return sorted(_REGISTRY)


def get_estimator(spec: str | Estimator) -> Estimator:
    if isinstance(spec, Estimator):
        return spec
    if isinstance(spec, str) and spec in _REGISTRY:
        return _REGISTRY[spec]()
    raise ConfigError(f"unknown estimator {spec!r}; choose one of {', '.join(estimator_names())}.")


__all__ = ["STL", "Aux", "Estimator", "Reparam", "ScoreFunction", "Stratified", "estimator_names",
           "get_estimator", "register_estimator"]
