"""sample() and to_arviz() resample q's draws by their PSIS weights toward p by default (the
rule of summary()), and give q's own draws on request."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

import vifit

RHO = 0.5  # a mean-field q of this correlated Gaussian has sd sqrt(1 - rho^2) = 0.87 of p's
PREC = jnp.linalg.inv(jnp.array([[1.0, RHO], [RHO, 1.0]]))


def log_p(z):
    return -0.5 * z @ PREC @ z


def test_resampled_draws_correct_a_too_narrow_q():
    fit = vifit.fit(vifit.Target(log_p, dim=2, name="corr"), "meanfield", progress=False,
                    steps=3000)
    assert fit.use_weights()  # k-hat < 0.7
    n = 4000
    own = np.stack(list(fit.sample(0, n, resample=False).values()), axis=-1).reshape(n, -1)
    fixed = np.stack(list(fit.sample(0, n).values()), axis=-1).reshape(n, -1)
    # q's sd is ~13% short; the resample's is p's within its Monte Carlo error: the sd of a
    # sd estimate from an effective sample of m draws is about sd / sqrt(2 m), m >= n / 2 here
    tol = 5 / math.sqrt(2 * n / 2)
    assert np.all(np.abs(own.std(0) - 1.0) > 0.08)
    assert np.all(np.abs(fixed.std(0) - 1.0) < tol), fixed.std(0)
    idata = fit.to_arviz(0, 100)
    # Resampled by PSIS weights; from the tail check's widened draws when it finds q's tails
    # too light, as this too narrow q's can be (p's mass in q's 0.1% tail is near 1%).
    assert idata.attrs["weighting"] in ("psis-resampled", "defensive-resampled")
    assert fit.to_arviz(0, 100, resample=False).attrs["weighting"] == "q"
