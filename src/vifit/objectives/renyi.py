"""The variational Renyi bound (Li & Turner, 2016) with K draws per group:

    L_alpha = 1/(1 - alpha) log E_q[w^(1 - alpha)],     w = p(x, z) / q(z),
    estimate per group of K draws: 1/(1 - alpha) logmeanexp((1 - alpha) logw_1..K).

L_alpha is non-increasing in alpha: alpha = 1 is the ELBO (the limit), alpha = 0 is log Z (its
K-draw estimate is the IWAE bound), alpha in (0, 1) lies between, and alpha < 0 gives upper
bounds on log Z (alpha = -1 is the chi-square upper bound, CUBO). The K-draw estimate is biased
low (Jensen) and rises to L_alpha as K grows, so for alpha < 0 it is an upper bound only for
large enough K. An upper bound is minimized, a lower bound maximized; ``direction`` says which.
Everything is computed in log space (logsumexp), so weights never overflow.
"""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from vifit.errors import ConfigError
from vifit.objectives.base import Array, Objective, groups


def power_mean_groups(logw: Array, k: int, beta: float) -> Array:
    """Per-group ``1/beta logmeanexp(beta logw)`` for groups of ``k``; ``beta = 0`` is the mean."""
    g = groups(logw, k)
    if beta == 0.0:
        return jnp.mean(g, axis=1)
    return (logsumexp(beta * g, axis=1) - math.log(k)) / beta


def power_mean_dreg(logw: Array, k: int, alpha: float) -> Array:
    """DReG coefficients for the group-averaged Renyi estimate (Tucker et al., 2019, extended
    from IWAE to any alpha): with w_hat = softmax((1 - alpha) logw) within a group of K and G
    groups, c = w_hat (alpha + (1 - alpha) w_hat) / G. alpha = 0 gives IWAE's w_hat^2 and
    alpha = 1 gives STL's 1/n."""
    g = groups(logw, k)
    w_hat = jax.nn.softmax((1.0 - alpha) * g, axis=1)
    c = w_hat * (alpha + (1.0 - alpha) * w_hat) / g.shape[0]
    return c.reshape(logw.shape)


class Renyi(Objective):
    """Variational Renyi bound with order ``alpha`` (any real number) and ``K`` draws per group.

    Maximized for alpha >= 0 (a lower bound), minimized for alpha < 0 (an upper bound)."""

    alpha: float = eqx.field(default=0.5, static=True)
    K: int = eqx.field(default=8, static=True)
    name: ClassVar[str] = "renyi"
    linear_in_weights: ClassVar[bool] = False
    # Traits that depend on alpha: declared ClassVar (not fields), defined as properties below.
    is_lower_bound: ClassVar[bool]
    is_upper_bound: ClassVar[bool]
    direction: ClassVar[int]
    warm_start: ClassVar[str | None]

    def __check_init__(self):
        if not (isinstance(self.K, int) and self.K >= 1):
            raise ConfigError(f"K (draws per group) must be a positive integer, got {self.K!r}.")
        if not math.isfinite(self.alpha):
            raise ConfigError(f"alpha must be a finite number, got {self.alpha!r}.")

    @property
    def is_lower_bound(self) -> bool:
        return self.alpha >= 0

    @property
    def is_upper_bound(self) -> bool:
        return self.alpha < 0

    @property
    def direction(self) -> int:
        return -1 if self.alpha < 0 else 1

    @property
    def warm_start(self) -> str | None:
        return "elbo" if self.alpha < 0 else None  # as for the CUBO, see cubo.py

    def group_size(self) -> int:
        return self.K

    def group_values(self, logw: Array) -> Array:
        return power_mean_groups(logw, self.K, 1.0 - self.alpha)

    def value(self, logw: Array) -> Array:
        return jnp.mean(self.group_values(logw))

    def dreg_weights(self, logw: Array) -> Array:
        return power_mean_dreg(logw, self.K, self.alpha)

    def default_estimator(self, differentiable: bool) -> str:
        return "dreg" if differentiable else "score"

    def label(self) -> str:
        return f"{self.name}(alpha={self.alpha:g}, K={self.K})"
