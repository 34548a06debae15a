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
    ``mean`` and ``covariance`` where known in closed form; ``from_gaussian`` where a Gaussian
    (e.g. Pathfinder's) can start the family.

    Traits, read by estimators and optimizers to refuse pairs that do not fit:
      reparameterized: ``sample`` is differentiable in every parameter, so pathwise estimators
        (``reparam``, ``stl``) are unbiased. A mixture's component choice is not.
      stratified: ``sample_strata(params, key, n) -> (z (K, m, d), weights (K,))`` and
        ``sample_strata_and_log_prob(params, key, n, path_only=) -> (z, log q (K, m), weights)``
        exist: m
        reparameterized draws from each of K strata and the strata's probabilities.
      default_estimator: the estimator ``fit`` uses when none is named (None: the usual one).
      gaussian_form: ``"dense"`` or ``"diagonal"`` for Gaussian families whose parameters
        map one-to-one to (mean, covariance), which natural-gradient VI needs; else None.
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
    reparameterized: ClassVar[bool] = True
    stratified: ClassVar[bool] = False
    default_estimator: ClassVar[str | None] = None
    gaussian_form: ClassVar[str | None] = None
    # Stale windows before the plateau rule stops a fit when the caller gives no patience.
    default_patience: ClassVar[int] = 3

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

    def from_gaussian(self, mean: Array, cov: Array) -> Params:
        """Parameters that make q equal (or, for a restricted family, closest in form to)
        N(mean, cov): how Pathfinder or an earlier Gaussian fit starts this family."""
        raise NotImplementedError(f"{type(self).__name__} cannot start from a Gaussian.")

    def dim(self, params: Params) -> int:
        return int(params["loc"].shape[-1])


def gaussian_entropy(logdet_cov: Array, dim: int) -> Array:
    """Entropy of N(., Sigma) in nats from log|Sigma|."""
    return 0.5 * logdet_cov + 0.5 * dim * (1.0 + math.log(2.0 * math.pi))
