"""Neal's funnel (Neal, 2003): a scale that varies by orders of magnitude along one axis.

    v ~ N(0, 3^2),  x_k | v ~ N(0, e^v),  k = 1..9   (d = 10, normalized, plus ``offset``).

Exact answers: log Z = offset; every mean is 0; Var v = 9; Var x_k = E[e^v] = e^{4.5};
all covariances are 0 (the dependence is in the scale, not linear).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import stats

from vifit.target import Target

DESCRIPTION = "Neal's funnel, v ~ N(0, 9), x | v ~ N(0, e^v I_9); exact answers (d=10)"


def make(d: int = 10, scale: float = 3.0, offset: float = 2.0) -> Target:
    @jax.jit  # one compiled program, also for the Target's checks
    def log_density(z):
        v, x = z[0], z[1:]
        return (offset + stats.norm.logpdf(v, 0.0, scale)
                + jnp.sum(stats.norm.logpdf(x, 0.0, jnp.exp(v / 2))))

    var = np.full(d, math.exp(scale**2 / 2))
    var[0] = scale**2
    names = ["v"] + [f"x[{k}]" for k in range(d - 1)]
    return Target(log_density, dim=d, param_names=names, name="funnel",
                  exact={"log_z": offset, "mean": np.zeros(d), "cov": np.diag(var)})
