"""The Family abstraction: a variational distribution as pure functions over a params pytree."""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import equinox as eqx
import jax

from vifit.errors import ConfigError

Array = jax.Array
Params = dict[str, Array]


class Family(eqx.Module):
    """A variational family q_theta(z) on R^d.

    A Family object holds only static configuration (a rank, an initial scale); the parameters
    theta are a separate pytree, so the same family can be vmapped over many fits.
    Subclasses implement ``init``, ``sample`` and ``log_prob`` (for one point); ``entropy``,
    ``mean`` and ``covariance`` where known in closed form.
    """

    name: eqx.AbstractClassVar[str]
    # Traits read by estimators: draws are a differentiable function of params (pathwise
    # gradients apply); draws are integer states; q factorizes over coordinates (sites).
    reparameterized: ClassVar[bool] = True
    discrete: ClassVar[bool] = False
    factorized: ClassVar[bool] = False

    def for_target(self, target: Any) -> Family:
        """This family, configured for ``target`` (e.g. its number of states), or a ConfigError
        when the two cannot go together."""
        if getattr(target, "discrete", False) != self.discrete:
            kinds = ("continuous", "discrete")
            fix = ("family='bernoulli' or 'categorical'" if self.discrete is False
                   else "a continuous family such as 'fullrank'")
            raise ConfigError(
                f"family {self.name!r} is {kinds[self.discrete]} but target "
                f"{getattr(target, 'name', '')!r} is {kinds[not self.discrete]}; use {fix}."
            )
        return self

    @abc.abstractmethod
    def init(self, key: Array, dim: int, loc: Array | None = None) -> Params:
        """Initial parameters for dimension ``dim``, centred at ``loc`` (default 0)."""

    @abc.abstractmethod
    def sample(self, params: Params, key: Array, n: int) -> Array:
        """``n`` draws, shape ``(n, dim)``; differentiable in ``params`` (reparameterized)."""

    @abc.abstractmethod
    def log_prob(self, params: Params, z: Array) -> Array:
        """log q(z) for one point ``z (dim,)``: a scalar."""

    def batch_log_prob(self, params: Params, z: Array) -> Array:
        """log q at each row of ``z (n, dim)``: shape ``(n,)``."""
        return jax.vmap(self.log_prob, in_axes=(None, 0))(params, z)

    def sample_and_log_prob(self, params: Params, key: Array, n: int, *,
                            path_only: bool = False) -> tuple[Array, Array]:
        """Draws ``z (n, dim)`` (as ``sample`` with the same key) and ``log q(z) (n,)``.

        Both are differentiable in ``params``. With ``path_only`` the gradient of log q flows
        only through z: the score term d/dtheta log q_theta(z) at fixed z is dropped, as
        sticking-the-landing needs. Families override this when log q at their own draws is
        cheaper than ``log_prob`` (Gaussians need no linear solve).
        """
        z = self.sample(params, key, n)
        q_params = jax.tree.map(jax.lax.stop_gradient, params) if path_only else params
        return z, self.batch_log_prob(q_params, z)

    def entropy(self, params: Params) -> Array:
        """Closed-form entropy in nats, where the family has one."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form entropy.")

    def mean(self, params: Params) -> Array:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form mean.")

    def covariance(self, params: Params) -> Array:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form covariance.")

    def dim(self, params: Params) -> int:
        return int(params["loc"].shape[-1])


def gaussian_entropy(logdet_cov: Array, dim: int) -> Array:
    """Entropy of N(., Sigma) in nats from log|Sigma|."""
    return 0.5 * logdet_cov + 0.5 * dim * (1.0 + math.log(2.0 * math.pi))
