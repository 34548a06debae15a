"""Linear trend of summer temperature at Kilpisjarvi (posteriordb
``kilpisjarvi_mod-kilpisjarvi``; N = 62 summers, with posteriordb's x = year + 2000, which
makes alpha and beta almost perfectly correlated):

    alpha ~ N(9.3129, 100^2),  beta ~ N(0, 0.0333^2)  (prior means and sds from the data),
    sigma ~ flat on (0, inf),
    y_i ~ N(alpha + beta x_i, sigma^2).

sigma has no prior statement in the Stan program: flat (``ImproperUniform``). With x near
4000 the posterior correlation of alpha and beta is about -0.99999 and their sds differ by a
factor of 4000: the worst-conditioned posterior of the catalog, near what float32 resolves.
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

DESCRIPTION = ("linear trend, Kilpisjarvi summers, posteriordb kilpisjarvi_mod-kilpisjarvi "
               "(real, N=62, d=3)")


def data() -> dict:
    """``x (N,)``, ``y (N,)`` and the prior's ``pmualpha``, ``psalpha``, ``pmubeta``, ``psbeta``."""
    d = load("kilpisjarvi_mod")
    out = {k: np.asarray(d[k], dtype=np.float64) for k in ("x", "y")}
    out.update({k: float(d[k]) for k in ("pmualpha", "psalpha", "pmubeta", "psbeta")})
    return out


def model(x, pmualpha, psalpha, pmubeta, psbeta, y=None):
    alpha = numpyro.sample("alpha", dist.Normal(pmualpha, psalpha))
    beta = numpyro.sample("beta", dist.Normal(pmubeta, psbeta))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    with numpyro.plate("year", x.shape[0]):
        numpyro.sample("y", dist.Normal(alpha + beta * x, sigma), obs=y)


def make() -> Target:
    d = data()
    return from_numpyro(model, jnp.asarray(d["x"]), d["pmualpha"], d["psalpha"], d["pmubeta"],
                        d["psbeta"], y=jnp.asarray(d["y"]), target_name="kilpisjarvi")
