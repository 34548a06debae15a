"""Two-state hidden Markov model with Gaussian emissions (posteriordb
``hmm_example-hmm_example``; N = 100 observations), states marginalized by the forward
algorithm:

    theta1, theta2 ~ flat on the 2-simplex (rows of the transition matrix theta),
    mu ~ flat on positive ordered vectors (mu_1 < mu_2), plus
    mu_1 ~ N(3, 1),  mu_2 ~ N(10, 1)  (added to the log density, as ``target +=``),
    gamma_1k = log N(y_1 | mu_k, 1),
    gamma_tk = logsumexp_j(gamma_{t-1,j} + log theta_jk) + log N(y_t | mu_k, 1),
    log p(y | theta, mu) = logsumexp_k gamma_Nk.

The initial state has no distribution of its own (a flat start, as in the Stan program).
``theta`` (Stan's transformed parameter, rows theta1 and theta2) is a deterministic site. The
simplex of two entries has NumPyro's stick-breaking coordinate, logit(theta_k1); the positive
ordered mu has NumPyro's exp(ordered(x)) coordinates (Stan's differ; see the package docstring).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import logsumexp
from numpyro.distributions import constraints

from vifit.adapters.numpyro import from_numpyro
from vifit.catalog.posteriordb import load
from vifit.target import Target

DESCRIPTION = "2-state Gaussian HMM, posteriordb hmm_example-hmm_example (N=100, d=4)"


def data() -> np.ndarray:
    d = load("hmm_example")
    assert int(d["K"]) == 2  # the Stan program names theta1 and theta2: two states
    return np.asarray(d["y"], dtype=np.float64)


def forward(log_trans, log_emit):
    """log sum over state paths of prod_t p(y_t | s_t) prod_t theta[s_{t-1}, s_t], with a
    flat start: ``log_trans (K, K)`` (row: from), ``log_emit (N, K)``."""

    def step(gamma, emit):
        return logsumexp(gamma[:, None] + log_trans, axis=0) + emit, None

    gamma, _ = jax.lax.scan(step, log_emit[0], log_emit[1:])
    return logsumexp(gamma)


def model(y, K=2):
    theta1 = numpyro.sample("theta1", dist.ImproperUniform(constraints.simplex, (), (K,)))
    theta2 = numpyro.sample("theta2", dist.ImproperUniform(constraints.simplex, (), (K,)))
    mu = numpyro.sample("mu", dist.ImproperUniform(constraints.positive_ordered_vector, (), (K,)))
    theta = numpyro.deterministic("theta", jnp.stack([theta1, theta2]))
    numpyro.factor("mu_prior", dist.Normal(3.0, 1.0).log_prob(mu[0])
                   + dist.Normal(10.0, 1.0).log_prob(mu[1]))
    log_emit = dist.Normal(mu, 1.0).log_prob(y[:, None])  # (N, K)
    numpyro.factor("forward", forward(jnp.log(theta), log_emit))


def make() -> Target:
    return from_numpyro(model, jnp.asarray(data()), target_name="hmm_example")
