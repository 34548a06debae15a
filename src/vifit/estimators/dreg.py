"""Doubly reparameterized gradients (Tucker, Lawson, Gu & Maddison, 2019).

For a multi-draw objective such as IWAE the reparameterization gradient has a score term
sum_k w_hat_k grad_theta log q(z_k) that does not vanish in expectation, so STL (which drops it)
is biased. Applying the reparameterization identity E_q[f(z) grad log q(z)] = E[grad_z f dz/dtheta]
a second time turns that term into a pathwise one; the result is exactly unbiased and, like STL,
its variance vanishes as q approaches p. For the Renyi bound with K draws per group (IWAE at
alpha = 0, CUBO at alpha = -1) the gradient becomes

    sum_k c_k  d logw_k / dz_k  dz_k / dtheta,    c_k = w_hat_k (alpha + (1 - alpha) w_hat_k),
    w_hat = softmax((1 - alpha) logw) within the group,

with q's parameters held fixed inside logw. The objective supplies c (``dreg_weights``).
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp

from vifit.errors import ConfigError
from vifit.estimators.base import Aux, Estimator
from vifit.objectives.base import Objective


class DReG(Estimator):
    """The doubly reparameterized estimator; for IWAE, Renyi, CUBO (and the ELBO, where it is
    STL). Needs grad log p and a reparameterized family."""

    name: ClassVar[str] = "dreg"
    needs_target_grad: ClassVar[bool] = True

    def check(self, objective: Objective) -> None:
        probe = jnp.zeros(objective.group_size())
        if not objective.pathwise or objective.dreg_weights(probe) is None:
            raise ConfigError(
                f"objective {objective.name!r} has no doubly reparameterized form; use "
                f"estimator={objective.default_estimator(True)!r}."
            )

    def surrogate(self, objective, log_density, family, params, key, n):
        z, log_q = family.sample_and_log_prob(params, key, n, path_only=True)
        logw = jax.vmap(log_density)(z) - log_q
        c = jax.lax.stop_gradient(objective.dreg_weights(logw))
        value = jax.lax.stop_gradient(objective.value(logw))
        surrogate = -objective.direction * jnp.sum(c * logw)
        return surrogate, Aux(value, jax.lax.stop_gradient(logw))
