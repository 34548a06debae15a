"""The importance-weighted bound (Burda, Grosse & Salakhutdinov, 2016):

    IWAE_K = E[log (1/K) sum_k w_k] <= log Z,   w_k = p(x, z_k) / q(z_k),  z_k ~ q iid.

It rises with K (ELBO at K = 1) toward log Z. ``n`` draws are ``n / K`` independent groups; the
estimate is the mean of the groups' logmeanexp, computed in log space.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from vifit.errors import ConfigError
from vifit.objectives.base import Array, Objective
from vifit.objectives.renyi import power_mean_dreg, power_mean_groups


class IWAE(Objective):
    """The IWAE bound with ``K`` draws per group (the Renyi bound at alpha = 0)."""

    K: int = eqx.field(default=8, static=True)
    name: ClassVar[str] = "iwae"
    is_lower_bound: ClassVar[bool] = True
    linear_in_weights: ClassVar[bool] = False

    def __check_init__(self):
        if not (isinstance(self.K, int) and self.K >= 1):
            raise ConfigError(f"K (draws per group) must be a positive integer, got {self.K!r}.")

    def group_size(self) -> int:
        return self.K

    def group_values(self, logw: Array) -> Array:
        return power_mean_groups(logw, self.K, 1.0)

    def value(self, logw: Array) -> Array:
        return jnp.mean(self.group_values(logw))

    def dreg_weights(self, logw: Array) -> Array:
        return power_mean_dreg(logw, self.K, 0.0)

    def default_estimator(self, differentiable: bool) -> str:
        return "dreg" if differentiable else "score"

    def label(self) -> str:
        return f"{self.name}(K={self.K})"
