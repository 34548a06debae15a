"""Child's test score on mother's high school and IQ (posteriordb ``kidiq-kidscore_momhsiq``;
Gelman & Hill, 2007, ch. 3; N = 434):

    beta ~ flat on R^3,  sigma ~ HalfCauchy(2.5),
    kid_score_i ~ N(beta_1 + beta_2 mom_hs_i + beta_3 mom_iq_i, sigma^2).

beta has no prior statement in the Stan program: flat (``ImproperUniform``).
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

DESCRIPTION = ("kid's score on mom's HS and IQ, posteriordb kidiq-kidscore_momhsiq "
               "(real, N=434, d=4)")


def data() -> dict[str, np.ndarray]:
    """``kid_score``, ``mom_hs`` and ``mom_iq``, each ``(N,)``."""
    d = load("kidiq")
    return {k: np.asarray(d[k], dtype=np.float64) for k in ("kid_score", "mom_hs", "mom_iq")}


def model(mom_hs, mom_iq, kid_score=None):
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real_vector, (), (3,)))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    with numpyro.plate("child", mom_hs.shape[0]):
        numpyro.sample("kid_score", dist.Normal(beta[0] + beta[1] * mom_hs + beta[2] * mom_iq,
                                                sigma), obs=kid_score)


def make() -> Target:
    d = data()
    return from_numpyro(model, jnp.asarray(d["mom_hs"]), jnp.asarray(d["mom_iq"]),
                        kid_score=jnp.asarray(d["kid_score"]), target_name="kidscore_momhsiq")
