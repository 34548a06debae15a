"""Two non-Gaussian shapes with known answers, where a Gaussian q is not enough: a banana and
Neal's funnel. Both are normalized (log Z = 0) and have exact means.

Not registered as CLI examples here (the model catalog of issue 3 registers its own); bench and
tests build them from these functions, and ``bench/models/{banana,funnel}.py`` expose them to
``vifit fit``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy import stats

from vifit.target import Target


def banana(curvature: float = 1.0, scale: float = 1.0, noise: float = 0.5) -> Target:
    """z1 ~ N(0, scale^2), z2 | z1 ~ N(curvature (z1^2 - scale^2), noise^2).

    A curved ridge: E z = 0, Var z1 = scale^2, Var z2 = noise^2 + 2 curvature^2 scale^4.
    """

    def log_density(z):
        return (stats.norm.logpdf(z[0], 0.0, scale)
                + stats.norm.logpdf(z[1], curvature * (z[0] ** 2 - scale**2), noise))

    var2 = noise**2 + 2.0 * curvature**2 * scale**4
    return Target(log_density, dim=2, param_names=["z1", "z2"], name="banana",
                  exact={"log_z": 0.0, "mean": jnp.zeros(2),
                         "cov": jnp.diag(jnp.array([scale**2, var2]))})


def funnel(dim: int = 2, scale: float = 3.0) -> Target:
    """Neal's funnel: v ~ N(0, scale^2), x_i | v ~ N(0, exp(v)), i = 1..dim-1; z = (v, x).

    E z = 0; Var v = scale^2; Var x_i = E exp(v) = exp(scale^2 / 2). The neck (v << 0) is
    what a Gaussian q cannot follow.
    """
    if dim < 2:
        raise ValueError("the funnel needs dim >= 2")

    def log_density(z):
        v, x = z[0], z[1:]
        return stats.norm.logpdf(v, 0.0, scale) + jnp.sum(stats.norm.logpdf(x, 0.0,
                                                                             jnp.exp(0.5 * v)))

    names = ["v"] + [f"x[{i}]" for i in range(dim - 1)]
    var = jnp.concatenate([jnp.array([scale**2]), jnp.full(dim - 1, jnp.exp(scale**2 / 2))])
    return Target(log_density, dim=dim, param_names=names, name=f"funnel_{dim}d",
                  exact={"log_z": 0.0, "mean": jnp.zeros(dim), "cov": jnp.diag(var)})
