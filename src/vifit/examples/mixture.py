"""Cluster assignments of a 1D Gaussian mixture with the cluster means integrated out.

    mu_k ~ N(0, s0^2),  z_i ~ Uniform{0..K-1},  x_i | z_i, mu ~ N(mu_{z_i}, sigma^2),

so the target over the labels z (n = 10 points, K = 3 clusters, 3^10 = 59049 states) is

    log p(x, z) = -n log K + sum_k log N-marginal(x_{z = k}),
    log N-marginal = -m/2 log(2 pi sigma^2) + 1/2 log(sigma^2 / (sigma^2 + m s0^2))
                     - Q / (2 sigma^2) + s0^2 S^2 / (2 sigma^2 (sigma^2 + m s0^2)),

with m, S and Q the count, sum and sum of squares of the points in cluster k. Labels are
exchangeable, so the posterior has K! mirror-image modes: a mean-field q picks one, and its ELBO
sits about log K! below log Z, which the multi-sample bounds and the importance-sampling
estimate can recover. The relaxation replaces the one-hot labels by simplex points (soft
counts, sums and squares). log Z is exact by enumeration.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from vifit.discrete import DiscreteTarget, enumerate_exact


def data(n: int = 10, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([-3.0, 0.0, 3.0])
    return np.sort(centres[np.arange(n) % 3] + rng.normal(scale=0.7, size=n))


def make(n: int = 10, k: int = 3, sigma: float = 1.0, s0: float = 3.0,
         seed: int = 2) -> DiscreteTarget:
    x = jnp.asarray(data(n, seed))
    s2, t2 = sigma**2, s0**2

    def from_soft(soft):  # soft (n, K): one-hot rows for labels, simplex rows when relaxed
        m = jnp.sum(soft, axis=0)
        s = soft.T @ x
        q = soft.T @ (x * x)
        lml = (-0.5 * m * math.log(2 * math.pi * s2) + 0.5 * jnp.log(s2 / (s2 + m * t2))
               - 0.5 * q / s2 + t2 * s**2 / (2 * s2 * (s2 + m * t2)))
        return -n * math.log(k) + jnp.sum(lml)

    def log_prob(z):
        return from_soft(jax.nn.one_hot(z, k))

    target = DiscreteTarget(log_prob, n_sites=n, n_states=k, relaxed_log_prob=from_soft,
                            site_names=[f"z[{i}]" for i in range(n)], name="mixture_labels")
    target.exact.update(enumerate_exact(target))
    return target
