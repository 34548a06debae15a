"""ARMA(1, 1) time series (posteriordb ``arma-arma11``; simulated data, T = 200):

    mu ~ N(0, 10^2),  phi ~ N(0, 2^2),  theta ~ N(0, 2^2),  sigma ~ HalfCauchy(2.5),
    nu_1 = mu + phi mu,  err_1 = y_1 - nu_1  (err_0 = 0),
    nu_t = mu + phi y_{t-1} + theta err_{t-1},  err_t = y_t - nu_t  (t = 2..T),
    err_t ~ N(0, sigma^2).

The errors are a ``lax.scan``. For |theta| > 1 they grow like |theta|^T: at |theta| = 1.2 the
log density is about -1e33 and past |theta| ~ 1.25 it overflows float32 to -inf (the posterior
is theta = -0.03 +- 0.06, far inside).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from vifit.adapters.numpyro import from_numpyro
from vifit.catalog.posteriordb import load
from vifit.target import Target

DESCRIPTION = "ARMA(1,1) time series, posteriordb arma-arma11 (simulated, T=200, d=4)"


def data() -> np.ndarray:
    return np.asarray(load("arma")["y"], dtype=np.float64)


def model(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    phi = numpyro.sample("phi", dist.Normal(0.0, 2.0))
    theta = numpyro.sample("theta", dist.Normal(0.0, 2.0))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))

    def step(err_prev, resid):  # resid_t = y_t - mu - phi y_{t-1}
        err = resid - theta * err_prev
        return err, err

    err_1 = y[0] - (mu + phi * mu)
    _, rest = jax.lax.scan(step, err_1, y[1:] - mu - phi * y[:-1])
    err = jnp.concatenate([err_1[None], rest])
    numpyro.factor("err", jnp.sum(dist.Normal(0.0, sigma).log_prob(err)))


def make() -> Target:
    return from_numpyro(model, jnp.asarray(data()), target_name="arma11")
