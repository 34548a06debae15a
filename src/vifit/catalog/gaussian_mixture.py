"""A multimodal target: a mixture of three well-separated 2-D Gaussians.

    p(z) = exp(offset) * sum_k w_k N(z; m_k, S_k),  w = (0.5, 0.3, 0.2).

Exact answers: log Z = offset; mean = sum_k w_k m_k; cov = sum_k w_k (S_k + m_k m_k^T) - m m^T.
A single Gaussian q finds one mode (KL(q||p) is mode-seeking): its log Z misses log w_k
of the mass and k-hat should say so.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from vifit.target import Target

DESCRIPTION = "mixture of three separated 2-D Gaussians: multimodal; exact answers (d=2)"

WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[-4.0, -3.0], [4.0, 0.0], [0.0, 5.0]])
COVS = np.array([[[1.0, 0.5], [0.5, 1.0]], [[1.0, -0.3], [-0.3, 0.5]], [[0.5, 0.0], [0.0, 0.5]]])


def make(offset: float = 1.5) -> Target:
    precs = jnp.asarray(np.linalg.inv(COVS))
    means = jnp.asarray(MEANS)
    lognorm = jnp.asarray(np.log(WEIGHTS) - 0.5 * np.linalg.slogdet(2 * np.pi * COVS)[1])

    @jax.jit  # one compiled program, also for the Target's checks
    def log_density(z):
        r = z - means
        quad = jnp.einsum("ki,kij,kj->k", r, precs, r)
        return offset + logsumexp(lognorm - 0.5 * quad)

    mean = WEIGHTS @ MEANS
    second = np.einsum("k,kij->ij", WEIGHTS, COVS + np.einsum("ki,kj->kij", MEANS, MEANS))
    # Start between the modes, so that no method is handed one of them.
    return Target(log_density, init=np.zeros(2), param_names=["z1", "z2"],
                  name="gaussian_mixture",
                  exact={"log_z": offset, "mean": mean, "cov": second - np.outer(mean, mean)})
