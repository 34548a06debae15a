"""Mean-field families over integer states: independent Bernoulli or categorical sites.

    q(x) = prod_i q_i(x_i),   q_i(k) = softmax(logits_i)_k,   x_i in {0, ..., K-1}.

Draws are integer arrays ``(n, d)`` and are not differentiable in the parameters
(``reparameterized = False``): fit them with the score-function estimator (``score``), its
Rao-Blackwellized form (``rb``) or the relaxed, biased ``relaxed`` estimator. Parameters are
unconstrained logits, so any real vector is a valid distribution. They start at small random
values (``init_scale``), not at zero: the uniform q is a saddle of symmetric targets.
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from vifit.errors import ConfigError
from vifit.families.base import Array, Family, Params


class _DiscreteMeanField(Family):
    reparameterized: ClassVar[bool] = False
    discrete: ClassVar[bool] = True
    factorized: ClassVar[bool] = True

    def site_log_probs(self, params: Params) -> Array:
        """``(d, K)``: log q_i(k) for every site i and state k."""
        raise NotImplementedError

    def log_prob(self, params: Params, z: Array) -> Array:
        table = self.site_log_probs(params)
        idx = jnp.asarray(z, dtype=jnp.int32)[:, None]
        return jnp.sum(jnp.take_along_axis(table, idx, axis=1))

    def entropy(self, params: Params) -> Array:
        table = self.site_log_probs(params)
        return -jnp.sum(jnp.exp(table) * table)

    def dim(self, params: Params) -> int:
        return int(params["logits"].shape[0])


class Bernoulli(_DiscreteMeanField):
    """Independent binary sites: params ``logits (d,)``, q_i(1) = sigmoid(logits_i)."""

    init_scale: float = 0.1
    name: ClassVar[str] = "bernoulli"

    def for_target(self, target: Any) -> Family:
        super().for_target(target)
        if int(target.n_states) != 2:
            raise ConfigError(
                f"family 'bernoulli' has 2 states per site but target {target.name!r} has "
                f"{target.n_states}; use family='categorical'."
            )
        return self

    def init(self, key: Array, dim: int, loc: Array | None = None) -> Params:
        del loc  # a state is no location; see the module docstring
        return {"logits": self.init_scale * jax.random.normal(key, (dim,))}

    def sample(self, params: Params, key: Array, n: int) -> Array:
        p = jax.nn.sigmoid(params["logits"])
        return jax.random.bernoulli(key, p, (n,) + p.shape).astype(jnp.int32)

    def site_log_probs(self, params: Params) -> Array:
        logits = params["logits"]
        return jnp.stack([-jax.nn.softplus(logits), -jax.nn.softplus(-logits)], axis=-1)

    def log_prob(self, params: Params, z: Array) -> Array:
        logits = params["logits"]
        return jnp.sum(z * logits - jax.nn.softplus(logits))

    def mean(self, params: Params) -> Array:
        return jax.nn.sigmoid(params["logits"])

    def covariance(self, params: Params) -> Array:
        p = jax.nn.sigmoid(params["logits"])
        return jnp.diag(p * (1.0 - p))


class Categorical(_DiscreteMeanField):
    """Independent categorical sites: params ``logits (d, K)``. ``n_states`` (K) is taken from
    the target when left as ``None``."""

    n_states: int | None = eqx.field(default=None, static=True)
    init_scale: float = 0.1
    name: ClassVar[str] = "categorical"

    def for_target(self, target: Any) -> Family:
        super().for_target(target)
        k = int(target.n_states)
        if self.n_states is not None and self.n_states != k:
            raise ConfigError(
                f"family 'categorical' was built with {self.n_states} states but target "
                f"{target.name!r} has {k}; leave n_states unset to take the target's."
            )
        return Categorical(n_states=k, init_scale=self.init_scale)

    def init(self, key: Array, dim: int, loc: Array | None = None) -> Params:
        del loc
        if self.n_states is None:
            raise ConfigError("Categorical needs its number of states: Categorical(n_states=K), "
                              "or let fit() take it from a DiscreteTarget.")
        return {"logits": self.init_scale * jax.random.normal(key, (dim, self.n_states))}

    def sample(self, params: Params, key: Array, n: int) -> Array:
        logits = params["logits"]
        return jax.random.categorical(key, logits, shape=(n,) + logits.shape[:1]).astype(jnp.int32)

    def site_log_probs(self, params: Params) -> Array:
        return jax.nn.log_softmax(params["logits"], axis=-1)

    def mean(self, params: Params) -> Array:
        """``(d, K)``: the marginal probabilities of every state at every site."""
        return jax.nn.softmax(params["logits"], axis=-1)
