"""The evidence lower bound, ELBO = E_q[log p(x, z) - log q(z)] <= log p(x)."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from vifit.objectives.base import Array, Objective


class ELBO(Objective):
    """Maximizing the ELBO is minimizing KL(q || p(z | x)), since log p(x) = ELBO + KL."""

    name: ClassVar[str] = "elbo"
    is_lower_bound: ClassVar[bool] = True
    linear_in_weights: ClassVar[bool] = True

    def value(self, logw: Array) -> Array:
        return jnp.mean(logw)

    def dreg_weights(self, logw: Array) -> Array:
        # With one draw per group the doubly reparameterized gradient is STL's.
        return jnp.full_like(logw, 1.0 / logw.shape[0])
