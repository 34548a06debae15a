"""Autoregressive model of order K = 5 (posteriordb ``arK-arK``; simulated data, T = 200):

    alpha ~ N(0, 10^2),  beta_k ~ N(0, 10^2) (k = 1..K),  sigma ~ HalfCauchy(2.5),
    y_t ~ N(alpha + sum_k beta_k y_{t-k}, sigma^2),  t = K+1..T.

The first K observations only condition (Stan's loop starts at t = K + 1).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from vifit.adapters.numpyro import from_numpyro
from vifit.catalog.posteriordb import load
from vifit.target import Target

DESCRIPTION = "AR(5) time series, posteriordb arK-arK (simulated, T=200, d=7)"


def data() -> tuple[np.ndarray, np.ndarray]:
    """``lags (T-K, K)``, column k-1 holding y_{t-k}, and the responses ``y_t (T-K,)``."""
    d = load("arK")
    y, k = np.asarray(d["y"], dtype=np.float64), int(d["K"])
    lags = np.column_stack([y[k - j:y.size - j] for j in range(1, k + 1)])
    return lags, y[k:]


def model(lags, y=None):
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([lags.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    with numpyro.plate("time", lags.shape[0]):
        numpyro.sample("y", dist.Normal(alpha + lags @ beta, sigma), obs=y)


def make() -> Target:
    lags, y = data()
    return from_numpyro(model, jnp.asarray(lags), y=jnp.asarray(y), target_name="arK")
