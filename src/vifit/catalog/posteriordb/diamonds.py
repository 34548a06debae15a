"""Linear regression of log price on 24 predictors of ggplot2's diamonds, as brms writes it
(posteriordb ``diamonds-diamonds``; N = 5000):

    Xc = X[:, 2:] - column means  (the intercept column dropped, the rest centred),
    b_k ~ N(0, 1) (k = 1..24),  Intercept ~ StudentT(3, 8, 10),
    sigma ~ StudentT(3, 0, 10) truncated to sigma > 0,
    Y_i ~ N(Intercept + Xc_i b, sigma^2).

The predictors are strongly collinear (polynomial terms of carat and the cut, colour and
clarity contrasts): the posterior of b is strongly correlated. brms' generated quantity
b_Intercept = Intercept - means . b is not a parameter and is left out.
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

DESCRIPTION = "brms linear regression, diamonds, posteriordb diamonds-diamonds (real, N=5000, d=26)"


def data() -> tuple[np.ndarray, np.ndarray]:
    """The centred predictors ``Xc (N, K-1)`` and the responses ``Y (N,)``."""
    d = load("diamonds")
    x = np.asarray(d["X"], dtype=np.float64)[:, 1:]
    return x - x.mean(axis=0), np.asarray(d["Y"], dtype=np.float64)


def model(xc, y=None):
    b = numpyro.sample("b", dist.Normal(0.0, 1.0).expand([xc.shape[1]]).to_event(1))
    intercept = numpyro.sample("Intercept", dist.StudentT(3.0, 8.0, 10.0))
    # StudentT(3, 0, 10) truncated to sigma > 0: its density on (0, inf) is twice the
    # StudentT's (brms' "- student_t_lccdf(0 | 3, 0, 10)"). Written as a flat site plus the
    # density, because NumPyro's truncated StudentT samples (for init) only with TFP installed.
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    numpyro.factor("sigma_prior", dist.StudentT(3.0, 0.0, 10.0).log_prob(sigma) + jnp.log(2.0))
    with numpyro.plate("diamond", xc.shape[0]):
        numpyro.sample("Y", dist.Normal(intercept + xc @ b, sigma), obs=y)


def make() -> Target:
    xc, y = data()
    return from_numpyro(model, jnp.asarray(xc), y=jnp.asarray(y), target_name="diamonds")
