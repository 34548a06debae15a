"""Gradient estimators, selectable by object or by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from vifit.errors import ConfigError
from vifit.estimators.base import Aux, Estimator
from vifit.estimators.dreg import DReG
from vifit.estimators.local import LocalExpectation
from vifit.estimators.pathwise import STL, Reparam
from vifit.estimators.relaxed import Relaxed
from vifit.estimators.score import ScoreFunction
from vifit.estimators.snis import SNIS
from vifit.estimators.stratified import Stratified

_REGISTRY: dict[str, Callable[..., Estimator]] = {
    "score": ScoreFunction,
    "score_plain": lambda: ScoreFunction(baseline=False, control_variate=False),
    "reparam": Reparam,
    "stl": STL,
    "dreg": DReG,
    "snis": SNIS,
    "rb": LocalExpectation,
    "relaxed": Relaxed,
    "stratified": Stratified,
}


def register_estimator(name: str, factory: Callable[..., Estimator]) -> None:
    _REGISTRY[name] = factory


def estimator_names() -> list[str]:
    return sorted(_REGISTRY)


def get_estimator(spec: str | Estimator, **options: Any) -> Estimator:
    """An Estimator from an object (returned as is) or a registered name; ``options`` (e.g.
    ``temperature=0.3``, ``baseline=False``) set its fields, ``None`` values are ignored."""
    if isinstance(spec, Estimator):
        return spec
    if not (isinstance(spec, str) and spec in _REGISTRY):
        raise ConfigError(
            f"unknown estimator {spec!r}; choose one of {', '.join(estimator_names())}.")
    factory = _REGISTRY[spec]
    options = {k: v for k, v in options.items() if v is not None}
    if not options:
        return factory()
    known = ({f.name for f in dataclasses.fields(factory)}
             if isinstance(factory, type) and dataclasses.is_dataclass(factory) else set())
    extra = sorted(set(options) - known)
    if extra:
        raise ConfigError(f"estimator {spec!r} has no option {', '.join(extra)} "
                          f"(it takes {', '.join(sorted(known)) or 'no options'}).")
    return factory(**options)


__all__ = ["Aux", "DReG", "Estimator", "LocalExpectation", "Relaxed", "Reparam", "SNIS", "STL",
           "ScoreFunction", "Stratified", "estimator_names", "get_estimator",
           "register_estimator"]
