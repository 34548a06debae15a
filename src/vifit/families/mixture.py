"""A mixture of K Gaussians, full-rank or diagonal components.

    q(z) = sum_k w_k N(z; m_k, S_k),   w = softmax(logits),
    log q(z) = logsumexp_k (log w_k + log N(z; m_k, S_k))   (exact; no closed-form entropy).

Sampling and gradients. Which component a draw comes from is discrete, so ``sample`` (ancestral:
pick k ~ w, then a reparameterized draw of component k) has no gradient in the weights, and the
pathwise estimators would be biased: the mixture declares ``reparameterized = False``. It is
fitted instead with the *stratified* estimator (``vifit.estimators.Stratified``, Morningstar et
al., 2021), which draws m points from every component and weights the per-component averages:

    ELBO = sum_k w_k E_{q_k}[log p(z) - log q(z)],

exact in expectation over the component index, pathwise within each component, and with the
weights' gradient computed exactly through the w_k in front. ``sample_strata`` provides those
draws. The score estimator also works (it only needs ``log_prob``).
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp

from vifit.errors import ConfigError
from vifit.families.base import Array, Family, Params
from vifit.families.gaussian import FullRank, MeanField

_COMPONENTS = {"fullrank": FullRank, "meanfield": MeanField}


class Mixture(Family):
    """K Gaussian components (``component="fullrank"`` or ``"meanfield"``).

    Params: ``{"logits": (K,), "components": <the component family's params, each leaf with a
    leading axis K>}``. ``init`` spreads the means by ``init_spread`` (in the units of z) around
    ``loc`` so the components do not start identical (identical components get identical
    gradients and never separate).
    """

    k: int = 3
    component: str = "fullrank"
    init_scale: float = 0.1
    init_spread: float = 1.0
    name: ClassVar[str] = "mixture"
    reparameterized: ClassVar[bool] = False
    stratified: ClassVar[bool] = True
    default_estimator: ClassVar[str | None] = "stratified"

    def __check_init__(self):
        if self.component not in _COMPONENTS:
            raise ConfigError(f"mixture component {self.component!r} is unknown; choose "
                              f"{' or '.join(_COMPONENTS)}.")
        if self.k < 1:
            raise ConfigError(f"a mixture needs k >= 1 components, got k={self.k}.")

    @property
    def base(self) -> Family:
        return _COMPONENTS[self.component](init_scale=self.init_scale)

    def dim(self, params: Params) -> int:
        return int(params["components"]["loc"].shape[-1])

    def init(self, key: Array, dim: int, loc: Array | None = None) -> Params:
        centre = jnp.zeros(dim) if loc is None else jnp.asarray(loc, dtype=jnp.result_type(float))
        comps = jax.vmap(lambda k: self.base.init(k, dim, centre))(jax.random.split(key, self.k))
        offsets = self.init_spread * jax.random.normal(key, (self.k, dim))
        comps = {**comps, "loc": comps["loc"] + offsets}
        return {"logits": jnp.zeros(self.k), "components": comps}

    def from_gaussian(self, mean: Array, cov: Array, key: Array | None = None) -> Params:
        """K components with covariance ``cov``, their means spread by half a standard deviation
        along random directions around ``mean``; equal weights."""
        key = jax.random.key(0) if key is None else key
        one = self.base.from_gaussian(mean, cov)
        comps = jax.tree.map(lambda x: jnp.broadcast_to(x, (self.k,) + x.shape), one)
        chol = jnp.linalg.cholesky(cov)
        eps = jax.random.normal(key, (self.k, mean.shape[-1]), dtype=mean.dtype)
        comps = {**comps, "loc": mean + 0.5 * eps @ chol.T}
        return {"logits": jnp.zeros(self.k, dtype=mean.dtype), "components": comps}

    def weights(self, params: Params) -> Array:
        return jax.nn.softmax(params["logits"])

    def _component_log_probs(self, params: Params, z: Array) -> Array:
        return jax.vmap(self.base.log_prob, in_axes=(0, None))(params["components"], z)

    def log_prob(self, params: Params, z: Array) -> Array:
        log_w = jax.nn.log_softmax(params["logits"])
        return jax.nn.logsumexp(log_w + self._component_log_probs(params, z))

    def responsibilities(self, params: Params, z: Array) -> Array:
        """P(component k | z) for one point: ``(K,)``."""
        return jax.nn.softmax(jax.nn.log_softmax(params["logits"])
                              + self._component_log_probs(params, z))

    def sample(self, params: Params, key: Array, n: int) -> Array:
        """Ancestral draws ``(n, dim)``: exact in distribution, no gradient in the weights."""
        k_idx, k_draw = jax.random.split(key)
        idx = jax.random.categorical(k_idx, jax.lax.stop_gradient(params["logits"]), shape=(n,))
        per_comp = self._draws(params, k_draw, n)  # (K, n, d): simple, and K is small
        return jnp.take_along_axis(per_comp, idx[None, :, None], axis=0)[0]

    def _draws(self, params: Params, key: Array, m: int) -> Array:
        keys = jax.random.split(key, self.k)
        return jax.vmap(lambda p, k: self.base.sample(p, k, m))(params["components"], keys)

    def sample_strata(self, params: Params, key: Array, n: int) -> tuple[Array, Array]:
        """``ceil(n / K)`` reparameterized draws from every component, ``(K, m, dim)``, and the
        mixture weights ``(K,)`` to average the strata with."""
        return self._draws(params, key, -(-n // self.k)), self.weights(params)

    def sample_strata_and_log_prob(self, params: Params, key: Array, n: int, *,
                                   path_only: bool = False) -> tuple[Array, Array, Array]:
        """As ``sample_strata`` (same key, same draws), plus log q ``(K, m)`` of the mixture at
        every draw. A draw's own component's density comes from its eps, with no linear solve
        (``base.sample_and_log_prob``); only the other components' need one. Through solves
        alone, float32 draws of an ill-conditioned component gave log q far below the truth at
        the component's own draws, hence impossible ELBOs (+2.8e5 on the stochastic-volatility
        model), which the stratified gradient then rewarded."""
        m = -(-n // self.k)
        keys = jax.random.split(key, self.k)
        z, own = jax.vmap(lambda p, k: self.base.sample_and_log_prob(p, k, m,
                                                                     path_only=path_only))(
            params["components"], keys)  # (K, m, d), (K, m)
        q_params = jax.tree.map(jax.lax.stop_gradient, params) if path_only else params
        return z, self._mix_log_prob(q_params, z, own), self.weights(params)

    def sample_and_log_prob(self, params: Params, key: Array, n: int, *,
                            path_only: bool = False) -> tuple[Array, Array]:
        """Ancestral draws as ``sample`` (same key) and log q at them, each draw's own
        component's density from its eps (see ``sample_strata_and_log_prob``)."""
        k_idx, k_draw = jax.random.split(key)
        idx = jax.random.categorical(k_idx, jax.lax.stop_gradient(params["logits"]), shape=(n,))
        keys = jax.random.split(k_draw, self.k)
        per_comp, own = jax.vmap(lambda p, k: self.base.sample_and_log_prob(
            p, k, n, path_only=path_only))(params["components"], keys)  # (K, n, d), (K, n)
        z = jnp.take_along_axis(per_comp, idx[None, :, None], axis=0)[0]
        own_z = jnp.take_along_axis(own, idx[None, :], axis=0)[0]
        q_params = jax.tree.map(jax.lax.stop_gradient, params) if path_only else params
        cross = jax.vmap(self.base.batch_log_prob, in_axes=(0, None))(q_params["components"], z)
        cross = jnp.where(jnp.arange(self.k)[:, None] == idx[None, :], own_z[None, :], cross)
        log_w = jax.nn.log_softmax(q_params["logits"])
        return z, jax.nn.logsumexp(log_w[:, None] + cross, axis=0)

    def _mix_log_prob(self, params: Params, z: Array, own: Array) -> Array:
        """log q at stratified draws ``z (K, m, d)``, with the draws' own-component log
        densities ``own (K, m)`` used in place of the solved ones."""
        k, m, d = z.shape
        flat = z.reshape(k * m, d)
        cross = jax.vmap(self.base.batch_log_prob, in_axes=(0, None))(params["components"], flat)
        cross = cross.reshape(k, k, m)  # [component j, stratum s, draw i]
        cross = jnp.where(jnp.eye(k, dtype=bool)[:, :, None], own[None, :, :], cross)
        log_w = jax.nn.log_softmax(params["logits"])
        return jax.nn.logsumexp(log_w[:, None, None] + cross, axis=0)

    def mean(self, params: Params) -> Array:
        return self.weights(params) @ params["components"]["loc"]

    def covariance(self, params: Params) -> Array:
        w = self.weights(params)
        locs = params["components"]["loc"]
        covs = jax.vmap(self.base.covariance)(params["components"])
        second = jnp.einsum("k,kij->ij", w, covs) + jnp.einsum("k,ki,kj->ij", w, locs, locs)
        m = w @ locs
        return second - jnp.outer(m, m)
