"""A heavy-tailed family: an affine map of independent Tukey-h coordinates.

    e_i ~ N(0, 1),   x_i = e_i exp(h_i e_i^2 / 2)   independently, i = 1..d;   z = loc + L x,
    log q(z) = sum_i [log N(e_i; 0, 1) - h_i e_i^2 / 2 - log(1 + h_i e_i^2)] - log|det L|.

Why this family. Gaussian q (and flows on a Gaussian base) have tails lighter than any
polynomial: against a posterior with Student-t or Cauchy priors, or any power-law tail, the
importance weights p/q are unbounded, k-hat exceeds 0.7 and q's sds and tail quantiles come out
too small however long the fit runs. Tukey's h transform has polynomial tails,
P(|x_i| > t) ~ t^(-1/h_i), like a Student-t with 1/h_i degrees of freedom (h = 1: Cauchy's;
h = 1/3: t_3's; h -> 0: the Gaussian's), and each coordinate's h_i is fitted with the rest, so
q's tail along each of L's columns can be as heavy as p's, or Gaussian where p's is.

Why Tukey's h and not a Student-t base. A draw is a closed-form, differentiable function of a
normal draw and h, so reparameterized gradients in h cost two exps. A t base needs gamma
variates and their implicit gradients: on this machine that made a step 2.3x slower and its
program compile for 10 to 30 s. The price: log q at a point that is not q's own draw inverts
the transform, e_i^2 = W(h_i x_i^2) / h_i with Lambert's W (six Halley steps, exact to
rounding). Independent coordinates, not one radial tail: a posterior's heavy tails usually
lie along the parameters that have heavy-tailed priors, beside light ones.

h_i = H_MAX * sigmoid(raw_i): tails at most as heavy as Cauchy's. Heavier tails are rare in
posteriors, and beyond them draws overflow. The mean is ``loc`` for every h_i < 1 and the
covariance is infinite from h_i = 1/2, so the family gives neither in closed form and its
summaries come from draws, like a flow's.
"""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from vifit.arrays import on_device
from vifit.errors import ConfigError
from vifit.families.base import Array, Family, Params
from vifit.families.gaussian import _cholesky, _loc, raw_from_cov

H_MAX = 1.0
_LOG_2PI = math.log(2.0 * math.pi)
# Halley steps for Lambert's W from log(1 + y): relative error 2e-16 on y in [0, 1e300]
# against SciPy's lambertw (5 steps: 2e-8).
_HALLEY_STEPS = 6


def _h(params: Params) -> Array:
    return H_MAX * jax.nn.sigmoid(params["h_raw"])


def _raw(h: float) -> float:
    return math.log(h / (H_MAX - h))


def _log_base(e: Array, h: Array) -> Array:
    """log density of x = e exp(h e^2 / 2) at the x of ``e``, per coordinate."""
    he2 = h * e * e
    return -0.5 * e * e - 0.5 * he2 - jnp.log1p(he2) - 0.5 * _LOG_2PI


def _lambert_w(y: Array) -> Array:
    """Lambert's W on y >= 0: the w >= 0 with w exp(w) = y."""
    w = jnp.log1p(y)
    for _ in range(_HALLEY_STEPS):
        ew = jnp.exp(w)
        f = w * ew - y
        w = w - f / (ew * (w + 1.0) - (w + 2.0) * f / (2.0 * w + 2.0))
    return w


def _untransform(x: Array, h: Array) -> Array:
    """The e with e exp(h e^2 / 2) = x: e = x sqrt(W(h x^2) / (h x^2)), the ratio -> 1 as
    h x^2 -> 0 (computed as 1 - y there, its first-order value, so h = 0 is exact)."""
    y = h * x * x
    small = y < 1e-8
    safe = jnp.where(small, 1.0, y)
    ratio = jnp.where(small, 1.0 - y, _lambert_w(safe) / safe)
    return x * jnp.sqrt(ratio)


class HeavyTail(Family):
    """loc + L x with independent Tukey-h coordinates x_i (module docstring).

    Params: ``loc (d,)``, ``chol (d, d)`` (unconstrained, as ``FullRank``'s: strictly-lower
    triangle L's, diagonal log diag L) and ``h_raw (d,)``, h_i = sigmoid(h_raw_i).
    ``init_h`` is every h_i at the start: 0.1 (tails like t_10's) sits near a Gaussian while
    the gradient in h is still felt. ``from_gaussian`` scales L so that q's covariance is the
    Gaussian's (the variance of x_i is (1 - 2 h_i)^(-3/2)).
    """

    init_scale: float = 0.1
    init_h: float = 0.1
    name: ClassVar[str] = "heavytail"

    def __check_init__(self):
        if not 0.0 < self.init_h < 0.5:
            raise ConfigError(f"family 'heavytail': init_h must be in (0, 0.5) (a finite "
                              f"covariance at the start), got {self.init_h!r}.")

    def init(self, key: Array, dim: int, loc: Array | None = None) -> Params:
        del key
        return {"loc": _loc(dim, loc),
                "chol": on_device(np.eye(dim) * math.log(self.init_scale)),
                "h_raw": on_device(np.full(dim, _raw(self.init_h)))}

    def _draws(self, params: Params, key: Array, n: int) -> tuple[Array, Array, Array, Array]:
        e = jax.random.normal(key, (n,) + params["loc"].shape, dtype=params["loc"].dtype)
        h = _h(params)
        x = e * jnp.exp(0.5 * h * e * e)
        chol = _cholesky(params["chol"])
        return params["loc"] + x @ chol.T, e, h, chol

    def sample(self, params: Params, key: Array, n: int) -> Array:
        return self._draws(params, key, n)[0]

    def sample_and_log_prob(self, params, key, n, *, path_only=False):
        z, e, h, chol = self._draws(params, key, n)
        log_q = jnp.sum(_log_base(e, h), -1) - jnp.sum(jnp.diag(params["chol"]))
        if not path_only:
            return z, log_q
        # Sticking the landing: log q's value, differentiated only through z. grad_z log q
        # = L^-T g, g_i = d/dx_i log q_x(x_i) = (d/de_i log q_x) / (dx_i/de_i); not
        # differentiated.
        stop = jax.lax.stop_gradient
        he2 = h * e * e
        dlog_de = -e * (1.0 + h) - 2.0 * h * e / (1.0 + he2)
        dx_de = jnp.exp(0.5 * he2) * (1.0 + he2)
        score_z = jsl.solve_triangular(stop(chol).T, stop(dlog_de / dx_de).T, lower=False).T
        return z, stop(log_q) + jnp.sum(stop(score_z) * (z - stop(z)), -1)

    def log_prob(self, params: Params, z: Array) -> Array:
        chol = _cholesky(params["chol"])
        x = jsl.solve_triangular(chol, z - params["loc"], lower=True)
        h = _h(params)
        return jnp.sum(_log_base(_untransform(x, h), h)) - jnp.sum(jnp.diag(params["chol"]))

    def from_gaussian(self, mean: Array, cov: Array) -> Params:
        mean = jnp.asarray(mean)
        d = mean.shape[-1]
        # Var x_i = (1 - 2h)^(-3/2): shrink L so that q's covariance is cov.
        shrink = (1.0 - 2.0 * self.init_h) ** 1.5
        return {"loc": mean, "chol": raw_from_cov(jnp.asarray(cov) * shrink),
                "h_raw": jnp.full(d, _raw(self.init_h), mean.dtype)}
