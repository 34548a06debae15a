"""Variational families, selectable by object or by name."""

from __future__ import annotations

from collections.abc import Callable

from vifit.errors import ConfigError
from vifit.families.base import Family
from vifit.families.discrete import Bernoulli, Categorical
from vifit.families.flows import RealNVP, SplineFlow
from vifit.families.gaussian import FullRank, LowRank, MeanField
from vifit.families.heavy import HeavyTail
from vifit.families.mixture import Mixture
from vifit.families.spec import build_family, parse_spec

_REGISTRY: dict[str, Callable[..., Family]] = {
    "meanfield": MeanField,
    "fullrank": FullRank,
    "heavytail": HeavyTail,
    "lowrank": LowRank,
    "bernoulli": Bernoulli,
    "categorical": Categorical,
    "mixture": Mixture,
    "realnvp": RealNVP,
    "spline": SplineFlow,
}


def register_family(name: str, factory: Callable[[], Family]) -> None:
    """Make ``factory()`` available as ``family=name`` in the API and the CLI."""
    _REGISTRY[name] = factory


def family_names() -> list[str]:
    return sorted(_REGISTRY)


def get_family(spec: str | Family) -> Family:
    """A Family from an object (returned as is), a registered name, or a name with settings,
    ``"name:key=value,..."`` (e.g. ``"mixture:k=4,component=meanfield"``, ``"spline:layers=6"``).
    """
    if isinstance(spec, Family):
        return spec
    if isinstance(spec, str):
        name, kwargs = parse_spec(spec)
        if name in _REGISTRY:
            return build_family(_REGISTRY[name], name, kwargs)
    raise ConfigError(f"unknown family {spec!r}; choose one of {', '.join(family_names())}.")


__all__ = ["Bernoulli", "Categorical", "Family", "FullRank", "HeavyTail", "LowRank", "MeanField", "Mixture",
           "RealNVP", "SplineFlow", "family_names", "get_family", "register_family"]
