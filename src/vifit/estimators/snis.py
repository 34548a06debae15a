"""The self-normalized importance-sampled score: the gradient of the inclusive KL(p || q).

    grad_theta KL(p || q) = -E_p[grad_theta log q_theta(z)]
                         ~ -sum_i w_hat_i grad_theta log q_theta(z_i),
    z_i ~ q,  w_hat = softmax(log p(x, z_i) - log q(z_i)),

the wake-phase q update of reweighted wake-sleep (Bornschein & Bengio, 2015). It evaluates
log p but never differentiates it, so it serves discrete families too. Being a ratio estimate it
is biased by O(1/n) and consistent; it is only as good as q's overlap with p (watch k-hat).
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp

from vifit.errors import ConfigError
from vifit.estimators.base import Aux, Estimator
from vifit.objectives.base import Objective


class SNIS(Estimator):
    """Self-normalized importance-weighted score, for ``forward_kl``."""

    name: ClassVar[str] = "snis"
    needs_target_grad: ClassVar[bool] = False

    def default_draws(self) -> int:
        return 256

    def min_draws(self) -> int:
        return 2

    def check(self, objective: Objective) -> None:
        if not objective.inclusive:
            raise ConfigError(
                f"estimator 'snis' estimates the gradient of the inclusive KL(p || q) "
                f"(objective='forward_kl'), not of {objective.name!r}; use estimator="
                f"{objective.default_estimator(True)!r}."
            )

    def check_target(self, target, family) -> None:
        """Any family: only log q's gradient in its parameters is used."""

    def bias(self, objective: Objective) -> str | None:
        return "self-normalized weights: biased by O(1/draws), consistent"

    def surrogate(self, objective, log_density, family, params, key, n):
        z = jax.lax.stop_gradient(family.sample(params, key, n))
        logq = family.batch_log_prob(params, z)
        logw = jax.lax.stop_gradient(jax.vmap(log_density)(z) - logq)
        w_hat = jax.nn.softmax(logw)
        # The loss is KL(p || q) itself (minimized); the gradient of -sum_i w_hat_i log q(z_i)
        # is the estimate of its gradient, -E_p[grad log q].
        surrogate = -jnp.sum(w_hat * logq)
        return surrogate, Aux(objective.value(logw), logw)
