"""Two-state hidden Markov model of a basketball drive (posteriordb
``bball_drive_event_0-hmm_drive_0``; SportVU tracking, N = 416 frames), states marginalized by
the forward algorithm. Emissions: u = 1/speed and v = distance to the hoop, exponential with
rates phi_k and lambda_k:

    theta_k ~ Dirichlet(alpha_k)  (rows of the transition matrix; alpha = [[4, 2], [2, 4]]),
    phi, lambda ~ flat on positive ordered vectors, plus
    phi_1 ~ N(0, 1),  phi_2 ~ N(3, 1),  lambda_1 ~ N(0, 1),  lambda_2 ~ N(3, 1)  (``target +=``),
    e_tk = log Exp(u_t | phi_k) + log Exp(v_t | lambda_k),
    gamma_1k = e_1k,  gamma_tk = logsumexp_j(gamma_{t-1,j} + log theta_jk) + e_tk,
    log p(u, v | .) = logsumexp_k gamma_Nk.

The initial state has no distribution of its own (a flat start, as in the Stan program).
``theta`` (Stan's transformed parameter) is a deterministic site. Coordinates: logit(theta_k1)
for each simplex; NumPyro's exp(ordered(x)) for phi and lambda (see the package docstring).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from vifit.adapters.numpyro import from_numpyro
from vifit.catalog.posteriordb import load
from vifit.catalog.posteriordb.hmm_example import forward
from vifit.target import Target

DESCRIPTION = ("2-state HMM of a basketball drive, posteriordb bball_drive_event_0-hmm_drive_0 "
               "(real, N=416, d=6)")


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``u (N,)``, ``v (N,)`` and the Dirichlet parameters ``alpha (K, K)``."""
    d = load("bball_drive_event_0")
    assert int(d["K"]) == 2  # the Stan program names theta1 and theta2: two states
    return (np.asarray(d["u"], dtype=np.float64), np.asarray(d["v"], dtype=np.float64),
            np.asarray(d["alpha"], dtype=np.float64))


def model(u, v, alpha):
    K = alpha.shape[0]
    theta1 = numpyro.sample("theta1", dist.Dirichlet(alpha[0]))
    theta2 = numpyro.sample("theta2", dist.Dirichlet(alpha[1]))
    positive_ordered = dist.ImproperUniform(constraints.positive_ordered_vector, (), (K,))
    phi = numpyro.sample("phi", positive_ordered)
    lam = numpyro.sample("lambda", positive_ordered)
    theta = numpyro.deterministic("theta", jnp.stack([theta1, theta2]))
    numpyro.factor("phi_lambda_prior",
                   dist.Normal(0.0, 1.0).log_prob(phi[0]) + dist.Normal(3.0, 1.0).log_prob(phi[1])
                   + dist.Normal(0.0, 1.0).log_prob(lam[0])
                   + dist.Normal(3.0, 1.0).log_prob(lam[1]))
    log_emit = (dist.Exponential(phi).log_prob(u[:, None])
                + dist.Exponential(lam).log_prob(v[:, None]))  # (N, K)
    numpyro.factor("forward", forward(jnp.log(theta), log_emit))


def make() -> Target:
    u, v, alpha = data()
    return from_numpyro(model, jnp.asarray(u), jnp.asarray(v), jnp.asarray(alpha),
                        target_name="hmm_drive_0")
