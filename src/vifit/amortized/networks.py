"""Neural networks for encoders and decoders: MLPs and a small convolutional pair, in Equinox.

Every network maps ONE example to a flat vector (callers vmap over the batch):
``MLP: (in,) -> (out,)``; ``ConvEncoder: (H*W,) -> (out,)``; ``ConvDecoder: (in,) -> (H*W*c,)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from vifit.errors import ConfigError

Array = jax.Array

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "gelu": jax.nn.gelu,
}


def activation(name: str) -> Callable[[Array], Array]:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


class MLP(eqx.Module):
    """Linear layers with an activation between them: ``(in,) -> (out,)``.

    ``hidden=()`` gives one affine map (the linear-Gaussian decoder of probabilistic PCA).
    ``zero_last`` starts the output layer at zero, so a flow or a head starts as the identity
    or at a chosen bias.
    """

    layers: tuple[eqx.nn.Linear, ...]
    act: str = eqx.field(static=True)

    def __init__(self, in_size: int, out_size: int, hidden: Sequence[int], act: str,
                 key: Array, zero_last: bool = False):
        activation(act)  # refuse unknown names at construction
        sizes = [in_size, *hidden, out_size]
        keys = jax.random.split(key, len(sizes) - 1)
        layers = [eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)]
        if zero_last:
            last = layers[-1]
            layers[-1] = eqx.tree_at(lambda m: (m.weight, m.bias), last,
                                     (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)))
        self.layers = tuple(layers)
        self.act = act

    def hidden_features(self, x: Array) -> Array:
        """The last hidden layer's activations (the input itself when there is none)."""
        f = activation(self.act)
        for layer in self.layers[:-1]:
            x = f(layer(x))
        return x

    def split_call(self, x: Array) -> tuple[Array, Array]:
        """``(last hidden activations, output)`` in one pass."""
        h = self.hidden_features(x)
        return h, self.layers[-1](h)

    def __call__(self, x: Array) -> Array:
        return self.layers[-1](self.hidden_features(x))


def _check_image(shape: tuple[int, int]) -> None:
    h, w = shape
    if h % 4 or w % 4:
        raise ConfigError(
            f"the convolutional networks halve the image twice, so its sides must be multiples "
            f"of 4; got {h}x{w}. Use --arch mlp for this data."
        )


class ConvEncoder(eqx.Module):
    """Two stride-2 3x3 convolutions (16, 32 channels), then an MLP head: ``(H*W,) -> (out,)``."""

    convs: tuple[eqx.nn.Conv2d, eqx.nn.Conv2d]
    head: MLP
    image_shape: tuple[int, int] = eqx.field(static=True)
    act: str = eqx.field(static=True)

    def __init__(self, image_shape: tuple[int, int], out_size: int, hidden: Sequence[int],
                 act: str, key: Array, channels: tuple[int, int] = (16, 32)):
        _check_image(image_shape)
        k1, k2, k3 = jax.random.split(key, 3)
        c1, c2 = channels
        self.convs = (eqx.nn.Conv2d(1, c1, 3, stride=2, padding=1, key=k1),
                      eqx.nn.Conv2d(c1, c2, 3, stride=2, padding=1, key=k2))
        h, w = image_shape
        self.head = MLP(c2 * (h // 4) * (w // 4), out_size, hidden, act, k3)
        self.image_shape = tuple(image_shape)
        self.act = act

    def features(self, x: Array) -> Array:
        f = activation(self.act)
        y = x.reshape((1, *self.image_shape))
        for conv in self.convs:
            y = f(conv(y))
        return y.reshape(-1)

    def split_call(self, x: Array) -> tuple[Array, Array]:
        """``(last hidden activations, output)`` in one pass."""
        return self.head.split_call(self.features(x))

    def __call__(self, x: Array) -> Array:
        return self.head(self.features(x))


class ConvDecoder(eqx.Module):
    """An MLP to a (32, H/4, W/4) map, then two stride-2 transposed convolutions to
    ``out_channels`` maps of the full image: ``(in,) -> (H*W*out_channels,)`` pixel-major, so
    that pixel ``p``'s outputs are ``out[p*c:(p+1)*c]``."""

    head: MLP
    deconvs: tuple[eqx.nn.ConvTranspose2d, eqx.nn.ConvTranspose2d]
    image_shape: tuple[int, int] = eqx.field(static=True)
    act: str = eqx.field(static=True)
    channels: int = eqx.field(static=True)

    def __init__(self, in_size: int, image_shape: tuple[int, int], out_channels: int,
                 hidden: Sequence[int], act: str, key: Array, base_channels: tuple[int, int] = (32, 16)):
        _check_image(image_shape)
        k1, k2, k3 = jax.random.split(key, 3)
        c1, c2 = base_channels
        h, w = image_shape
        self.head = MLP(in_size, c1 * (h // 4) * (w // 4), hidden, act, k1)
        self.deconvs = (eqx.nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1, key=k2),
                        eqx.nn.ConvTranspose2d(c2, out_channels, 4, stride=2, padding=1, key=k3))
        self.image_shape = tuple(image_shape)
        self.act = act
        self.channels = base_channels[0]

    def __call__(self, z: Array) -> Array:
        f = activation(self.act)
        h, w = self.image_shape
        y = f(self.head(z)).reshape((self.channels, h // 4, w // 4))
        y = self.deconvs[1](f(self.deconvs[0](y)))  # (out_channels, H, W)
        return jnp.moveaxis(y, 0, -1).reshape(-1)
