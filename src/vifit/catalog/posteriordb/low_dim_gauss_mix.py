"""Two-component Gaussian mixture, well separated (posteriordb
``low_dim_gauss_mix-low_dim_gauss_mix``; simulated, N = 1000):

    mu ~ flat on ordered vectors (mu_1 < mu_2), plus mu_k ~ N(0, 2^2),
    sigma_k ~ HalfNormal(2),  theta ~ Beta(5, 5),
    y_i ~ theta N(mu_1, sigma_1^2) + (1 - theta) N(mu_2, sigma_2^2).

The ordering removes the label switching. Coordinates: (mu_1, log(mu_2 - mu_1)) for mu, as in
Stan and NumPyro alike.
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

DESCRIPTION = ("2-component Gaussian mixture, posteriordb low_dim_gauss_mix-low_dim_gauss_mix "
               "(simulated, N=1000, d=5)")


def data() -> np.ndarray:
    return np.asarray(load("low_dim_gauss_mix")["y"], dtype=np.float64)


def model(y):
    mu = numpyro.sample("mu", dist.ImproperUniform(constraints.ordered_vector, (), (2,)))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0).expand([2]).to_event(1))
    theta = numpyro.sample("theta", dist.Beta(5.0, 5.0))
    numpyro.factor("mu_prior", jnp.sum(dist.Normal(0.0, 2.0).log_prob(mu)))
    mixing = dist.Categorical(probs=jnp.stack([theta, 1.0 - theta]))
    with numpyro.plate("point", y.shape[0]):
        numpyro.sample("y", dist.MixtureSameFamily(mixing, dist.Normal(mu, sigma)), obs=y)


def make() -> Target:
    return from_numpyro(model, jnp.asarray(data()), target_name="low_dim_gauss_mix")
