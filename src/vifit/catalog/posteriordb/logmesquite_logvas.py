"""Log leaf weight of mesquite bushes on log canopy volume, area and shape, log total height,
log density and group (posteriordb ``mesquite-logmesquite_logvas``; Gelman & Hill, 2007,
ch. 4; N = 46):

    log_weight = log(weight),  log_canopy_volume = log(diam1 diam2 canopy_height),
    log_canopy_area = log(diam1 diam2),  log_canopy_shape = log(diam1 / diam2),
    log_total_height = log(total_height),  log_density = log(density)  (transformed data),
    beta ~ flat on R^7,  sigma ~ flat on (0, inf),
    log_weight_i ~ N(beta_1 + beta_2 log_canopy_volume_i + beta_3 log_canopy_area_i
                     + beta_4 log_canopy_shape_i + beta_5 log_total_height_i
                     + beta_6 log_density_i + beta_7 group_i, sigma^2).

The Stan program states no priors: flat densities (``ImproperUniform``).
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

DESCRIPTION = ("log mesquite biomass regression, posteriordb mesquite-logmesquite_logvas "
               "(real, N=46, d=8)")


def data() -> tuple[np.ndarray, np.ndarray]:
    """The design ``(N, 7)`` (a column of ones first, then the six predictors) and
    ``log_weight (N,)``."""
    d = {k: np.asarray(v, dtype=np.float64) for k, v in load("mesquite").items() if k != "N"}
    columns = [np.ones_like(d["weight"]),
               np.log(d["diam1"] * d["diam2"] * d["canopy_height"]),
               np.log(d["diam1"] * d["diam2"]),
               np.log(d["diam1"] / d["diam2"]),
               np.log(d["total_height"]),
               np.log(d["density"]),
               d["group"]]
    return np.column_stack(columns), np.log(d["weight"])


def model(design, log_weight=None):
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real_vector, (),
                                                       (design.shape[1],)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    with numpyro.plate("bush", design.shape[0]):
        numpyro.sample("log_weight", dist.Normal(design @ beta, sigma), obs=log_weight)


def make() -> Target:
    design, log_weight = data()
    return from_numpyro(model, jnp.asarray(design), log_weight=jnp.asarray(log_weight),
                        target_name="logmesquite_logvas")
