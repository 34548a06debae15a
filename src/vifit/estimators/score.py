"""The score-function (black-box, REINFORCE) estimator of the ELBO gradient, with the variance
reduction of Ranganath, Gerrish & Blei (2014).

    grad ELBO = E_q[h(z) w(z)],  h = grad_theta log q_theta(z),  w = log p(x, z) - log q(z).

It evaluates log p but never differentiates it, so it serves non-differentiable models and
discrete latents. Both variance reductions below keep the estimator exactly unbiased, because
each sample's correction is built from the *other* samples only and E_q[h] = 0:

- leave-one-out baseline: w_s -> w_s - mean_{j != s} w_j;
- control variate on the score, per parameter coordinate d: subtract a_d^(-s) h_ds, with
  a_d^(-s) = Cov(r_d, h_d) / Var(h_d) estimated on the other samples, where r is the per-sample
  gradient after the baseline (the baseline itself recomputed without sample s).
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp

from vifit.errors import ConfigError
from vifit.estimators.base import Aux, Estimator
from vifit.objectives.base import Array, Objective


def _corrected_mean(h: Array, w: Array, baseline: bool, control_variate: bool) -> Array:
    """Mean over draws of the corrected per-draw gradient, for one params leaf.

    h: (n, *leaf) per-draw scores; w: (n,) log-weights. Returns (*leaf).
    """
    n = w.shape[0]
    wb = w.reshape((n,) + (1,) * (h.ndim - 1))
    bl = 1.0 if baseline else 0.0
    total = jnp.sum(wb, axis=0)
    base = bl * (total - wb) / (n - 1)
    g = h * (wb - base)
    if control_variate:
        # Sums over j != s of the residual r_j^(s) = h_j (w_j - b_{j,-s}), with
        # b_{j,-s} = (W - w_j - w_s) / (n - 2), rewritten as u_j + c w_s h_j so that all
        # leave-one-out sums come from totals in O(n) rather than O(n^2).
        c = bl / (n - 2) if baseline else 0.0
        u = h * (wb - c * (total - wb))
        s_h, s_hh = jnp.sum(h, 0), jnp.sum(h * h, 0)
        s_u, s_uh = jnp.sum(u, 0), jnp.sum(u * h, 0)
        m = n - 1
        sh = s_h - h
        shh = s_hh - h * h
        srh = s_uh - u * h + c * wb * shh
        sr = s_u - u + c * wb * sh
        cov = srh / m - sr * sh / m**2
        var = shh / m - sh**2 / m**2
        tiny = jnp.finfo(h.dtype).tiny
        a = jnp.where(var > tiny, cov / jnp.where(var > tiny, var, 1.0), 0.0)
        g = g - a * h
    return jnp.mean(g, axis=0)


class ScoreFunction(Estimator):
    """Black-box score-function estimator; ``baseline`` and ``control_variate`` switch the two
    variance reductions on or off (both on by default)."""

    baseline: bool = True
    control_variate: bool = True
    name: ClassVar[str] = "score"
    needs_target_grad: ClassVar[bool] = False

    def min_draws(self) -> int:
        return 1 + int(self.baseline) + int(self.control_variate)

    def default_draws(self) -> int:
        return 64

    def label(self) -> str:
        off = [n for n, on in (("baseline", self.baseline), ("cv", self.control_variate))
               if not on]
        return self.name if not off else f"{self.name} (no {', no '.join(off)})"

    def check(self, objective: Objective) -> None:
        if not objective.linear_in_weights:
            raise ConfigError(
                f"the score estimator here serves objectives that are expectations of the "
                f"log-weights (the ELBO); {objective.name!r} is not. Use estimator="
                f"{objective.default_estimator(True)!r} (on a differentiable target)."
            )

    def loss_grad(self, objective, log_density, family, params, key, n):
        z = jax.lax.stop_gradient(family.sample(params, key, n))
        logw = jax.vmap(log_density)(z) - family.batch_log_prob(params, z)
        # Both reductions are invariant to shifting w by a constant; centring keeps the
        # leave-one-out sums accurate in float32 when log p carries a large constant.
        w = logw - jnp.mean(logw) if (self.baseline or self.control_variate) else logw
        scores = jax.vmap(jax.grad(family.log_prob), in_axes=(None, 0))(params, z)
        grad_elbo = jax.tree.map(
            lambda h: _corrected_mean(h, w, self.baseline, self.control_variate), scores
        )
        neg = jax.tree.map(lambda g: -objective.direction * g, grad_elbo)
        return neg, Aux(objective.value(logw), logw)

    def surrogate(self, objective, log_density, family, params, key, n):
        # A surrogate that is linear in params with the estimate as its slope.
        grads, aux = self.loss_grad(objective, log_density, family, params, key, n)
        leaves = jax.tree.leaves(jax.tree.map(lambda g, p: jnp.vdot(jax.lax.stop_gradient(g), p),
                                              grads, params))
        return sum(leaves), aux
