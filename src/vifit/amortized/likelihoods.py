"""Observation models p(x | z): the decoder network gives their parameters for one example.

A Likelihood reads the decoder's flat output ``out (D * outputs_per_dim,)`` (pixel-major) and
scores one example ``x (D,)``. Traits say which data it serves (``data_kind``), so a mismatch
(a Bernoulli decoder on real-valued data) is refused before training with the fix.
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from vifit.errors import ConfigError

Array = jax.Array
_LOG_2PI = math.log(2.0 * math.pi)


class Likelihood(eqx.Module):
    """p(x | z) for one example given the decoder output.

    Traits: ``name``; ``data_kind`` in {"binary", "real", "discrete"}.
    """

    name: eqx.AbstractClassVar[str]
    data_kind: eqx.AbstractClassVar[str]

    @property
    def outputs_per_dim(self) -> int:
        return 1

    @abc.abstractmethod
    def log_prob(self, out: Array, x: Array) -> Array:
        """log p(x | z) in nats, a scalar, from ``out (D * outputs_per_dim,)`` and ``x (D,)``."""

    @abc.abstractmethod
    def mean(self, out: Array) -> Array:
        """E[x | z], shape ``(D,)`` (what reconstructions and sample plots show)."""

    @abc.abstractmethod
    def sample(self, out: Array, key: Array) -> Array:
        """One draw of x given z, shape ``(D,)``."""

    def encoder_input(self, x: Array) -> Array:
        """What the encoder sees of ``x`` (a float vector on a unit scale)."""
        return x.astype(jnp.result_type(float))


class Bernoulli(Likelihood):
    """Independent Bernoulli pixels with logits from the decoder (binary data)."""

    name: ClassVar[str] = "bernoulli"
    data_kind: ClassVar[str] = "binary"

    def log_prob(self, out, x):
        # x log sigmoid(l) + (1 - x) log sigmoid(-l) = x l - softplus(l), stable for large |l|.
        return jnp.sum(x * out - jax.nn.softplus(out))

    def mean(self, out):
        return jax.nn.sigmoid(out)

    def sample(self, out, key):
        return jax.random.bernoulli(key, jax.nn.sigmoid(out)).astype(out.dtype)


class Gaussian(Likelihood):
    """Gaussian x | z ~ N(mean(z), diag(exp(2 log_scale))) with the mean from the decoder and
    a learned log-scale, one per dimension (``scale="diagonal"``) or one for all
    (``scale="isotropic"``, the noise model of probabilistic PCA)."""

    log_scale: Array
    name: ClassVar[str] = "gaussian"
    data_kind: ClassVar[str] = "real"

    def __init__(self, data_dim: int, scale: str = "diagonal", init_log_scale: float = 0.0):
        if scale not in ("diagonal", "isotropic"):
            raise ConfigError(f"unknown Gaussian scale {scale!r}; use 'diagonal' or 'isotropic'.")
        shape = (data_dim,) if scale == "diagonal" else ()
        self.log_scale = jnp.full(shape, init_log_scale, dtype=jnp.result_type(float))

    def log_prob(self, out, x):
        log_s = jnp.broadcast_to(self.log_scale, x.shape)
        u = (x - out) * jnp.exp(-log_s)
        return jnp.sum(-0.5 * u**2 - log_s) - 0.5 * x.shape[-1] * _LOG_2PI

    def mean(self, out):
        return out

    def sample(self, out, key):
        return out + jnp.exp(self.log_scale) * jax.random.normal(key, out.shape, out.dtype)


class Categorical(Likelihood):
    """Each dimension takes one of ``n_categories`` values 0..C-1 (grey levels, counts, tokens);
    the decoder gives C logits per dimension."""

    n_categories: int = eqx.field(static=True)
    name: ClassVar[str] = "categorical"
    data_kind: ClassVar[str] = "discrete"

    def __check_init__(self):
        if self.n_categories < 2:
            raise ConfigError(f"a categorical likelihood needs >= 2 categories, got {self.n_categories}.")

    @property
    def outputs_per_dim(self) -> int:
        return self.n_categories

    def _log_probs(self, out: Array) -> Array:
        return jax.nn.log_softmax(out.reshape(-1, self.n_categories), axis=-1)

    def log_prob(self, out, x):
        lp = self._log_probs(out)
        idx = x.astype(jnp.int32)
        return jnp.sum(jnp.take_along_axis(lp, idx[:, None], axis=-1))

    def mean(self, out):
        p = jnp.exp(self._log_probs(out))
        return p @ jnp.arange(self.n_categories, dtype=p.dtype)

    def sample(self, out, key):
        return jax.random.categorical(key, self._log_probs(out), axis=-1).astype(out.dtype)

    def encoder_input(self, x):
        return x.astype(jnp.result_type(float)) / (self.n_categories - 1)


LIKELIHOODS = ("bernoulli", "gaussian", "categorical")
DEFAULT_FOR_KIND = {"binary": "bernoulli", "real": "gaussian", "discrete": "categorical"}


def make_likelihood(name: str, data_dim: int, data_kind: str, n_categories: int | None = None,
                    gaussian_scale: str = "diagonal") -> Likelihood:
    """A Likelihood by name (``"auto"`` picks from ``data_kind``), checked against the data."""
    if name == "auto":
        name = DEFAULT_FOR_KIND[data_kind]
    if name == "bernoulli":
        if data_kind != "binary":
            raise ConfigError(
                f"the Bernoulli likelihood needs binary (0/1) data, but the data are {data_kind}; "
                "binarize them or choose --likelihood gaussian (real) / categorical (integers)."
            )
        return Bernoulli()
    if name == "gaussian":
        return Gaussian(data_dim, gaussian_scale)
    if name == "categorical":
        if data_kind == "real":
            raise ConfigError(
                "the categorical likelihood needs integer data 0..C-1, but the data are real; "
                "choose --likelihood gaussian."
            )
        return Categorical(int(n_categories or 2))
    raise ConfigError(f"unknown likelihood {name!r}; choose auto, {', '.join(LIKELIHOODS)}.")
