"""Objectives: how per-draw log-weights log p(x, z_i) - log q(z_i) become one scalar to maximize."""

from __future__ import annotations

import abc

import equinox as eqx
import jax

Array = jax.Array


class Objective(eqx.Module):
    """A variational objective, estimated from log-weights ``logw (n,)`` of draws from q.

    Traits, read by estimators to refuse pairs that do not fit:
      is_lower_bound: the objective's expectation is <= log Z.
      linear_in_weights: the objective is E_q[logw], so the score-function identity applies.
    """

    name: eqx.AbstractClassVar[str]
    is_lower_bound: eqx.AbstractClassVar[bool]
    linear_in_weights: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def value(self, logw: Array) -> Array:
        """The Monte Carlo estimate of the objective from ``logw (n,)``: a scalar, in nats."""
