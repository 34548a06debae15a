"""Log earnings on height, sex and their interaction (posteriordb
``earnings-logearn_interaction``; Gelman & Hill, 2007, ch. 4; N = 1192):

    log_earn = log(earn),  inter = height * male  (transformed data),
    beta ~ flat on R^4,  sigma ~ flat on (0, inf),
    log_earn_i ~ N(beta_1 + beta_2 height_i + beta_3 male_i + beta_4 inter_i, sigma^2).

The Stan program states no priors: flat densities (``ImproperUniform``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from vifit.adapters.numpyro import from_numpyro
from vifit.catalog.posteriordb.earn_height import data
from vifit.target import Target

DESCRIPTION = ("log earnings on height x sex, posteriordb earnings-logearn_interaction "
               "(real, N=1192, d=5)")


def model(height, male, inter, log_earn=None):
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real_vector, (), (4,)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    mu = beta[0] + beta[1] * height + beta[2] * male + beta[3] * inter
    with numpyro.plate("person", height.shape[0]):
        numpyro.sample("log_earn", dist.Normal(mu, sigma), obs=log_earn)


def make() -> Target:
    d = data()
    return from_numpyro(model, jnp.asarray(d["height"]), jnp.asarray(d["male"]),
                        jnp.asarray(d["height"] * d["male"]),
                        log_earn=jnp.asarray(np.log(d["earn"])), target_name="logearn_interaction")
