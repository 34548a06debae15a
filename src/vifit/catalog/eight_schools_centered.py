"""Eight schools, centred (the NumPyro getting-started model): a funnel between tau and theta.

    mu ~ N(0, 5^2),  tau ~ HalfCauchy(5),  theta_j ~ N(mu, tau^2),  y_j ~ N(theta_j, sigma_j^2).

The same joint distribution of (mu, tau, theta) as the non-centred ``eight_schools``, so both
share one reference (taken from NUTS on the non-centred form, where NUTS has no divergences);
only the geometry q has to fit differs.
"""

from __future__ import annotations

import numpyro
import numpyro.distributions as dist

from vifit.adapters.numpyro import from_numpyro
from vifit.examples.eight_schools import SIGMA, Y
from vifit.target import Target

DESCRIPTION = "eight schools, centred NumPyro model: funnel geometry (real data, d=10)"
REFERENCE = "eight_schools"


def model(sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", sigma.shape[0]):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def make() -> Target:
    return from_numpyro(model, SIGMA, y=Y, target_name="eight_schools_centered")
