"""A conditional normalizing flow to put on top of the Gaussian q(z | x): affine coupling layers
(Dinh, Sohl-Dickstein & Bengio, 2017, "RealNVP") whose shift and log-scale networks also see
the encoder's last hidden layer ``h(x)``, so the flow is amortized like the Gaussian under it.

Both directions are exact and cheap, which the DReG estimator needs: it scores the draws
``z`` under q with the parameters held fixed, i.e. through the inverse map.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from vifit.amortized.networks import MLP

Array = jax.Array


class AffineCoupling(eqx.Module):
    """``y = z * exp(s) + t`` on the unmasked coordinates, with ``(s, t)`` from the masked ones
    and the context. ``s = tanh(.)`` keeps each layer's scale within [1/e, e], which keeps early
    training stable. The net's last layer starts at zero: the layer starts as the identity."""

    net: MLP
    mask: tuple[int, ...] = eqx.field(static=True)  # 1: passed through, 0: transformed

    def __init__(self, latent_dim: int, context_dim: int, hidden: tuple[int, ...], parity: int,
                 key: Array):
        self.mask = tuple((j + parity) % 2 for j in range(latent_dim))
        self.net = MLP(latent_dim + context_dim, 2 * latent_dim, hidden, "tanh", key,
                       zero_last=True)

    def _shift_log_scale(self, z: Array, context: Array) -> tuple[Array, Array]:
        m = jnp.asarray(self.mask, z.dtype)
        raw = self.net(jnp.concatenate([z * m, context]))
        t, s = jnp.split(raw, 2)
        return (1 - m) * t, (1 - m) * jnp.tanh(s)

    def forward(self, z: Array, context: Array) -> tuple[Array, Array]:
        """``(y, log|det dy/dz|)`` for one ``z (L,)``."""
        t, s = self._shift_log_scale(z, context)
        return z * jnp.exp(s) + t, jnp.sum(s)

    def inverse(self, y: Array, context: Array) -> tuple[Array, Array]:
        """``(z, log|det dz/dy|)``; the masked coordinates of ``y`` equal those of ``z``."""
        t, s = self._shift_log_scale(y, context)
        return (y - t) * jnp.exp(-s), -jnp.sum(s)


class ConditionalFlow(eqx.Module):
    """A stack of coupling layers with alternating masks."""

    layers: tuple[AffineCoupling, ...]

    def __init__(self, latent_dim: int, context_dim: int, n_layers: int, hidden: tuple[int, ...],
                 key: Array):
        keys = jax.random.split(key, n_layers)
        self.layers = tuple(AffineCoupling(latent_dim, context_dim, hidden, i % 2, k)
                            for i, k in enumerate(keys))

    def forward(self, z: Array, context: Array) -> tuple[Array, Array]:
        logdet = jnp.zeros((), z.dtype)
        for layer in self.layers:
            z, ld = layer.forward(z, context)
            logdet = logdet + ld
        return z, logdet

    def inverse(self, y: Array, context: Array) -> tuple[Array, Array]:
        logdet = jnp.zeros((), y.dtype)
        for layer in reversed(self.layers):
            y, ld = layer.inverse(y, context)
            logdet = logdet + ld
        return y, logdet
