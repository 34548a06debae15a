"""vifit: variational inference and evidence estimation on JAX.

    import vifit
    target = vifit.Target(log_density, dim=3)
    result = vifit.fit(target, family="fullrank")
    print(result.summary(), result.log_z, result.evidence.verdict.text)
    ev = vifit.evidence(target, result)    # ELBO, IWAE, PSIS, AIS, CUBO and a verdict

"""

from vifit import cavi
from vifit import catalog
from vifit.adapters import from_numpyro, from_pymc
from vifit.api import fit
from vifit.discrete import DiscreteTarget, enumerate_exact
from vifit.errors import ConfigError, ModelFileError, TargetError, VifitError
from vifit.estimators import (SNIS, STL, DReG, Estimator, LocalExpectation, Relaxed, Reparam,
                              ScoreFunction, Stratified, get_estimator)
from vifit.evidence import ISEstimate, importance_log_z, khat_verdict
from vifit.families import (Bernoulli, Categorical, Family, FullRank, LowRank, MeanField, Mixture,
                            RealNVP, SplineFlow, get_family)
from vifit.gradvar import gradient_variance
from vifit.objectives import CUBO, ELBO, IWAE, ForwardKL, Objective, Renyi, get_objective
from vifit.optim.pathfinder import pathfinder
from vifit.result import FitResult
from vifit.target import Target
from vifit.data import DataTarget
from vifit import ep  # noqa: E402  (expectation propagation: vifit.ep.fit, vifit.ep.Factorized)

# After every import above: from here on the name vifit.evidence is this function, not the
# subpackage (import its modules as `from vifit.evidence.ais import ...`).
from vifit.evidence.api import AISConfig, EvidenceResult, evidence  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AISConfig", "EvidenceResult", "evidence",
    "Bernoulli", "CUBO", "Categorical", "ConfigError", "DReG", "DataTarget", "DiscreteTarget",
    "ELBO",
    "Estimator", "Family", "FitResult", "ForwardKL", "FullRank", "ISEstimate", "IWAE",
    "LocalExpectation", "LowRank", "MeanField", "Mixture", "ModelFileError", "Objective",
    "RealNVP", "Relaxed", "Renyi", "Reparam", "SNIS", "STL", "ScoreFunction", "SplineFlow",
    "Stratified", "Target", "TargetError", "VifitError", "catalog", "cavi", "enumerate_exact",
    "ep", "fit", "from_numpyro", "from_pymc", "get_estimator", "get_family", "get_objective",
    "gradient_variance", "importance_log_z", "khat_verdict", "pathfinder",
]
