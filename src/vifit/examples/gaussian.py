"""A correlated Gaussian target with a known log Z: the test case where q can equal p.

Covariance ``Q diag(eigs) Q^T`` with eigenvalues log-spaced to the given condition number and a
random rotation Q from a fixed seed; log Z = offset + 0.5 log|2 pi Sigma|.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from vifit.target import Target


def make(d: int = 10, condition: float = 100.0, offset: float = 0.0, seed: int = 0) -> Target:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    eigs = np.logspace(0.0, np.log10(condition), d)
    cov = (q * eigs) @ q.T
    mean = rng.normal(size=d)
    prec = jnp.asarray(np.linalg.inv(cov))
    mu = jnp.asarray(mean)

    def log_density(z):
        r = z - mu
        return offset - 0.5 * r @ prec @ r

    _, logdet = np.linalg.slogdet(2 * np.pi * cov)
    return Target(log_density, dim=d, name=f"gaussian_{d}d",
                  exact={"log_z": float(offset + 0.5 * logdet), "mean": mean, "cov": cov})
