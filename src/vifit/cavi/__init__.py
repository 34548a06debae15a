"""Coordinate ascent VI (the EM-like branch) for conjugate exponential-family models, where
every update is closed form and the exact ELBO is checked after each one.

    from vifit import cavi
    res = cavi.fit_gmm(x, k=3)                      # Bayesian Gaussian mixture
    res = cavi.fit_linear_regression(X, y)          # Normal-Gamma linear regression
    res.elbo, res.trace, res.params
"""

from vifit.cavi.common import CAVIError, CAVIResult
from vifit.cavi.gmm import GMMPrior, default_prior, fit_gmm
from vifit.cavi.linreg import exact_posterior, fit_linear_regression

__all__ = ["CAVIError", "CAVIResult", "GMMPrior", "default_prior", "exact_posterior", "fit_gmm",
           "fit_linear_regression"]
