"""Variational families, selectable by object or by name."""

from __future__ import annotations

from collections.abc import Callable

from vifit.errors import ConfigError
from vifit.families.base import Family
from vifit.families.discrete import Bernoulli, Categorical
from vifit.families.gaussian import FullRank, LowRank, MeanField

_REGISTRY: dict[str, Callable[[], Family]] = {
    "meanfield": MeanField,
    "fullrank": FullRank,
    "lowrank": LowRank,
    "bernoulli": Bernoulli,
    "categorical": Categorical,
}


def register_family(name: str, factory: Callable[[], Family]) -> None:
    """Make ``factory()`` available as ``family=name`` in the API and the CLI."""
    _REGISTRY[name] = factory


def family_names() -> list[str]:
    return sorted(_REGISTRY)


def get_family(spec: str | Family) -> Family:
    """A Family from an object (returned as is) or a registered name."""
    if isinstance(spec, Family):
        return spec
    if isinstance(spec, str) and spec in _REGISTRY:
        return _REGISTRY[spec]()
    raise ConfigError(f"unknown family {spec!r}; choose one of {', '.join(family_names())}.")


__all__ = ["Bernoulli", "Categorical", "Family", "FullRank", "LowRank", "MeanField", "family_names", "get_family",
           "register_family"]
