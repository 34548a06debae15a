"""The VAE: prior N(0, I), decoder p(x | z), amortized encoder q(z | x), and the configuration
that rebuilds it (saved as JSON next to every checkpoint)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from vifit.amortized.flows import ConditionalFlow
from vifit.amortized.likelihoods import Likelihood, make_likelihood
from vifit.amortized.networks import MLP, ConvDecoder, ConvEncoder, activation
from vifit.amortized.posterior import GaussianEncoder
from vifit.errors import ConfigError

Array = jax.Array
_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Everything that fixes the model's architecture (not its training).

    ``hidden``: widths of the deterministic layers of both networks (the decoder mirrors them);
    ``arch``: ``"mlp"`` or ``"conv"`` (needs ``image_shape`` with sides divisible by 4);
    ``likelihood``: ``"auto"``, ``"bernoulli"``, ``"gaussian"``, ``"categorical"``;
    ``flow_layers``: coupling layers on top of the Gaussian q (0: none).
    """

    data_dim: int
    data_kind: str = "binary"
    latent_dim: int = 2
    hidden: tuple[int, ...] = (200, 200)
    activation: str = "tanh"
    arch: str = "mlp"
    image_shape: tuple[int, int] | None = None
    likelihood: str = "auto"
    n_categories: int | None = None
    gaussian_scale: str = "diagonal"
    flow_layers: int = 0
    flow_hidden: tuple[int, ...] = (64,)

    def __post_init__(self):
        if self.latent_dim < 1 or self.data_dim < 1:
            raise ConfigError("latent_dim and data_dim must be positive.")
        if self.arch not in ("mlp", "conv"):
            raise ConfigError(f"unknown architecture {self.arch!r}; choose mlp or conv.")
        if self.arch == "conv" and self.image_shape is None:
            raise ConfigError("--arch conv needs image data (an image shape); use --arch mlp.")
        if self.flow_layers < 0:
            raise ConfigError("flow_layers must be >= 0.")
        activation(self.activation)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VAEConfig:
        d = dict(d)
        for k in ("hidden", "flow_hidden", "image_shape"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


class VAE(eqx.Module):
    """p(z) = N(0, I), p(x | z) = likelihood(decoder(z)), q(z | x) = encoder(x).

    Methods act on ONE example ``x (D,)`` in the data's own coding (0/1, reals, or integer
    categories); vmap over a batch.
    """

    encoder: GaussianEncoder
    decoder: MLP | ConvDecoder
    likelihood: Likelihood
    latent_dim: int = eqx.field(static=True)

    def q_input(self, x: Array) -> Array:
        return self.likelihood.encoder_input(x)

    def log_prior(self, z: Array) -> Array:
        """log N(z; 0, I) over the last axis."""
        return jnp.sum(-0.5 * z**2 - 0.5 * _LOG_2PI, axis=-1)

    def log_likelihood(self, x: Array, z: Array) -> Array:
        """log p(x | z) for each row of ``z (n, L)``: ``(n,)``."""
        return jax.vmap(lambda zz: self.likelihood.log_prob(self.decoder(zz), x))(z)

    def log_weights(self, x: Array, key: Array, n: int) -> Array:
        """``log p(x, z_k) - log q(z_k | x)`` for ``n`` draws from q: ``(n,)``, pathwise
        differentiable in all parameters."""
        return self.log_weights_from_noise(x, jax.random.normal(key, (n, self.latent_dim)))

    def log_weights_from_noise(self, x: Array, eps: Array) -> Array:
        """``log_weights`` with the draws made from standard normal noise ``eps (n, L)``."""
        z, log_q = self.encoder.transform(self.q_input(x), eps)
        return self.log_likelihood(x, z) + self.log_prior(z) - log_q

    def decode_mean(self, z: Array) -> Array:
        """E[x | z] for each row of ``z (n, L)``: ``(n, D)``."""
        return jax.vmap(lambda zz: self.likelihood.mean(self.decoder(zz)))(z)

    def reconstruct(self, x: Array, key: Array) -> Array:
        """E[x | z] at z = E_q[z | x]: ``(D,)``."""
        z = self.encoder.mean(self.q_input(x), key)
        return self.decode_mean(z[None])[0]

    def sample(self, key: Array, n: int, mean: bool = True) -> Array:
        """``n`` new examples from the model, ``(n, D)``: E[x | z] (``mean=True``) or draws."""
        kz, kx = jax.random.split(key)
        z = jax.random.normal(kz, (n, self.latent_dim))
        if mean:
            return self.decode_mean(z)
        keys = jax.random.split(kx, n)
        return jax.vmap(lambda zz, k: self.likelihood.sample(self.decoder(zz), k))(z, keys)


def output_bias(likelihood: Likelihood, train_x: np.ndarray) -> np.ndarray:
    """A decoder output bias that makes p(x | z) match the data's marginals at the start
    (the usual initialization; it saves many early epochs on sparse binary images)."""
    x = np.asarray(train_x, dtype=np.float64)
    if likelihood.name == "bernoulli":
        p = np.clip(x.mean(0), 1e-3, 1 - 1e-3)
        return np.log(p) - np.log1p(-p)
    if likelihood.name == "gaussian":
        return x.mean(0)
    counts = np.stack([(x == c).mean(0) for c in range(likelihood.outputs_per_dim)], axis=-1)
    return np.log(np.clip(counts, 1e-3, None)).reshape(-1)


def build_vae(config: VAEConfig, key: Array, train_x: np.ndarray | None = None) -> VAE:
    """A freshly initialized VAE; with ``train_x``, the decoder's output bias starts at the
    data's marginals (per pixel for MLP decoders, their average for convolutional ones)."""
    lik = make_likelihood(config.likelihood, config.data_dim, config.data_kind,
                          config.n_categories, config.gaussian_scale)
    k_enc, k_dec, k_flow = jax.random.split(key, 3)
    L, D, H = config.latent_dim, config.data_dim, config.hidden
    n_out = D * lik.outputs_per_dim
    if config.arch == "conv":
        enc_net = ConvEncoder(config.image_shape, 2 * L, H, config.activation, k_enc)
        decoder = ConvDecoder(L, config.image_shape, lik.outputs_per_dim, tuple(reversed(H)),
                              config.activation, k_dec)
        if train_x is not None:  # one bias per output channel: the marginals' average
            c = lik.outputs_per_dim
            bias = output_bias(lik, train_x).reshape(D, c).mean(0).reshape(c, 1, 1)
            last = decoder.deconvs[1]
            decoder = eqx.tree_at(lambda m: m.deconvs[1].bias, decoder,
                                  jnp.asarray(bias, dtype=last.bias.dtype))
    else:
        enc_net = MLP(D, 2 * L, H, config.activation, k_enc)
        decoder = MLP(L, n_out, tuple(reversed(H)), config.activation, k_dec)
        if train_x is not None:
            bias = jnp.asarray(output_bias(lik, train_x), dtype=decoder.layers[-1].bias.dtype)
            decoder = eqx.tree_at(lambda m: m.layers[-1].bias, decoder, bias)
    flow = None
    if config.flow_layers:
        ctx = jax.eval_shape(lambda x: enc_net.split_call(x)[0],
                             jax.ShapeDtypeStruct((D,), jnp.result_type(float))).shape[0]
        flow = ConditionalFlow(L, ctx, config.flow_layers, config.flow_hidden, k_flow)
    encoder = GaussianEncoder(enc_net, flow, L)
    return VAE(encoder, decoder, lik, L)
