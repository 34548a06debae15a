"""Objectives: how per-draw log-weights log p(x, z_i) - log q(z_i) become one scalar to optimize."""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class Objective(eqx.Module):
    """A variational objective, estimated from log-weights ``logw (n,)`` of draws from q.

    Traits, read by estimators and by the loop (never ``isinstance``):
      is_lower_bound: the objective's expectation is <= log Z.
      is_upper_bound: the objective (in the limit of its group size) is >= log Z.
      linear_in_weights: the objective is E_q[logw], so the score-function identity applies.
      pathwise: differentiating ``value`` through reparameterized draws gives the gradient of
        the objective (false for forward KL, whose gradient is a self-normalized score).
      inclusive: the objective is KL(p || q) (mass-covering); served by the ``snis`` estimator.
      direction: +1 to maximize, -1 to minimize. The loop and the estimators read only this.
      warm_start: the objective to fit first when no initial parameters are given, or None.
        Upper bounds need it: their K-draw estimates see only where q puts its draws, so from
        a narrow start minimizing them shrinks q further instead of covering p.
    """

    name: eqx.AbstractClassVar[str]
    is_lower_bound: eqx.AbstractClassVar[bool]
    linear_in_weights: eqx.AbstractClassVar[bool]
    is_upper_bound: ClassVar[bool] = False
    pathwise: ClassVar[bool] = True
    inclusive: ClassVar[bool] = False
    direction: ClassVar[int] = 1
    warm_start: ClassVar[str | None] = None

    @abc.abstractmethod
    def value(self, logw: Array) -> Array:
        """The Monte Carlo estimate of the objective from ``logw (n,)``: a scalar, in nats."""

    def loss(self, logw: Array) -> Array:
        """What an optimizer minimizes: ``-direction * value``."""
        return -self.direction * self.value(logw)

    def group_size(self) -> int:
        """Draws per independent group: ``value`` averages a per-group estimate over ``n / K``
        groups, so a step's number of draws must be a multiple of it."""
        return 1

    def group_values(self, logw: Array) -> Array:
        """The per-group estimates ``(n / K,)`` whose mean is ``value`` (here: K = 1)."""
        return logw

    def label(self) -> str:
        """The name with its settings, for reports: ``iwae(K=8)``."""
        return self.name

    def default_estimator(self, differentiable: bool) -> str:
        """The estimator ``fit`` uses when none is given."""
        # reparam, not stl: far from the optimum stl's variance is orders of magnitude larger
        # (docs/engine.md), and on a d=60 GP model stl with Adam at lr 1e-2 stalled at ELBO
        # -140 where reparam reached -32.1. Robustness first; stl stays one flag away.
        return "reparam" if differentiable else "score"

    def dreg_weights(self, logw: Array) -> Array | None:
        """Per-draw coefficients c_i with grad value = E[sum_i c_i d logw_i / dz_i dz_i/dtheta]
        (q's parameters held fixed inside logw): the doubly reparameterized form. ``None`` when
        the objective has none."""
        return None

    def estimate(self, logw: np.ndarray) -> tuple[float, float]:
        """The objective and its Monte Carlo standard error from ``logw (n,)`` (float64); draws
        past the last whole group are dropped."""
        k = self.group_size()
        lw = np.asarray(logw, dtype=np.float64)
        lw = lw[: lw.shape[0] - lw.shape[0] % k]
        # Every group value is shift-equivariant (f(l + c) = f(l) + c): centring keeps float32
        # accurate when log p carries a large constant.
        c = float(np.mean(lw[np.isfinite(lw)])) if np.isfinite(lw).any() else 0.0
        g = np.asarray(self.group_values(jnp.asarray(lw - c)), dtype=np.float64) + c
        if g.size == 0:
            return float("nan"), float("nan")
        if not np.all(np.isfinite(g)):  # -inf groups (draws outside the support): no se
            with np.errstate(invalid="ignore"):  # +inf and -inf together: NaN
                return float(g.mean()), float("nan")
        se = float(g.std(ddof=1) / np.sqrt(g.size)) if g.size > 1 else float("inf")
        return float(g.mean()), se


def groups(logw: Array, k: int) -> Array:
    """``logw (n,) -> (n / k, k)``; refuses an ``n`` that is not a multiple of ``k``."""
    n = logw.shape[0]
    if n % k:
        raise ValueError(f"{n} draws do not split into groups of K={k}; use a multiple of {k}.")
    return logw.reshape(n // k, k)
