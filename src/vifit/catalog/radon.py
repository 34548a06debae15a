"""A radon-like hierarchical linear regression (varying intercepts, Gelman & Hill, 2007, ch. 12).

Log radon in houses within counties; the floor of measurement is the predictor. Data are
generated from a fixed seed (30 counties, 1 to 20 houses each), so every run sees the same
numbers:

    mu_a ~ N(0, 5^2),  sigma_a ~ HalfNormal(2),  a_raw_j ~ N(0, 1),  a_j = mu_a + sigma_a a_raw_j,
    b ~ N(0, 5^2),  sigma_y ~ HalfNormal(2),  y_i ~ N(a_county[i] + b floor_i, sigma_y^2).

Non-centred; ``a`` is a deterministic site, reported with the parameters.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from vifit.adapters.numpyro import from_numpyro
from vifit.target import Target

DESCRIPTION = "radon-like hierarchical linear regression, 30 groups (seeded data, d=34)"


def data(counties: int = 30, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``county (n,)`` int, ``floor (n,)`` in {0, 1}, ``log_radon (n,)``."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 21, size=counties)
    county = np.repeat(np.arange(counties), sizes)
    floor = (rng.random(county.size) < 0.2).astype(np.float64)
    a = 1.5 + 0.4 * rng.normal(size=counties)
    y = a[county] - 0.7 * floor + 0.75 * rng.normal(size=county.size)
    return county, floor, y


def model(county, floor, counties, y=None):
    mu_a = numpyro.sample("mu_a", dist.Normal(0.0, 5.0))
    sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(2.0))
    with numpyro.plate("county", counties):
        a_raw = numpyro.sample("a_raw", dist.Normal(0.0, 1.0))
    a = numpyro.deterministic("a", mu_a + sigma_a * a_raw)
    b = numpyro.sample("b", dist.Normal(0.0, 5.0))
    sigma_y = numpyro.sample("sigma_y", dist.HalfNormal(2.0))
    with numpyro.plate("house", county.shape[0]):
        numpyro.sample("y", dist.Normal(a[county] + b * floor, sigma_y), obs=y)


def make() -> Target:
    county, floor, y = data()
    return from_numpyro(model, jnp.asarray(county), jnp.asarray(floor), int(county.max()) + 1,
                        y=jnp.asarray(y), target_name="radon")
