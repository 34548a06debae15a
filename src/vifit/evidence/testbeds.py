"""Targets whose log Z is known exactly, for tests and benchmarks of the evidence estimators.

Each maker returns a ``Target`` with ``exact["log_z"]`` and adds an arbitrary constant
``offset`` to the log density (so log Z = log(normalizer) + offset): an estimator that only
works for normalized densities fails here. All but the regression are normalized densities by
construction, so their log Z is exactly ``offset``.

Note: the linear regression reuses ``vifit.examples``; the correlated Gaussian has its own
float32-safe form here; some of these
shapes may also exist in another catalogue of targets (duplication is deliberate for now, so that
the evidence tests do not depend on it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp

from vifit.examples import linear_regression as _linreg
from vifit.target import Target

_LOG_2PI = math.log(2.0 * math.pi)


def correlated_gaussian(d: int = 100, condition: float = 1e4, offset: float = -31.7,
                        seed: int = 0) -> Target:
    """N(mu, Sigma) with the eigenvalues of Sigma log-spaced from 1 to ``condition``, randomly
    rotated. The log density is -|W (z - mu)|^2 / 2 with W = chol(Sigma)^-1, a sum of squares,
    so that float32 rounding cannot make it positive far from the mean (the plain quadratic form
    r^T Sigma^-1 r can go negative in float32 at this condition number)."""
    rng = np.random.default_rng(seed)
    rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
    cov = (rot * np.logspace(0.0, np.log10(condition), d)) @ rot.T
    mean = rng.normal(size=d)
    chol = np.linalg.cholesky(cov)
    whiten = jnp.asarray(np.linalg.inv(chol))
    mu = jnp.asarray(mean)
    log_norm = -float(np.sum(np.log(np.diag(chol)))) - 0.5 * d * _LOG_2PI

    def log_density(z):
        return offset + log_norm - 0.5 * jnp.sum((whiten @ (z - mu)) ** 2)

    return Target(log_density, dim=d, name=f"gaussian_{d}d",
                  exact={"log_z": float(offset), "mean": mean, "cov": cov})


def funnel(d: int = 10, scale: float = 3.0, offset: float = 4.2) -> Target:
    """Neal's funnel: v ~ N(0, scale^2), x_i | v ~ N(0, exp(v)) for i < d - 1; z = (v, x)."""

    def log_density(z):
        v, x = z[0], z[1:]
        lp_v = -0.5 * (v / scale) ** 2 - math.log(scale) - 0.5 * _LOG_2PI
        lp_x = -0.5 * jnp.sum(x**2) * jnp.exp(-v) - 0.5 * (d - 1) * v - 0.5 * (d - 1) * _LOG_2PI
        return lp_v + lp_x + offset

    names = ["v"] + [f"x[{i}]" for i in range(d - 1)]
    return Target(log_density, dim=d, param_names=names, name=f"funnel_{d}d",
                  exact={"log_z": float(offset)})


def banana(d: int = 2, twist: float = 0.1, sigma1: float = 10.0, offset: float = -2.5) -> Target:
    """Haario et al.'s twisted Gaussian: x ~ N(0, diag(sigma1^2, 1, ..., 1)), then
    z_2 = x_2 + twist (x_1^2 - sigma1^2). The map has unit Jacobian, so the density stays
    normalized."""

    def log_density(z):
        x2 = z[1] - twist * (z[0] ** 2 - sigma1**2)
        quad = (z[0] / sigma1) ** 2 + x2**2 + jnp.sum(z[2:] ** 2)
        return -0.5 * quad - math.log(sigma1) - 0.5 * d * _LOG_2PI + offset

    return Target(log_density, dim=d, name=f"banana_{d}d", exact={"log_z": float(offset)})


def gaussian_mixture(d: int = 2, separation: float = 8.0, weights: tuple[float, float] = (0.3, 0.7),
                     scales: tuple[float, float] = (1.0, 0.7), offset: float = 9.1) -> Target:
    """Two isotropic Gaussian components whose means are ``separation`` apart along the
    diagonal; the mixture is normalized. Well separated: a Gaussian q fitted by KL(q||p) sits
    on one mode, and importance sampling from it misses the other."""
    direction = np.ones(d) / np.sqrt(d)
    means = jnp.asarray(np.stack([-0.5 * separation * direction, 0.5 * separation * direction]))
    log_wts = jnp.log(jnp.asarray(weights))
    sc = jnp.asarray(scales)

    def log_density(z):
        r2 = jnp.sum((z[None, :] - means) ** 2, axis=1) / sc**2
        comp = -0.5 * r2 - d * jnp.log(sc) - 0.5 * d * _LOG_2PI
        return logsumexp(log_wts + comp) + offset

    return Target(log_density, dim=d, name=f"mixture_{d}d", exact={"log_z": float(offset)})


def student_t(d: int = 10, nu: float = 5.0, offset: float = 1.3, seed: int = 2) -> Target:
    """Multivariate Student-t with ``nu`` degrees of freedom, a random location and a scale
    matrix of condition number 10; normalized."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scale = (q * np.logspace(0.0, 1.0, d)) @ q.T
    loc = jnp.asarray(rng.normal(size=d))
    prec = jnp.asarray(np.linalg.inv(scale))
    log_norm = (float(gammaln((nu + d) / 2) - gammaln(nu / 2)) - 0.5 * d * math.log(nu * math.pi)
                - 0.5 * float(np.linalg.slogdet(scale)[1]))

    def log_density(z):
        r = z - loc
        return log_norm - 0.5 * (nu + d) * jnp.log1p(r @ prec @ r / nu) + offset

    return Target(log_density, dim=d, name=f"student_t_{d}d", exact={"log_z": float(offset)})


def linear_regression(offset: float = 17.0) -> Target:
    """Bayesian linear regression with known noise (d = 5, n = 100); conjugate, exact log Z."""
    return _linreg.make(offset=offset)


TESTBEDS: dict[str, Callable[[], Target]] = {
    "gaussian_100d": correlated_gaussian,
    "funnel_10d": funnel,
    "banana_2d": lambda: banana(2),
    "banana_20d": lambda: banana(20),
    "mixture_2d": lambda: gaussian_mixture(2),
    "mixture_10d": lambda: gaussian_mixture(10),
    "student_t_10d": student_t,
    "linear_regression": linear_regression,
}
