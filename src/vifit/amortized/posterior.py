"""The amortized posterior q(z | x): a network gives a diagonal Gaussian for each x, optionally
followed by a conditional coupling flow (then q is no longer Gaussian and KL(q || p) has no
closed form, so objectives estimate it by Monte Carlo).

All methods take ONE example's encoder input ``x (D,)``; callers vmap over the batch.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from vifit.amortized.flows import ConditionalFlow
from vifit.amortized.networks import MLP, ConvEncoder

Array = jax.Array
_LOG_2PI = math.log(2.0 * math.pi)


def _normal_log_prob(u: Array, log_scale: Array) -> Array:
    """log N(loc + exp(log_scale) u; loc, diag(exp(2 log_scale))) summed over the last axis."""
    return jnp.sum(-0.5 * u**2 - log_scale - 0.5 * _LOG_2PI, axis=-1)


def gaussian_kl_to_std_normal(loc: Array, log_scale: Array) -> Array:
    """KL(N(loc, diag s^2) || N(0, I)) = 0.5 sum(s^2 + loc^2 - 1 - 2 log s), in nats."""
    return 0.5 * jnp.sum(jnp.exp(2 * log_scale) + loc**2 - 1.0 - 2.0 * log_scale)


class GaussianEncoder(eqx.Module):
    """q(z | x) = N(loc(x), diag(exp(2 log_scale(x)))), pushed through ``flow`` when given.

    ``net`` maps x to ``2 * latent_dim`` numbers: the loc, then the log-scale. Its last hidden
    layer is the flow's context.
    """

    net: MLP | ConvEncoder
    flow: ConditionalFlow | None
    latent_dim: int = eqx.field(static=True)

    @property
    def has_analytic_kl(self) -> bool:
        """KL(q(z|x) || N(0, I)) in closed form: true for the plain Gaussian only."""
        return self.flow is None

    def gaussian(self, x: Array) -> tuple[Array, Array, Array]:
        """``(loc (L,), log_scale (L,), context (H,))`` of the Gaussian before the flow."""
        context, out = self.net.split_call(x)
        loc, log_scale = jnp.split(out, 2)
        return loc, log_scale, context

    def sample(self, x: Array, key: Array, n: int) -> tuple[Array, Array]:
        """``n`` reparameterized draws ``z (n, L)`` and their ``log q(z | x) (n,)``, both
        differentiable in the encoder's parameters."""
        return self.transform(x, jax.random.normal(key, (n, self.latent_dim)))

    def transform(self, x: Array, eps: Array) -> tuple[Array, Array]:
        """Draws from standard normal noise ``eps (n, L)``: ``z = T(eps; x)`` and ``log q(z|x)``.
        (Objectives draw the noise of a whole minibatch at once, which is cheaper than one
        key per example.)"""
        return self.push(self.gaussian(x), eps)

    def push(self, gaussian: tuple[Array, Array, Array], eps: Array) -> tuple[Array, Array]:
        """``transform`` given ``gaussian(x)`` already computed (so callers that also need the
        KL run the encoder network once)."""
        loc, log_scale, context = gaussian
        eps = eps.astype(loc.dtype)
        z = loc + jnp.exp(log_scale) * eps
        log_q = _normal_log_prob(eps, log_scale)
        if self.flow is not None:
            z, logdet = jax.vmap(self.flow.forward, in_axes=(0, None))(z, context)
            log_q = log_q - logdet
        return z, log_q

    def log_prob(self, x: Array, z: Array) -> Array:
        """``log q(z | x)`` at given draws ``z (n, L)``: shape ``(n,)``. Through the inverse flow,
        so it can be evaluated with the parameters held fixed (the DReG estimator)."""
        loc, log_scale, context = self.gaussian(x)
        logdet = 0.0
        if self.flow is not None:
            z, logdet = jax.vmap(self.flow.inverse, in_axes=(0, None))(z, context)
        return _normal_log_prob((z - loc) * jnp.exp(-log_scale), log_scale) + logdet

    def kl_to_prior(self, x: Array) -> Array:
        """KL(N(loc, diag s^2) || N(0, I)) of the Gaussian before any flow, in nats."""
        loc, log_scale, _ = self.gaussian(x)
        return gaussian_kl_to_std_normal(loc, log_scale)

    def mean(self, x: Array, key: Array, n: int = 256) -> Array:
        """E_q[z | x], shape ``(L,)``: exact for the Gaussian, from ``n`` draws under a flow."""
        if self.flow is None:
            return self.gaussian(x)[0]
        return jnp.mean(self.sample(x, key, n)[0], axis=0)
