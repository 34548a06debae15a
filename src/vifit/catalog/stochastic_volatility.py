"""Stochastic volatility (Kim, Shephard & Chib, 1998; the Stan users' guide form), non-centred.

    mu ~ Cauchy(0, 10),  phi ~ Uniform(-1, 1),  sigma ~ HalfCauchy(5),  h_std_t ~ N(0, 1),
    h_1 = mu + sigma h_std_1 / sqrt(1 - phi^2),  h_t = mu + phi (h_{t-1} - mu) + sigma h_std_t,
    y_t ~ N(0, exp(h_t / 2)^2).

100 returns simulated from a fixed seed (mu = -1, phi = 0.95, sigma = 0.25). The log
volatilities ``h`` are a deterministic site. Every method starts at mu = 0, phi = 0, sigma = 1,
h_std = 0 (h = 0): the prior medians, except sigma, whose prior median 5 puts the log density
at -5e6 there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from vifit.adapters.numpyro import from_numpyro
from vifit.target import Target

DESCRIPTION = "stochastic volatility, 100 returns (seeded data, d=103)"


def data(n: int = 100, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mu, phi, sigma = -1.0, 0.95, 0.25
    h = np.empty(n)
    h[0] = mu + sigma / np.sqrt(1 - phi**2) * rng.normal()
    for t in range(1, n):
        h[t] = mu + phi * (h[t - 1] - mu) + sigma * rng.normal()
    return np.exp(h / 2) * rng.normal(size=n)


def model(y):
    mu = numpyro.sample("mu", dist.Cauchy(0.0, 10.0))
    phi = numpyro.sample("phi", dist.Uniform(-1.0, 1.0))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(5.0))
    with numpyro.plate("time", y.shape[0]):
        h_std = numpyro.sample("h_std", dist.Normal(0.0, 1.0))

    def ar1(prev, eps):
        h = mu + phi * (prev - mu) + sigma * eps
        return h, h

    h0 = mu + sigma * h_std[0] / jnp.sqrt(1.0 - phi**2)
    _, rest = jax.lax.scan(ar1, h0, h_std[1:])
    h = numpyro.deterministic("h", jnp.concatenate([h0[None], rest]))
    with numpyro.plate("time", y.shape[0]):
        numpyro.sample("y", dist.Normal(0.0, jnp.exp(h / 2)), obs=y)


def make() -> Target:
    from numpyro.infer import init_to_value

    y = jnp.asarray(data())
    start = {"mu": 0.0, "phi": 0.0, "sigma": 1.0, "h_std": jnp.zeros(y.shape[0])}
    return from_numpyro(model, y, init_strategy=init_to_value(values=start),
                        target_name="stochastic_volatility")
