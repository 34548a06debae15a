"""Expectation propagation: the reversed KL, with its own log Z.

    import vifit
    model = vifit.ep.Factorized(vifit.ep.Probit(), y, design=X, prior_sd=2.0)
    res = vifit.ep.fit(model)                    # sequential EP, natural-parameter sites
    res.log_z, res.mean, res.cov, res.sweeps, res.converged
    fr = res.to_fit_result()                     # summary(), sample(), to_arviz(), k-hat
    vi = vifit.fit(model.target(), "fullrank")   # VI on the same model, to compare

See docs/ep.md.
"""

from vifit.ep.core import EPState, SweepInfo
from vifit.ep.model import Factorized
from vifit.ep.result import EPResult
from vifit.ep.run import EPWarning, fit
from vifit.ep.terms import (Custom, Gaussian, Logistic, Poisson, Probit, QuadratureTerm,
                            StudentT, Term, get_term, register_term)

__all__ = ["Custom", "EPResult", "EPState", "EPWarning", "Factorized", "Gaussian", "Logistic",
           "Poisson", "Probit", "QuadratureTerm", "StudentT", "SweepInfo", "Term", "fit",
           "get_term", "register_term"]
