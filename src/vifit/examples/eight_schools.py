"""Eight schools (Rubin, 1981), non-centred: the hierarchical model every Bayesian knows.

    mu ~ N(0, 5^2),  tau ~ HalfCauchy(5),  theta_tilde_j ~ N(0, 1),
    y_j ~ N(mu + tau * theta_tilde_j, sigma_j^2),  j = 1..8.

Unconstrained coordinates: (mu, log tau, theta_tilde[0..7]); the log-Jacobian of tau = exp(.)
is included. ``constrain`` returns mu, tau and theta = mu + tau * theta_tilde.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy import stats

from vifit.target import Target

# Treatment effects and their standard errors in the SAT coaching experiments.
Y = jnp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = jnp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def log_density(z):
    mu, log_tau, theta_tilde = z[0], z[1], z[2:]
    tau = jnp.exp(log_tau)
    lp = stats.norm.logpdf(mu, 0.0, 5.0)
    lp += stats.cauchy.logpdf(tau, 0.0, 5.0) + jnp.log(2.0) + log_tau  # half-Cauchy + Jacobian
    lp += jnp.sum(stats.norm.logpdf(theta_tilde))
    lp += jnp.sum(stats.norm.logpdf(Y, mu + tau * theta_tilde, SIGMA))
    return lp


def constrain(z):
    tau = jnp.exp(z[..., 1])
    return {"mu": z[..., 0], "tau": tau, "theta": z[..., :1] + tau[..., None] * z[..., 2:]}


def make() -> Target:
    names = ["mu", "log_tau"] + [f"theta_tilde[{j}]" for j in range(8)]
    return Target(log_density, init=jnp.zeros(10), param_names=names, constrain=constrain,
                  name="eight_schools")
