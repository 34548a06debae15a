"""vifit: variational inference and evidence estimation on JAX.

    import vifit
    target = vifit.Target(log_density, dim=3)
    result = vifit.fit(target, family="fullrank")
    print(result.summary(), result.log_z, result.evidence.verdict.text)
    ev = vifit.evidence(target, result)    # ELBO, IWAE, PSIS, AIS, CUBO and a verdict

"""

from vifit.api import fit
from vifit.errors import ConfigError, ModelFileError, TargetError, VifitError
from vifit.estimators import STL, Estimator, Reparam, ScoreFunction, get_estimator
from vifit.evidence import ISEstimate, importance_log_z, khat_verdict
from vifit.families import Family, FullRank, LowRank, MeanField, get_family
from vifit.objectives import ELBO, Objective, get_objective
from vifit.result import FitResult
from vifit.target import Target

# After every import above: from here on the name vifit.evidence is this function, not the
# subpackage (import its modules as `from vifit.evidence.ais import ...`).
from vifit.evidence.api import AISConfig, EvidenceResult, evidence  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AISConfig", "EvidenceResult", "evidence",
    "ELBO", "STL", "ConfigError", "Estimator", "Family", "FitResult", "FullRank", "ISEstimate",
    "LowRank", "MeanField", "ModelFileError", "Objective", "Reparam", "ScoreFunction", "Target",
    "TargetError", "VifitError", "fit", "get_estimator", "get_family", "get_objective",
    "importance_log_z", "khat_verdict",
]
