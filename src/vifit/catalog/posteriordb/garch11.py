"""GARCH(1, 1) volatility (posteriordb ``garch-garch11``; simulated data, T = 200):

    mu ~ flat,  alpha0 ~ flat on (0, inf),  alpha1 ~ Uniform(0, 1),
    beta1 ~ flat on (0, 1 - alpha1),
    sigma_1 = sigma1 (data, 0.5),
    sigma_t^2 = alpha0 + alpha1 (y_{t-1} - mu)^2 + beta1 sigma_{t-1}^2,
    y_t ~ N(mu, sigma_t^2).

No parameter has a prior statement in the Stan program, so each has Stan's implicit flat
density on its support: ``ImproperUniform``. beta1's flat density on (0, 1 - alpha1) is not a
Uniform(0, 1 - alpha1) (that would add -log(1 - alpha1) and change alpha1's posterior); its
unconstrained coordinate is logit(beta1 / (1 - alpha1)), as in Stan.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from vifit.adapters.numpyro import from_numpyro
from vifit.catalog.posteriordb import load
from vifit.target import Target

DESCRIPTION = "GARCH(1,1) volatility, posteriordb garch-garch11 (simulated, T=200, d=4)"


def data() -> tuple[np.ndarray, float]:
    d = load("garch")
    return np.asarray(d["y"], dtype=np.float64), float(d["sigma1"])


def model(y, sigma1):
    mu = numpyro.sample("mu", dist.ImproperUniform(constraints.real, (), ()))
    alpha0 = numpyro.sample("alpha0", dist.ImproperUniform(constraints.positive, (), ()))
    alpha1 = numpyro.sample("alpha1", dist.Uniform(0.0, 1.0))
    beta1 = numpyro.sample("beta1",
                           dist.ImproperUniform(constraints.interval(0.0, 1.0 - alpha1), (), ()))

    def step(var_prev, y_prev):
        var = alpha0 + alpha1 * (y_prev - mu) ** 2 + beta1 * var_prev
        return var, var

    var_1 = jnp.asarray(sigma1, dtype=y.dtype) ** 2
    _, rest = jax.lax.scan(step, var_1, y[:-1])
    sigma = jnp.sqrt(jnp.concatenate([var_1[None], rest]))
    with numpyro.plate("time", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def make() -> Target:
    y, sigma1 = data()
    return from_numpyro(model, jnp.asarray(y), sigma1, target_name="garch11")
