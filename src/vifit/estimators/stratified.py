"""The stratified pathwise estimator for families that are mixtures over a discrete index.

For q(z) = sum_k w_k q_k(z) (Morningstar, Vikram, Ham, Gallagher & Dillon, 2021, "Automatic
differentiation variational inference with mixtures"):

    ELBO = sum_k w_k E_{q_k}[log p(x, z) - log q(z)]
         ~ sum_k w_k (1/m) sum_j [log p(x, z_kj) - log q(z_kj)],   z_kj = T_k(eps_kj),

an exact sum over the component index and a reparameterized average within each component,
so the weights get their exact gradient through the w_k in front and the components a pathwise
one. ``stl=True`` (default) drops the direct parameter-dependence of log q as sticking the
landing does; that term's expectation, sum_k w_k E_{q_k}[grad log q] = E_q[grad log q], is zero,
so the estimate stays unbiased.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp

from vifit.errors import ConfigError
from vifit.estimators.base import Aux, Estimator
from vifit.families.base import Family
from vifit.objectives.base import Objective


class Stratified(Estimator):
    """Per-component pathwise draws averaged with the mixture weights (see module docstring).
    ``n`` draws per step are split evenly over the K components (at least one each)."""

    stl: bool = True
    name: ClassVar[str] = "stratified"
    needs_target_grad: ClassVar[bool] = True

    def check(self, objective: Objective) -> None:
        if not objective.linear_in_weights:
            raise ConfigError(
                f"the stratified estimator serves objectives that are expectations of the "
                f"log-weights (the ELBO); {objective.name!r} is not. Use estimator='score'."
            )

    def check_family(self, family: Family) -> None:
        if not family.stratified:
            raise ConfigError(
                f"estimator 'stratified' needs a mixture family; {family.name!r} has no strata. "
                "Use estimator='stl'."
            )

    def surrogate(self, objective, log_density, family, params, key, n):
        z, log_q, weights = family.sample_strata_and_log_prob(params, key, n,
                                                              path_only=self.stl)
        k, m, d = z.shape
        logw = jax.vmap(log_density)(z.reshape(k * m, d)) - log_q.reshape(k * m)
        value = jnp.sum(weights * jnp.mean(logw.reshape(k, m), axis=1))
        return -value, Aux(jax.lax.stop_gradient(value), jax.lax.stop_gradient(logw))
