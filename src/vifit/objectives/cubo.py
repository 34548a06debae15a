"""The chi-square upper bound (Dieng et al., 2017), n = 2:

    CUBO = 1/2 log E_q[w^2] >= log Z,   w = p(x, z) / q(z),

with equality iff q = p; it is the Renyi bound at alpha = -1. It is *minimized*: pushing it down
makes q cover p (mass-covering, like the chi-square divergence it bounds). With K draws per group
the estimate is 1/2 logmeanexp(2 logw_1..K), in log space, so the weights w^2 never overflow;
its gradient is the self-normalized form sum_k softmax(2 logw)_k grad logw_k. The K-draw
estimate is biased low (Jensen), so it is an upper bound only for K large enough: keep K large
(default 64). Worse, where q misses part of p the draws never show it: from a narrow start,
minimizing the estimate shrinks q instead of spreading it (we saw fits collapse). So ``fit``
starts it from an ELBO fit (``warm_start``) unless given ``init_params``; near q = p the
K-draw estimate has its minimum at q = p for K >= 3 (its bias is about -chi^2 / K, the bound's
excess chi^2 / 2).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from vifit.errors import ConfigError
from vifit.objectives.base import Array, Objective
from vifit.objectives.renyi import power_mean_dreg, power_mean_groups


class CUBO(Objective):
    """Chi-square upper bound with ``K`` draws per group; minimized."""

    K: int = eqx.field(default=64, static=True)
    name: ClassVar[str] = "chi2"
    is_lower_bound: ClassVar[bool] = False
    is_upper_bound: ClassVar[bool] = True
    linear_in_weights: ClassVar[bool] = False
    direction: ClassVar[int] = -1
    warm_start: ClassVar[str | None] = "elbo"

    def __check_init__(self):
        if not (isinstance(self.K, int) and self.K >= 2):
            raise ConfigError(f"K (draws per group) must be an integer >= 2, got {self.K!r}: "
                              "with K = 1 the estimate is the ELBO, which minimizing ruins.")

    def group_size(self) -> int:
        return self.K

    def group_values(self, logw: Array) -> Array:
        return power_mean_groups(logw, self.K, 2.0)

    def value(self, logw: Array) -> Array:
        return jnp.mean(self.group_values(logw))

    def dreg_weights(self, logw: Array) -> Array:
        return power_mean_dreg(logw, self.K, -1.0)

    def default_estimator(self, differentiable: bool) -> str:
        return "dreg" if differentiable else "score"

    def label(self) -> str:
        return f"{self.name}(K={self.K})"
