"""Gradient estimators: each builds a surrogate loss whose gradient is its estimate of
-grad(objective). The optimizer differentiates the surrogate and never needs to know which
estimator made it."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax

from vifit.errors import ConfigError
from vifit.families.base import Family, Params
from vifit.objectives.base import Objective

Array = jax.Array
LogDensity = Callable[[Array], Array]


class Aux(NamedTuple):
    objective: Array  # () float: the objective estimated at this step's draws, in nats
    logw: Array  # (n,) float: log p(x, z_i) - log q(z_i)


class Estimator(eqx.Module):
    """Turns (objective, target, family, params, key, n draws) into ``(surrogate, Aux)``.

    Traits:
      needs_target_grad: whether it differentiates log p (pathwise) or only evaluates it.
      min_draws: fewest draws per step it is defined for.
    """

    name: eqx.AbstractClassVar[str]
    needs_target_grad: eqx.AbstractClassVar[bool]

    def min_draws(self) -> int:
        return 1

    def default_draws(self) -> int:
        return 16

    def check(self, objective: Objective) -> None:
        """Raise ConfigError when this estimator cannot serve ``objective``."""

    def check_target(self, target: Any, family: Family) -> None:
        """Raise ConfigError when this estimator cannot serve ``family`` on ``target``. By
        default: an estimator that differentiates log p through the draws needs a family whose
        draws are reparameterized (not discrete)."""
        if self.needs_target_grad and family.discrete:
            raise ConfigError(
                f"estimator {self.name!r} differentiates through the draws, but family "
                f"{family.name!r} draws discrete states; use estimator='score', 'rb' or "
                "'relaxed'."
            )

    def label(self) -> str:
        """The name with its settings, for reports."""
        return self.name

    def bias(self, objective: Objective) -> str | None:
        """``None`` when the estimate is unbiased for grad ``objective``; else why it is not."""
        return None

    def evals_per_draw(self, family: Family, params: Params) -> int:
        """Evaluations of log p (with its gradient, for pathwise estimators) per draw: what a
        fair comparison of estimators holds fixed."""
        return 1

    def check_family(self, family: Family) -> None:
        """Raise ConfigError when this estimator cannot serve ``family``: a pathwise estimator
        differentiates ``family.sample``, which must then be differentiable in every parameter."""
        if self.needs_target_grad and not family.reparameterized:
            fix = (f"use estimator={family.default_estimator!r} (its default) or 'score'"
                   if family.default_estimator else "use estimator='score'")
            raise ConfigError(
                f"estimator {self.name!r} differentiates draws of q, but family "
                f"{family.name!r} draws are not differentiable in all its parameters; {fix}."
            )

    def loss_grad(
        self,
        objective: Objective,
        log_density: LogDensity,
        family: Family,
        params: Params,
        key: Array,
        n: int,
    ) -> tuple[Params, Aux]:
        """The estimate of -grad objective (a pytree like ``params``) and the step's Aux."""
        return jax.grad(self.surrogate, argnums=3, has_aux=True)(
            objective, log_density, family, params, key, n
        )

    @abc.abstractmethod
    def surrogate(
        self,
        objective: Objective,
        log_density: LogDensity,
        family: Family,
        params: Params,
        key: Array,
        n: int,
    ) -> tuple[Array, Aux]:
        """A scalar whose gradient in ``params`` estimates -grad objective, and its Aux."""
