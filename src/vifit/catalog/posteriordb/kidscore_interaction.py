"""Child's test score on mother's high school, IQ and their interaction (posteriordb
``kidiq-kidscore_interaction``; Gelman & Hill, 2007, ch. 3; N = 434):

    inter = mom_hs * mom_iq  (transformed data),
    beta ~ flat on R^4,  sigma ~ HalfCauchy(2.5),
    kid_score_i ~ N(beta_1 + beta_2 mom_hs_i + beta_3 mom_iq_i + beta_4 inter_i, sigma^2).

beta has no prior statement in the Stan program: flat (``ImproperUniform``). mom_iq is not
centred, so beta_1 and beta_3 (and beta_2 and beta_4) are strongly correlated.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from vifit.adapters.numpyro import from_numpyro
from vifit.catalog.posteriordb.kidscore_momhsiq import data
from vifit.target import Target

DESCRIPTION = ("kid's score on mom's HS x IQ, posteriordb kidiq-kidscore_interaction "
               "(real, N=434, d=5)")


def model(mom_hs, mom_iq, inter, kid_score=None):
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real_vector, (), (4,)))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    mu = beta[0] + beta[1] * mom_hs + beta[2] * mom_iq + beta[3] * inter
    with numpyro.plate("child", mom_hs.shape[0]):
        numpyro.sample("kid_score", dist.Normal(mu, sigma), obs=kid_score)


def make() -> Target:
    d = data()
    return from_numpyro(model, jnp.asarray(d["mom_hs"]), jnp.asarray(d["mom_iq"]),
                        jnp.asarray(d["mom_hs"] * d["mom_iq"]),
                        kid_score=jnp.asarray(d["kid_score"]), target_name="kidscore_interaction")
