"""Evidence: log Z from a fitted q, with lower and upper bounds, AIS/SMC, and a verdict.

``vifit.evidence(target, fit)`` (defined in ``vifit.evidence.api``) runs them all. The modules:
``importance`` (PSIS), ``psis`` (the Pareto smoothing itself), ``bounds`` (ELBO, IWAE-K,
CUBO), ``ais`` (annealed importance sampling / SMC with BlackJAX moves), ``verdict`` (which
estimate to trust), ``testbeds`` (targets with exactly known log Z).

This package is also callable, as ``vifit.evidence(target, fit, ...)``: ``vifit`` loads its
names lazily, and code that imports a module of this package first binds the name
``vifit.evidence`` to the package rather than to the function.
"""

import sys
import types

from vifit.evidence.importance import ISEstimate, importance_log_z, khat_verdict

__all__ = ["ISEstimate", "importance_log_z", "khat_verdict"]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from vifit.evidence.api import evidence

        return evidence(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
