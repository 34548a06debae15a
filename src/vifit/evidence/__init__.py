"""Evidence: log Z from a fitted q, with lower and upper bounds, AIS/SMC, and a verdict.

``vifit.evidence(target, fit)`` (defined in ``vifit.evidence.api``) runs them all. The modules:
``importance`` (PSIS), ``bounds`` (ELBO, IWAE-K, CUBO), ``ais`` (annealed importance sampling /
SMC with BlackJAX moves), ``verdict`` (which estimate to trust), ``testbeds`` (targets with
exactly known log Z).
"""

from vifit.evidence.importance import ISEstimate, importance_log_z, khat_verdict

__all__ = ["ISEstimate", "importance_log_z", "khat_verdict"]
