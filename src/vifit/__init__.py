"""vifit: variational inference and evidence estimation on JAX.

    import vifit
    target = vifit.Target(log_density, dim=3)
    result = vifit.fit(target, family="fullrank")
    print(result.summary(), result.log_z, result.evidence.verdict.text)
"""

from vifit import cavi
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
from vifit import ep  # noqa: E402  (expectation propagation: vifit.ep.fit, vifit.ep.Factorized)

__version__ = "0.1.0"

__all__ = [
    "CUBO", "ELBO", "IWAE", "SNIS", "STL", "Bernoulli", "Categorical", "ConfigError", "DReG",
    "DiscreteTarget", "Estimator", "Family", "FitResult", "ForwardKL", "FullRank", "ISEstimate",
    "LocalExpectation", "LowRank", "MeanField", "ModelFileError", "Objective", "Relaxed",
    "Renyi", "Reparam", "ScoreFunction", "Target", "TargetError", "VifitError", "enumerate_exact",
    "ep", "fit", "get_estimator", "get_family", "get_objective", "gradient_variance",
    "importance_log_z", "khat_verdict",
    "Mixture", "RealNVP", "SplineFlow", "Stratified", "cavi", "pathfinder",
]
