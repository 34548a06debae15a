"""Pathwise (reparameterization) estimators: z = T_theta(eps), gradient flows through log p."""

from __future__ import annotations

from typing import ClassVar

import jax

from vifit.errors import ConfigError
from vifit.estimators.base import Aux, Estimator, LogDensity
from vifit.families.base import Family, Params
from vifit.objectives.base import Array, Objective


def _pathwise(objective: Objective, log_density: LogDensity, family: Family, params: Params,
              key: Array, n: int, path_only: bool) -> tuple[Array, Aux]:
    z, log_q = family.sample_and_log_prob(params, key, n, path_only=path_only)
    logw = jax.vmap(log_density)(z) - log_q
    value = objective.value(logw)
    return -objective.direction * value, Aux(jax.lax.stop_gradient(value),
                                             jax.lax.stop_gradient(logw))


def _check_pathwise(name: str, objective: Objective) -> None:
    if not objective.pathwise:
        raise ConfigError(
            f"estimator {name!r} differentiates the objective through the draws, which does not "
            f"give the gradient of {objective.name!r}; use estimator="
            f"{objective.default_estimator(True)!r}."
        )


class Reparam(Estimator):
    """The reparameterization gradient of Kingma & Welling (2014): differentiate the
    Monte Carlo objective through the draws. Needs grad log p. Unbiased for every objective
    whose Monte Carlo estimate is differentiable in the draws (ELBO, IWAE, Renyi, CUBO)."""

    name: ClassVar[str] = "reparam"
    needs_target_grad: ClassVar[bool] = True

    def check(self, objective: Objective) -> None:
        _check_pathwise(self.name, objective)

    def surrogate(self, objective, log_density, family, params, key, n):
        return _pathwise(objective, log_density, family, params, key, n, path_only=False)


class STL(Estimator):
    """Sticking the landing (Roeder, Wu & Duvenaud, 2017): the pathwise gradient without the
    score term of log q, whose expectation is zero. Its variance vanishes when q = p.

    For multi-draw objectives (IWAE, Renyi, CUBO) the dropped term's expectation is not zero,
    so STL is biased there (Tucker et al., 2019); ``dreg`` is the unbiased correction."""

    name: ClassVar[str] = "stl"
    needs_target_grad: ClassVar[bool] = True

    def check(self, objective: Objective) -> None:
        _check_pathwise(self.name, objective)

    def bias(self, objective: Objective) -> str | None:
        if objective.linear_in_weights:
            return None
        return (f"biased for {objective.label()}: the dropped score term has non-zero mean "
                "for multi-draw objectives; use 'dreg'")

    def surrogate(self, objective, log_density, family, params, key, n):
        return _pathwise(objective, log_density, family, params, key, n, path_only=True)
