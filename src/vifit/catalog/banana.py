"""The banana (the twisted Gaussian of Haario, Saksman & Tamminen, 1999), in two dimensions.

    x_1 ~ N(0, a^2),  x_2 | x_1 ~ N(b (x_1^2 - a^2), 1),   a = 10, b = 0.03 (plus ``offset``).

Exact answers: log Z = offset; means 0; Var x_1 = a^2; Var x_2 = 1 + 2 b^2 a^4;
Cov(x_1, x_2) = b E[x_1^3] = 0. Strongly curved: no Gaussian fits it well.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.scipy import stats

from vifit.target import Target

DESCRIPTION = "banana (twisted Gaussian), a=10, b=0.03: curved; exact answers (d=2)"


def make(a: float = 10.0, b: float = 0.03, offset: float = -1.0) -> Target:
    @jax.jit  # one compiled program, also for the Target's checks
    def log_density(z):
        x1, x2 = z[0], z[1]
        return (offset + stats.norm.logpdf(x1, 0.0, a)
                + stats.norm.logpdf(x2, b * (x1**2 - a**2), 1.0))

    cov = np.diag([a**2, 1.0 + 2.0 * b**2 * a**4])
    return Target(log_density, dim=2, param_names=["x1", "x2"], name="banana",
                  exact={"log_z": offset, "mean": np.zeros(2), "cov": cov})
