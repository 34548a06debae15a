"""Bayesian linear regression with known noise: a conjugate model whose evidence is exact.

    beta ~ N(0, s0^2 I_d),  y | X, beta ~ N(X beta, sigma^2 I_n),
    p(y | X) = N(y; 0, sigma^2 I + s0^2 X X^T),
    posterior: Cov = (X^T X / sigma^2 + I / s0^2)^-1,  mean = Cov X^T y / sigma^2.

Data are generated from a fixed seed, so every run sees the same numbers. ``offset`` adds an
arbitrary constant to the log density (the target is unnormalized), and to the exact log Z.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from vifit.target import Target


def data(n: int = 100, d: int = 5, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    beta = rng.normal(size=d)
    y = x @ beta + rng.normal(scale=1.0, size=n)
    return x, y, beta


def exact_answers(x: np.ndarray, y: np.ndarray, sigma: float, s0: float,
                  offset: float) -> dict[str, np.ndarray | float]:
    n, d = x.shape
    cov = np.linalg.inv(x.T @ x / sigma**2 + np.eye(d) / s0**2)
    mean = cov @ x.T @ y / sigma**2
    marg = sigma**2 * np.eye(n) + s0**2 * x @ x.T
    _, logdet = np.linalg.slogdet(2.0 * np.pi * marg)
    log_z = -0.5 * logdet - 0.5 * y @ np.linalg.solve(marg, y) + offset
    return {"log_z": float(log_z), "mean": mean, "cov": cov}


def make(n: int = 100, d: int = 5, sigma: float = 1.0, s0: float = 2.0, offset: float = 0.0,
         seed: int = 1) -> Target:
    x, y, _ = data(n, d, seed)
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    norm = -0.5 * d * np.log(2 * np.pi * s0**2) - 0.5 * n * np.log(2 * np.pi * sigma**2)

    def log_density(beta):
        resid = yj - xj @ beta
        return (norm + offset - 0.5 * jnp.sum(beta**2) / s0**2
                - 0.5 * jnp.sum(resid**2) / sigma**2)

    return Target(log_density, dim=d, param_names=[f"beta[{i}]" for i in range(d)],
                  name="linear_regression", exact=exact_answers(x, y, sigma, s0, offset))
