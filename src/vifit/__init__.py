"""vifit: variational inference and evidence estimation on JAX.

    import vifit
    target = vifit.Target(log_density, dim=3)
    result = vifit.fit(target, family="fullrank")
    print(result.summary(), result.log_z, result.evidence.verdict.text)
    ev = vifit.evidence(target, result)    # ELBO, IWAE, PSIS, AIS, CUBO and a verdict

The names below are loaded on first use (PEP 562): ``import vifit``, ``vifit --help`` and
``vifit list`` import no JAX until a name that needs it is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "fit": "vifit.api",
    "Target": "vifit.target",
    "FitResult": "vifit.result",
    "DataTarget": "vifit.data",
    "DiscreteTarget": "vifit.discrete", "enumerate_exact": "vifit.discrete",
    "from_numpyro": "vifit.adapters", "from_pymc": "vifit.adapters",
    "ConfigError": "vifit.errors", "ModelFileError": "vifit.errors",
    "TargetError": "vifit.errors", "VifitError": "vifit.errors",
    **{name: "vifit.estimators" for name in (
        "SNIS", "STL", "DReG", "Estimator", "LocalExpectation", "Relaxed", "Reparam",
        "ScoreFunction", "Stratified", "get_estimator")},
    **{name: "vifit.families" for name in (
        "Bernoulli", "Categorical", "Family", "FullRank", "HeavyTail", "LowRank", "MeanField", "Mixture",
        "RealNVP", "SplineFlow", "get_family")},
    **{name: "vifit.objectives" for name in (
        "CUBO", "ELBO", "IWAE", "ForwardKL", "Objective", "Renyi", "get_objective")},
    "ISEstimate": "vifit.evidence.importance", "importance_log_z": "vifit.evidence.importance",
    "khat_verdict": "vifit.evidence.importance",
    "AISConfig": "vifit.evidence.api", "EvidenceResult": "vifit.evidence.api",
    "evidence": "vifit.evidence.api",
    "gradient_variance": "vifit.gradvar",
    "pathfinder": "vifit.optim.pathfinder",
}
_SUBPACKAGES = ("catalog", "cavi", "ep")

__all__ = sorted([*_EXPORTS, *_SUBPACKAGES])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif importlib.util.find_spec(f"vifit.{name}") is not None:  # vifit.catalog, vifit.ep, ...
        value = importlib.import_module(f"vifit.{name}")
    else:
        raise AttributeError(f"module 'vifit' has no attribute {name!r}")
    # Importing vifit.evidence.api binds the subpackage to vifit.evidence; the public name is
    # the function (the subpackage is callable too, for code that reaches it first).
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from vifit import catalog, cavi, ep
    from vifit.adapters import from_numpyro, from_pymc
    from vifit.api import fit
    from vifit.data import DataTarget
    from vifit.discrete import DiscreteTarget, enumerate_exact
    from vifit.errors import ConfigError, ModelFileError, TargetError, VifitError
    from vifit.estimators import (SNIS, STL, DReG, Estimator, LocalExpectation, Relaxed,
                                  Reparam, ScoreFunction, Stratified, get_estimator)
    from vifit.evidence.api import AISConfig, EvidenceResult, evidence
    from vifit.evidence.importance import ISEstimate, importance_log_z, khat_verdict
    from vifit.families import (Bernoulli, Categorical, Family, FullRank, LowRank, MeanField,
                                Mixture, RealNVP, SplineFlow, get_family)
    from vifit.gradvar import gradient_variance
    from vifit.objectives import CUBO, ELBO, IWAE, ForwardKL, Objective, Renyi, get_objective
    from vifit.optim.pathfinder import pathfinder
    from vifit.result import FitResult
    from vifit.target import Target
