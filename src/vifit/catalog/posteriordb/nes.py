"""Party identification on ideology, race, age group, education, sex and income (posteriordb
``nes2000-nes``; National Election Study 2000, Gelman & Hill, 2007, ch. 4; N = 476):

    age30_44 = [age_discrete = 2],  age45_64 = [age_discrete = 3],  age65up = [age_discrete = 4]
    (transformed data),
    beta ~ flat on R^9,  sigma ~ flat on (0, inf),
    partyid7_i ~ N(beta_1 + beta_2 real_ideo_i + beta_3 race_adj_i + beta_4 age30_44_i
                   + beta_5 age45_64_i + beta_6 age65up_i + beta_7 educ1_i + beta_8 gender_i
                   + beta_9 income_i, sigma^2).

The Stan program states no priors: flat densities (``ImproperUniform``). The data are as
posteriordb has them (race_adj in {1, 1.5, 2}, gender in {1, 2}).
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

DESCRIPTION = "party identification regression, posteriordb nes2000-nes (real, N=476, d=10)"


def data() -> tuple[np.ndarray, np.ndarray]:
    """The design ``(N, 9)`` (a column of ones first, in the Stan program's order) and
    ``partyid7 (N,)``."""
    d = {k: np.asarray(v, dtype=np.float64) for k, v in load("nes2000").items() if k != "N"}
    age = d["age_discrete"]
    columns = [np.ones_like(age), d["real_ideo"], d["race_adj"], (age == 2) * 1.0,
               (age == 3) * 1.0, (age == 4) * 1.0, d["educ1"], d["gender"], d["income"]]
    return np.column_stack(columns), d["partyid7"]


def model(design, partyid7=None):
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real_vector, (),
                                                       (design.shape[1],)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    with numpyro.plate("respondent", design.shape[0]):
        numpyro.sample("partyid7", dist.Normal(design @ beta, sigma), obs=partyid7)


def make() -> Target:
    design, partyid7 = data()
    return from_numpyro(model, jnp.asarray(design), partyid7=jnp.asarray(partyid7),
                        target_name="nes")
