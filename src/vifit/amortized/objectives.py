"""Training objectives for the amortized model, per example ``x``:

- ``ELBO(samples=K, kl=...)``: ``E_q[log p(x|z)] - KL(q(z|x) || p(z))``, averaged over K draws.
  ``kl="analytic"`` uses the closed-form KL of a Gaussian q to the N(0, I) prior (lower
  variance), ``"mc"`` estimates it from the same draws, ``"auto"`` picks analytic when q is
  Gaussian (no flow). Gradient: reparameterization (Kingma & Welling, 2014).
- ``IWAE(samples=K, estimator=...)``: ``E[log (1/K) sum_k w_k]``, ``w_k = p(x, z_k) / q(z_k|x)``
  (Burda, Grosse & Salakhutdinov, 2016); tighter as K grows, the ELBO at K = 1.
  ``estimator="dreg"`` (default) gives the encoder the doubly-reparameterized gradient
  (Tucker, Lawson, Gu & Maddison, 2019), ``sum_k w~_k^2 d log w_k / d z_k  d z_k / d phi``
  with ``w~`` the normalized weights, whose signal-to-noise ratio does not decay as K grows;
  the decoder gets the usual ``sum_k w~_k grad_theta log w_k``. ``"reparam"``: plain gradient.

Each objective gives ``surrogate(model, x, key) -> (loss, bound)``: ``grad loss`` is the
estimator's estimate of ``-grad bound``, and ``bound`` is this draw's estimate of the bound in
nats (no gradient).
"""

from __future__ import annotations

import abc
import inspect
import math
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from vifit.amortized.model import VAE
from vifit.amortized.posterior import gaussian_kl_to_std_normal
from vifit.errors import ConfigError

Array = jax.Array


def _stop(tree):
    """stop_gradient on every array leaf of a module (static fields untouched)."""
    return jax.tree.map(lambda a: jax.lax.stop_gradient(a) if eqx.is_array(a) else a, tree)


class AmortizedObjective(eqx.Module):
    """A per-example bound on log p(x) and the gradient estimator that trains it.

    Traits: ``name``; ``is_lower_bound`` (its expectation is <= log p(x)).
    Subclasses give ``bound_from_noise`` (per example), and may override ``surrogate`` (per
    example) or ``loss_grad`` (per minibatch) for another gradient estimator.
    """

    samples: eqx.AbstractVar[int]
    name: eqx.AbstractClassVar[str]
    is_lower_bound: eqx.AbstractClassVar[bool]

    def check(self, model: VAE) -> None:
        """Raise ConfigError when this objective cannot train ``model``."""

    @abc.abstractmethod
    def bound_from_noise(self, model: VAE, x: Array, eps: Array) -> Array:
        """The bound's estimate for one example ``x (D,)`` from the standard normal noise
        ``eps (samples, L)`` that makes its draws from q, in nats."""

    def bound(self, model: VAE, x: Array, key: Array) -> Array:
        """This draw's estimate of the bound for one example ``x (D,)``, in nats."""
        return self.bound_from_noise(model, x, self._noise(model, key, ()))

    def _noise(self, model: VAE, key: Array, batch: tuple[int, ...]) -> Array:
        # One draw for the whole minibatch: cheaper than a key per example.
        return jax.random.normal(key, (*batch, self.samples, model.latent_dim))

    def surrogate(self, model: VAE, x: Array, eps: Array) -> tuple[Array, Array]:
        """``(loss, bound)`` for one example and its noise: ``grad loss`` estimates
        ``-grad bound``."""
        value = self.bound_from_noise(model, x, eps)
        return -value, jax.lax.stop_gradient(value)

    def loss_grad(self, model: VAE, xb: Array, key: Array) -> tuple[VAE, Array]:
        """For a minibatch ``xb (B, D)``: the estimate of ``-grad mean_b bound(x_b)`` (a pytree
        like ``eqx.filter(model, eqx.is_inexact_array)``) and the bounds ``(B,)``."""
        eps = self._noise(model, key, (xb.shape[0],))

        def loss(m):
            losses, bounds = jax.vmap(self.surrogate, in_axes=(None, 0, 0))(m, xb, eps)
            return jnp.mean(losses), bounds

        grads, bounds = eqx.filter_grad(loss, has_aux=True)(model)
        return grads, bounds

    def batch_bound(self, model: VAE, xb: Array, key: Array) -> Array:
        """``bound`` for each row of ``xb (B, D)``: ``(B,)``."""
        eps = self._noise(model, key, (xb.shape[0],))
        return jax.vmap(self.bound_from_noise, in_axes=(None, 0, 0))(model, xb, eps)

    def label(self) -> str:
        return f"{self.name}-{self.samples}"


class ELBO(AmortizedObjective):
    """``E_q[log p(x|z)] - KL(q(z|x) || p(z))`` from ``samples`` draws; ``kl``: auto, analytic
    or mc (see the module docstring). Reparameterization gradient."""

    samples: int = eqx.field(default=1, static=True)
    kl: str = eqx.field(default="auto", static=True)
    name: ClassVar[str] = "elbo"
    is_lower_bound: ClassVar[bool] = True

    def __check_init__(self):
        if self.samples < 1:
            raise ConfigError(f"the ELBO needs >= 1 sample per example, got {self.samples}.")
        if self.kl not in ("auto", "analytic", "mc"):
            raise ConfigError(f"unknown kl {self.kl!r}; choose auto, analytic or mc.")

    def check(self, model: VAE) -> None:
        if self.kl == "analytic" and not model.encoder.has_analytic_kl:
            raise ConfigError(
                "the analytic KL needs a Gaussian q(z|x), but this encoder has a flow on top; "
                "use --kl mc (or auto), or drop the flow."
            )

    def bound_from_noise(self, model, x, eps):
        analytic = model.encoder.has_analytic_kl and self.kl != "mc"
        gaussian = model.encoder.gaussian(model.q_input(x))
        z, log_q = model.encoder.push(gaussian, eps)
        log_lik = model.log_likelihood(x, z)
        if analytic:
            return jnp.mean(log_lik) - gaussian_kl_to_std_normal(gaussian[0], gaussian[1])
        return jnp.mean(log_lik + model.log_prior(z) - log_q)


class IWAE(AmortizedObjective):
    """``log (1/K) sum_k w_k`` from K = ``samples`` draws; ``estimator``: dreg (default) or
    reparam (see the module docstring)."""

    samples: int = eqx.field(default=5, static=True)
    estimator: str = eqx.field(default="dreg", static=True)
    name: ClassVar[str] = "iwae"
    is_lower_bound: ClassVar[bool] = True

    def __check_init__(self):
        if self.samples < 1:
            raise ConfigError(f"IWAE needs K >= 1 samples per example, got {self.samples}.")
        if self.estimator not in ("dreg", "reparam"):
            raise ConfigError(f"unknown IWAE estimator {self.estimator!r}; choose dreg or reparam.")

    def label(self) -> str:
        return f"iwae-{self.samples}" + ("" if self.estimator == "dreg" else "-reparam")

    def bound_from_noise(self, model, x, eps):
        logw = model.log_weights_from_noise(x, eps)
        return jax.nn.logsumexp(logw) - math.log(self.samples)

    def loss_grad(self, model, xb, key):
        if self.estimator == "reparam":
            return super().loss_grad(model, xb, key)
        B, K = xb.shape[0], self.samples
        eps = self._noise(model, key, (B,))
        xin = jax.vmap(model.q_input)(xb)

        def draw(encoder):
            return jax.vmap(lambda x, e: encoder.transform(x, e)[0])(xin, eps)

        z, pull_z = eqx.filter_vjp(draw, model.encoder)
        frozen_q = _stop(model.encoder)  # q's density at the draws, its parameters held fixed

        def log_weights(m, zb):
            def one(x, xi, zz):
                return m.log_likelihood(x, zz) + m.log_prior(zz) - frozen_q.log_prob(xi, zz)
            return jax.vmap(one)(xb, xin, zb)

        logw, pull_w = eqx.filter_vjp(log_weights, model, z)
        wn = jax.nn.softmax(logw, axis=-1)  # (B, K) normalized weights, no gradient
        # One backward pass: the cotangent w~/B gives the decoder its IWAE gradient; since z_k
        # reaches only log w_k, scaling each dz_k by w~_k afterwards gives the encoder
        # sum_k w~_k^2 dlogw_k/dz_k dz_k/dphi, the DReG estimator.
        g_model, g_z = pull_w(-wn / B)
        (g_enc,) = pull_z(g_z * wn[..., None])
        grads = eqx.tree_at(lambda g: g.encoder, g_model, g_enc)
        bounds = jax.nn.logsumexp(logw, axis=-1) - math.log(K)
        return grads, bounds


_REGISTRY: dict[str, Callable[..., AmortizedObjective]] = {"elbo": ELBO, "iwae": IWAE}


def register_amortized_objective(name: str, factory: Callable[..., AmortizedObjective]) -> None:
    """Make ``factory(samples=K, **options)`` available as ``--objective name``."""
    _REGISTRY[name] = factory


def amortized_objective_names() -> list[str]:
    return sorted(_REGISTRY)


def make_objective(name: str, samples: int = 1, **options) -> AmortizedObjective:
    """An objective by name: ``make_objective("iwae", 50, estimator="dreg")``,
    ``make_objective("elbo", 1, kl="analytic")``. Options left ``None`` take their defaults;
    options the objective does not have are refused."""
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown objective {name!r}; choose one of {', '.join(amortized_objective_names())}."
        )
    factory = _REGISTRY[name]
    accepted = set(inspect.signature(factory).parameters) - {"samples"}
    given = {k: v for k, v in options.items() if v is not None}
    bad = sorted(set(given) - accepted)
    if bad:
        raise ConfigError(f"objective {name!r} takes no option {', '.join(bad)}; "
                          f"its options are: {', '.join(sorted(accepted)) or 'none'}.")
    return factory(samples=int(samples), **given)
