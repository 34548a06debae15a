"""A heavy-tailed family: an affine map of a heavy-tailed standard vector, z = loc + L x.

``tails="axes"`` (the default): independent Tukey-h coordinates,

    e_i ~ N(0, 1),   x_i = e_i exp(h_i e_i^2 / 2),
    log q(z) = sum_i [log N(e_i; 0, 1) - h_i e_i^2 / 2 - log(1 + h_i e_i^2)] - log|det L|;

``tails="radial"``: a normal vector whose radius is stretched, one index for every direction,

    e ~ N(0, I_d),   x = e exp(h_r (|e|^2 - d) / 2),
    log q(z) = log N(e; 0, I) - d h_r (|e|^2 - d) / 2 - log(1 + h_r |e|^2) - log|det L|.

Why. Gaussian q (and flows on a Gaussian base) have tails lighter than any polynomial: against
a posterior with Student-t or Cauchy priors, or any power-law tail, the importance weights p/q
are unbounded, k-hat exceeds 0.7 and q's sds and tail quantiles come out too small however long
the fit runs. Tukey's h transform has polynomial tails, P(|x_i| > t) ~ t^(-1/h_i), like a
Student-t with 1/h_i degrees of freedom (h = 1: Cauchy's; h = 1/3: t_3's; h -> 0: the
Gaussian's), and every index is fitted with the rest. Axes: each coordinate along L's columns
gets its own tail, the usual shape of a posterior whose heavy tails come from heavy-tailed
priors on some parameters. Radial: one tail in every direction, the shape of a multivariate t
(whose marginal tails are tied to the joint one: along one axis the axes form cannot follow
it, and a product of t's is not one either). The two are not composed: a radial stretch of
already heavy coordinates, exp(h_r |x|^2), has tails heavier than any power.

Why Tukey's h and not a Student-t base with learned degrees of freedom (tried first). A draw
is a closed-form, differentiable function of a normal draw and h, so reparameterized gradients
in h cost two exps. A t base needs gamma variates and their implicit gradients: on this
machine that made a step 2.3x slower and its program compile for 10 to 30 s. The price: log q
at a point that is not q's own draw inverts the transform, with Lambert's W (e_i^2 =
W(h_i x_i^2) / h_i; radially h_r |e|^2 = W(h_r |x|^2 exp(h_r d)), in log space), six Halley
steps, exact to rounding.

Every index is H_MAX * sigmoid(raw): tails at most as heavy as Cauchy's. Heavier tails are
rare in posteriors, and beyond them draws overflow. The mean is ``loc`` where every index is
below 1 and the covariance is infinite from 1/2, so the family gives neither in closed form and
its summaries come from draws, like a flow's.
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


def _index(raw: Array) -> Array:
    """A tail index in (0, H_MAX) from its unconstrained parameter."""
    return H_MAX * jax.nn.sigmoid(raw)


def _axes(e: Array, h: Array) -> tuple[Array, Array]:
    """x_i = e_i exp(h_i e_i^2 / 2), and log|det dx/de| = sum_i h_i e_i^2 / 2 + log(1 +
    h_i e_i^2), for ``e (..., d)``."""
    he2 = h * e * e
    return e * jnp.exp(0.5 * he2), jnp.sum(0.5 * he2 + jnp.log1p(he2), -1)


def _radial(x: Array, hr: Array) -> tuple[Array, Array]:
    """y = x s, s = exp(hr (|x|^2 - d) / 2), and log|det dy/dx| = d hr (|x|^2 - d) / 2
    + log(1 + hr |x|^2), for ``x (..., d)``."""
    d = x.shape[-1]
    r2 = jnp.sum(x * x, -1, keepdims=True)
    log_s = 0.5 * hr * (r2 - d)
    return x * jnp.exp(log_s), (d * log_s + jnp.log1p(hr * r2))[..., 0]


def _unradial(y: Array, hr: Array) -> Array:
    """The x with ``_radial(x, hr)[0] = y``: with u = hr |x|^2, u exp(u) = hr |y|^2 exp(hr d),
    so |x|^2 / |y|^2 = W(exp(a)) / (hr |y|^2), a = log(hr |y|^2) + hr d."""
    d = y.shape[-1]
    rho2 = jnp.maximum(jnp.sum(y * y), jnp.finfo(y.dtype).tiny)
    log_hr_rho2 = jnp.log(hr) + jnp.log(rho2)
    log_ratio = _log_lambert_w_exp(log_hr_rho2 + hr * d) - log_hr_rho2
    return y * jnp.exp(0.5 * log_ratio)


def _raw(h: float) -> float:
    return math.log(h / (H_MAX - h))


def _log_q(e: Array, log_det: Array, chol_raw: Array) -> Array:
    """log q at z = loc + L x(e): log N(e; 0, I) - log|dx/de| - log|det L|."""
    return (-0.5 * jnp.sum(e * e, -1) - 0.5 * e.shape[-1] * _LOG_2PI - log_det
            - jnp.sum(jnp.diag(chol_raw)))


def _lambert_w(y: Array) -> Array:
    """Lambert's W on y >= 0: the w >= 0 with w exp(w) = y."""
    w = jnp.log1p(y)
    for _ in range(_HALLEY_STEPS):
        ew = jnp.exp(w)
        f = w * ew - y
        w = w - f / (ew * (w + 1.0) - (w + 2.0) * f / (2.0 * w + 2.0))
    return w


def _log_lambert_w_exp(a: Array) -> Array:
    """log W(exp(a)) for any real ``a``, without forming exp(a) where it would overflow:
    Halley on w exp(w) = exp(a) for a <= 1, Newton on w + log w = a above (both branches
    get safe inputs, so neither puts NaN into the other's gradient)."""
    low = jnp.minimum(a, 1.0)
    w_low = _lambert_w(jnp.exp(low))
    high = jnp.maximum(a, 1.0)
    w = high - jnp.log(high)
    for _ in range(_HALLEY_STEPS):
        w = w - (w + jnp.log(w) - high) / (1.0 + 1.0 / w)
    # Below exp(-18) W(y) = y - y^2 to rounding: log W = a - e^a, exact as a -> -inf.
    tiny = a < -18.0
    return jnp.where(tiny, a - jnp.exp(jnp.minimum(a, -18.0)),
                     jnp.log(jnp.where(a <= 1.0, jnp.where(tiny, 1.0, w_low), w)))


def _untransform(x: Array, h: Array) -> Array:
    """The e with e exp(h e^2 / 2) = x: e = x sqrt(W(h x^2) / (h x^2)), the ratio -> 1 as
    h x^2 -> 0 (computed as 1 - y there, its first-order value, so h = 0 is exact)."""
    y = h * x * x
    small = y < 1e-8
    safe = jnp.where(small, 1.0, y)
    ratio = jnp.where(small, 1.0 - y, _lambert_w(safe) / safe)
    return x * jnp.sqrt(ratio)


class HeavyTail(Family):
    """loc + L x with heavy-tailed x (module docstring): ``tails="axes"``, independent Tukey-h
    coordinates, or ``tails="radial"``, a standard normal whose radius is stretched,
    x = e exp(h_r (|e|^2 - d) / 2).

    Params: ``loc (d,)``, ``chol (d, d)`` (unconstrained, as ``FullRank``'s: strictly-lower
    triangle L's, diagonal log diag L), and ``h_raw (d,)``, h_i = sigmoid(h_raw_i) (axes) or
    ``r_raw ()``, h_r = sigmoid(r_raw) (radial). At the start every h_i is ``init_h`` (0.1:
    tails like t_10's, near a Gaussian while the gradient in h is still felt) and h_r is
    ``init_radial`` (0.05). ``from_gaussian`` scales L so that q's covariance is the
    Gaussian's.
    """

    tails: str = "axes"
    init_scale: float = 0.1
    init_h: float = 0.1
    init_radial: float = 0.05
    name: ClassVar[str] = "heavytail"

    def __check_init__(self):
        if self.tails not in ("axes", "radial"):
            raise ConfigError(f"family 'heavytail': tails must be 'axes' or 'radial', got "
                              f"{self.tails!r}.")
        for key in ("init_h", "init_radial"):
            if not 0.0 < getattr(self, key) < 0.5:
                raise ConfigError(f"family 'heavytail': {key} must be in (0, 0.5) (a finite "
                                  f"covariance at the start), got {getattr(self, key)!r}.")

    @property
    def radial(self) -> bool:
        return self.tails == "radial"

    def _start_index(self, dim: int) -> dict[str, np.ndarray]:
        if self.radial:
            return {"r_raw": np.asarray(_raw(self.init_radial))}
        return {"h_raw": np.full(dim, _raw(self.init_h))}

    def init(self, key: Array, dim: int, loc: Array | None = None) -> Params:
        del key
        return {"loc": _loc(dim, loc),
                "chol": on_device(np.eye(dim) * math.log(self.init_scale)),
                **{k: on_device(v) for k, v in self._start_index(dim).items()}}

    def _draws(self, params: Params, key: Array, n: int):
        """Draws z, and what log q and its score at them need: e, x and log|dx/de|."""
        e = jax.random.normal(key, (n,) + params["loc"].shape, dtype=params["loc"].dtype)
        if self.radial:
            x, log_det = _radial(e, _index(params["r_raw"]))
        else:
            x, log_det = _axes(e, _index(params["h_raw"]))
        z = params["loc"] + x @ _cholesky(params["chol"]).T
        return z, e, x, log_det

    def sample(self, params: Params, key: Array, n: int) -> Array:
        return self._draws(params, key, n)[0]

    def sample_and_log_prob(self, params, key, n, *, path_only=False):
        z, e, x, log_det = self._draws(params, key, n)
        log_q = _log_q(e, log_det, params["chol"])
        if not path_only:
            return z, log_q
        # Sticking the landing: log q's value, differentiated only through z, with
        # grad_z log q = L^-T grad_x log q_x(x), not differentiated.
        stop = jax.lax.stop_gradient
        if self.radial:
            # x = e s, Jacobian s (I + h_r e e^T): grad_x = (1/s) (I - h_r e e^T / (1 + h_r
            # r^2)) v, v = grad_e log q_x = -e - (d h_r + 2 h_r / (1 + h_r r^2)) e.
            hr, d = _index(params["r_raw"]), e.shape[-1]
            r2 = jnp.sum(e * e, -1, keepdims=True)
            v = -e * (1.0 + d * hr + 2.0 * hr / (1.0 + hr * r2))
            s = jnp.exp(0.5 * hr * (r2 - d))
            grad_x = (v - hr * e * jnp.sum(e * v, -1, keepdims=True) / (1.0 + hr * r2)) / s
        else:  # per coordinate: (d/de log q_x) / (dx/de)
            h = _index(params["h_raw"])
            he2 = h * e * e
            grad_x = ((-e * (1.0 + h) - 2.0 * h * e / (1.0 + he2))
                      / (jnp.exp(0.5 * he2) * (1.0 + he2)))
        chol = stop(_cholesky(params["chol"]))
        score_z = jsl.solve_triangular(chol.T, stop(grad_x).T, lower=False).T
        return z, stop(log_q) + jnp.sum(stop(score_z) * (z - stop(z)), -1)

    def log_prob(self, params: Params, z: Array) -> Array:
        chol = _cholesky(params["chol"])
        x = jsl.solve_triangular(chol, z - params["loc"], lower=True)
        if self.radial:
            hr = _index(params["r_raw"])
            e = _unradial(x, hr)
            log_det = _radial(e, hr)[1]
        else:
            h = _index(params["h_raw"])
            e = _untransform(x, h)
            log_det = _axes(e, h)[1]
        return _log_q(e, log_det, params["chol"])

    def from_gaussian(self, mean: Array, cov: Array) -> Params:
        mean = jnp.asarray(mean)
        d = mean.shape[-1]
        # Var x_i = (1 - 2h)^(-3/2) (axes); E|x|^2 / d = exp(-h_r d) (1 - 2 h_r)^(-d/2 - 1)
        # (radial, from the chi-square's moment generating function).
        hr = self.init_radial
        shrink = (math.exp(hr * d) * (1.0 - 2.0 * hr) ** (0.5 * d + 1.0) if self.radial
                  else (1.0 - 2.0 * self.init_h) ** 1.5)
        return {"loc": mean, "chol": raw_from_cov(jnp.asarray(cov) * shrink),
                **{k: jnp.asarray(v, mean.dtype) for k, v in self._start_index(d).items()}}
