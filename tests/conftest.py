"""Shared helpers. Monte Carlo tests assert agreement within k standard errors; k is chosen
from a stated false-failure rate, never tuned to make a test pass."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import stats


def z_bound(false_failure_rate: float, n_comparisons: int = 1) -> float:
    """Two-sided normal quantile so that n simultaneous comparisons fail together with
    probability <= false_failure_rate (Bonferroni)."""
    return float(stats.norm.isf(false_failure_rate / (2 * n_comparisons)))


@pytest.fixture
def x64():
    """Run a test in float64, for checks that need exactness beyond float32 rounding."""
    with jax.enable_x64(True):
        yield


def gaussian_log_density(mean, cov, offset=0.0):
    import jax.numpy as jnp

    prec = jnp.asarray(np.linalg.inv(cov))
    mu = jnp.asarray(mean)

    def log_density(z):
        r = z - mu
        return offset - 0.5 * r @ prec @ r

    log_z = offset + 0.5 * np.linalg.slogdet(2 * np.pi * np.asarray(cov))[1]
    return log_density, float(log_z)
