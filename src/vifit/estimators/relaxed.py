"""The relaxed (Gumbel-softmax / concrete) estimator for discrete families: BIASED.

Draws from a categorical q_i = softmax(logits_i) are argmax_k (log q_i(k) + g_ik) with Gumbel
noise g (the Gumbel-max trick). Replacing argmax by a softmax at temperature tau,

    y_i = softmax((log q_i + g_i) / tau)    (a point of the simplex),

makes the draw differentiable in the logits (Jang, Gu & Poole, 2017; Maddison, Mnih & Teh, 2017).
The gradient of E_q[log p(x)] is then estimated pathwise through ``relaxed_log_prob(y)``, and the
entropy term of the ELBO is exact. The relaxed expectation is not E_q[log p]: the estimate is
biased (the bias shrinks as tau -> 0 while the variance grows), so the fit converges near, not
at, the ELBO optimum. The trace reports the true ELBO at the hard (argmax) draws, which are exact
draws of q.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp

from vifit.errors import ConfigError
from vifit.estimators.base import Aux, Estimator
from vifit.families.base import Family
from vifit.objectives.base import Objective


class Relaxed(Estimator):
    """Gumbel-softmax pathwise gradient at ``temperature``; biased; needs the target's
    ``relaxed_log_prob`` and a mean-field discrete family."""

    temperature: float = 0.5
    name: ClassVar[str] = "relaxed"
    needs_target_grad: ClassVar[bool] = False

    def __check_init__(self):
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}.")

    def check(self, objective: Objective) -> None:
        if not objective.linear_in_weights:
            raise ConfigError(f"estimator 'relaxed' serves the ELBO, not {objective.name!r}.")

    def check_target(self, target, family: Family) -> None:
        if not (family.discrete and family.factorized):
            raise ConfigError(
                f"estimator 'relaxed' needs a mean-field discrete family ('bernoulli' or "
                f"'categorical'), not {family.name!r}."
            )
        if not getattr(target, "relaxed", False):
            raise ConfigError(
                f"estimator 'relaxed' evaluates log p at relaxed states, but target "
                f"{target.name!r} has no relaxed_log_prob; give DiscreteTarget(..., "
                "relaxed_log_prob=...) or use estimator='score' or 'rb'."
            )

    def label(self) -> str:
        return f"{self.name} (tau={self.temperature:g})"

    def bias(self, objective: Objective) -> str | None:
        return f"relaxation at temperature {self.temperature:g}: biased"

    def surrogate(self, objective, log_density, family, params, key, n):
        table = family.site_log_probs(params)  # (d, K)
        g = jax.random.gumbel(key, (n,) + table.shape, dtype=table.dtype)
        y = jax.nn.softmax((table + g) / self.temperature, axis=-1)  # (n, d, K)
        relaxed = jnp.mean(jax.vmap(log_density)(y))
        surrogate = -objective.direction * (relaxed + family.entropy(params))
        hard = jax.lax.stop_gradient(jnp.argmax(table + g, axis=-1).astype(jnp.int32))
        logw = jax.lax.stop_gradient(jax.vmap(log_density)(hard)
                                     - family.batch_log_prob(params, hard))
        return surrogate, Aux(objective.value(logw), logw)
