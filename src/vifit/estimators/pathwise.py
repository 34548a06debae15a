"""Pathwise (reparameterization) estimators: z = T_theta(eps), gradient flows through log p."""

from __future__ import annotations

from typing import ClassVar

import jax

from vifit.estimators.base import Aux, Estimator, LogDensity
from vifit.families.base import Family, Params
from vifit.objectives.base import Array, Objective


def _pathwise(objective: Objective, log_density: LogDensity, family: Family, params: Params,
              key: Array, n: int, path_only: bool) -> tuple[Array, Aux]:
    z, log_q = family.sample_and_log_prob(params, key, n, path_only=path_only)
    logw = jax.vmap(log_density)(z) - log_q
    value = objective.value(logw)
    return -value, Aux(jax.lax.stop_gradient(value), jax.lax.stop_gradient(logw))


class Reparam(Estimator):
    """The reparameterization gradient of Kingma & Welling (2014): differentiate the
    Monte Carlo objective through the draws. Needs grad log p."""

    name: ClassVar[str] = "reparam"
    needs_target_grad: ClassVar[bool] = True

    def surrogate(self, objective, log_density, family, params, key, n):
        return _pathwise(objective, log_density, family, params, key, n, path_only=False)


class STL(Estimator):
    """Sticking the landing (Roeder, Wu & Duvenaud, 2017): the pathwise gradient without the
    score term of log q, whose expectation is zero. Its variance vanishes when q = p."""

    name: ClassVar[str] = "stl"
    needs_target_grad: ClassVar[bool] = True

    def surrogate(self, objective, log_density, family, params, key, n):
        return _pathwise(objective, log_density, family, params, key, n, path_only=True)


