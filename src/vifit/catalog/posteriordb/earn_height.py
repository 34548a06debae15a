"""Earnings on height (posteriordb ``earnings-earn_height``; Gelman & Hill, 2007, ch. 4;
N = 1192 adults, earnings in dollars, height in inches):

    beta ~ flat on R^2,  sigma ~ flat on (0, inf),
    earn_i ~ N(beta_1 + beta_2 height_i, sigma^2).

The Stan program states no priors: flat densities (``ImproperUniform``). On the dollar scale
the posterior sds are in the thousands (beta_1) and hundreds (beta_2), and beta_1 and beta_2
are almost perfectly correlated (height is not centred).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from vifit.adapters.numpyro import from_numpyro
from vifit.catalog.posteriordb import load
from vifit.target import Target

DESCRIPTION = "earnings on height, posteriordb earnings-earn_height (real, N=1192, d=3)"


def data() -> dict[str, np.ndarray]:
    """``earn``, ``height`` and ``male``, each ``(N,)``."""
    d = load("earnings")
    return {k: np.asarray(d[k], dtype=np.float64) for k in ("earn", "height", "male")}


def model(height, earn=None):
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real_vector, (), (2,)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    with numpyro.plate("person", height.shape[0]):
        numpyro.sample("earn", dist.Normal(beta[0] + beta[1] * height, sigma), obs=earn)


def make() -> Target:
    d = data()
    return from_numpyro(model, jnp.asarray(d["height"]), earn=jnp.asarray(d["earn"]),
                        target_name="earn_height")
