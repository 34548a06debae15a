"""Coordinate ascent VI for the Bayesian Gaussian mixture (Bishop, 2006, sec. 10.2).

Model, K components in D dimensions:

    pi ~ Dirichlet(alpha0),  Lambda_k ~ Wishart(W0, nu0),  mu_k | Lambda_k ~ N(m0, (beta0 Lambda_k)^-1),
    z_n | pi ~ Categorical(pi),  x_n | z_n = k ~ N(mu_k, Lambda_k^-1).

Variational family q(Z) q(pi) prod_k q(mu_k, Lambda_k): categorical responsibilities r_nk, a
Dirichlet(alpha), and a Normal-Wishart(m_k, beta_k, W_k, nu_k) per component. The two updates
(Bishop eqs. 10.46-10.67):

  - factors of the parameters given r ("M step"): alpha_k = alpha0 + N_k, beta_k = beta0 + N_k,
    m_k = (beta0 m0 + sum_n r_nk x_n) / beta_k, nu_k = nu0 + N_k,
    W_k^-1 = W0^-1 + sum_n r_nk (x_n - xbar_k)(x_n - xbar_k)^T
             + beta0 N_k / (beta0 + N_k) (xbar_k - m0)(xbar_k - m0)^T;
  - responsibilities given the factors ("E step"): log r_nk = E[log pi_k] + E[log|Lambda_k|]/2
    - D/2 log 2 pi - D/(2 beta_k) - nu_k/2 (x_n - m_k)^T W_k (x_n - m_k) + const_n.

The exact ELBO (eqs. 10.70-10.77, written with sums over r so that empty components need no
division) is computed after every update, and must not decrease (``CAVIError`` otherwise).
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln, multigammaln

from vifit.cavi.common import CAVIResult, finish_trace, rounding_rtol
from vifit.errors import ConfigError

_LOG_2PI = math.log(2.0 * math.pi)


class GMMPrior(NamedTuple):
    alpha0: float  # Dirichlet concentration (same for every component)
    beta0: float  # precision scale of the means
    m0: jax.Array  # (D,) prior mean of the means
    w0: jax.Array  # (D, D) Wishart scale matrix
    nu0: float  # Wishart degrees of freedom (> D - 1)


class GMMFactors(NamedTuple):
    alpha: jax.Array  # (K,)
    beta: jax.Array  # (K,)
    m: jax.Array  # (K, D)
    w: jax.Array  # (K, D, D)
    nu: jax.Array  # (K,)


def default_prior(x: jax.Array, alpha0: float = 1e-3) -> GMMPrior:
    """A weak, data-scaled prior: m0 the data mean, W0 = (nu0 Cov(x))^-1 so that E[Lambda] is
    the data precision, nu0 = D, beta0 = 1. ``alpha0`` < 1 lets unneeded components empty."""
    d = x.shape[1]
    cov = jnp.atleast_2d(jnp.cov(x.T))
    return GMMPrior(alpha0, 1.0, jnp.mean(x, axis=0), jnp.linalg.inv(cov) / d, float(d))


def _log_wishart_norm(w, nu, d):
    """log B(W, nu) of Bishop's (B.79)."""
    return (-0.5 * nu * jnp.linalg.slogdet(w)[1] - 0.5 * nu * d * math.log(2.0)
            - multigammaln(0.5 * nu, d))


def _expectations(f: GMMFactors, d: int):
    e_log_pi = digamma(f.alpha) - digamma(jnp.sum(f.alpha))
    i = jnp.arange(1, d + 1)
    e_logdet = (jnp.sum(digamma(0.5 * (f.nu[:, None] + 1.0 - i)), axis=1) + d * math.log(2.0)
                + jnp.linalg.slogdet(f.w)[1])
    return e_log_pi, e_logdet


def _quad(x, f: GMMFactors):
    """(N, K): (x_n - m_k)^T W_k (x_n - m_k)."""
    diff = x[:, None, :] - f.m[None]
    return jnp.einsum("nki,kij,nkj->nk", diff, f.w, diff)


def update_factors(x, r, prior: GMMPrior) -> GMMFactors:
    n_k = jnp.sum(r, axis=0)
    sum_x = r.T @ x
    xbar = sum_x / jnp.maximum(n_k, jnp.finfo(x.dtype).tiny)[:, None]
    diff = x[:, None, :] - xbar[None]
    scatter = jnp.einsum("nk,nki,nkj->kij", r, diff, diff)
    dm = xbar - prior.m0
    shrink = (prior.beta0 * n_k / (prior.beta0 + n_k))[:, None, None]
    w_inv = jnp.linalg.inv(prior.w0)[None] + scatter + shrink * dm[:, :, None] * dm[:, None, :]
    beta = prior.beta0 + n_k
    return GMMFactors(alpha=prior.alpha0 + n_k, beta=beta,
                      m=(prior.beta0 * prior.m0 + sum_x) / beta[:, None],
                      w=jnp.linalg.inv(w_inv), nu=prior.nu0 + n_k)


def update_responsibilities(x, f: GMMFactors) -> jax.Array:
    d = x.shape[1]
    e_log_pi, e_logdet = _expectations(f, d)
    log_rho = (e_log_pi + 0.5 * e_logdet - 0.5 * d * _LOG_2PI - 0.5 * d / f.beta
               - 0.5 * f.nu * _quad(x, f))
    return jax.nn.softmax(log_rho, axis=1)


def elbo(x, r, f: GMMFactors, prior: GMMPrior) -> jax.Array:
    """The exact ELBO (Bishop 10.70-10.77) at responsibilities ``r`` and factors ``f``."""
    n, d = x.shape
    k = r.shape[1]
    e_log_pi, e_logdet = _expectations(f, d)
    n_k = jnp.sum(r, axis=0)
    e_quad = jnp.sum(r * (d / f.beta + f.nu * _quad(x, f)), axis=0)  # sum_n r E[quad]
    log_lik = 0.5 * jnp.sum(n_k * (e_logdet - d * _LOG_2PI)) - 0.5 * jnp.sum(e_quad)
    log_pz = jnp.sum(r @ e_log_pi)
    log_c0 = gammaln(k * prior.alpha0) - k * gammaln(prior.alpha0)
    log_ppi = log_c0 + (prior.alpha0 - 1.0) * jnp.sum(e_log_pi)
    dm = f.m - prior.m0
    tr_w0inv_w = jnp.einsum("ij,kji->k", jnp.linalg.inv(prior.w0), f.w)
    log_pmu_lam = (0.5 * jnp.sum(d * math.log(prior.beta0 / (2 * math.pi)) + e_logdet
                                 - d * prior.beta0 / f.beta
                                 - prior.beta0 * f.nu * jnp.einsum("ki,kij,kj->k", dm, f.w, dm))
                   + k * _log_wishart_norm(prior.w0, prior.nu0, d)
                   + 0.5 * (prior.nu0 - d - 1.0) * jnp.sum(e_logdet)
                   - 0.5 * jnp.sum(f.nu * tr_w0inv_w))
    log_qz = jnp.sum(jnp.where(r > 0, r * jnp.log(jnp.where(r > 0, r, 1.0)), 0.0))
    log_c = gammaln(jnp.sum(f.alpha)) - jnp.sum(gammaln(f.alpha))
    log_qpi = jnp.sum((f.alpha - 1.0) * e_log_pi) + log_c
    ent_lam = (-jax.vmap(_log_wishart_norm, in_axes=(0, 0, None))(f.w, f.nu, d)
               - 0.5 * (f.nu - d - 1.0) * e_logdet + 0.5 * f.nu * d)
    log_qmu_lam = jnp.sum(0.5 * e_logdet + 0.5 * d * jnp.log(f.beta / (2 * math.pi))
                          - 0.5 * d - ent_lam)
    return log_lik + log_pz + log_ppi + log_pmu_lam - log_qz - log_qpi - log_qmu_lam


def fit_gmm(x, k: int, *, prior: GMMPrior | None = None, seed: int = 0, max_iters: int = 500,
            tol: float | None = None) -> CAVIResult:
    """CAVI for a K-component Bayesian Gaussian mixture on data ``x (N, D)``.

    Starts from responsibilities given by K data points drawn at random as centres (each
    point to its nearest, softly). Runs sweeps (factors, then responsibilities) until a sweep
    raises the ELBO by less than ``tol * (1 + |ELBO|)`` (default 1e-10 float64, 1e-6 float32).
    ``trace`` holds the exact ELBO after every update (two per sweep); ``CAVIError`` if it ever
    falls beyond rounding.

    ``params``: ``alpha``, ``beta``, ``m``, ``w``, ``nu`` (the factors), ``r`` (N, K)
    responsibilities, ``weights`` (E[pi]), ``means`` (E[mu_k] = m_k) and ``covariances``
    (E[Lambda_k]^-1 = (nu_k W_k)^-1).
    """
    t0 = time.perf_counter()
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ConfigError(f"x must be (N, D), got shape {x.shape}.")
    n, d = x.shape
    if not 1 <= k <= n:
        raise ConfigError(f"k must be between 1 and the number of points {n}, got {k}.")
    prior = default_prior(x) if prior is None else prior
    if prior.nu0 <= d - 1:
        raise ConfigError(f"the Wishart prior needs nu0 > D - 1 = {d - 1}, got {prior.nu0}.")
    rtol = rounding_rtol(x.dtype)
    tol = (1e-10 if x.dtype == jnp.float64 else 1e-6) if tol is None else tol

    key = jax.random.key(seed)
    centres = x[jax.random.choice(key, n, (k,), replace=False)]
    dist2 = jnp.sum((x[:, None, :] - centres[None]) ** 2, axis=2)
    r0 = jax.nn.softmax(-dist2 / jnp.mean(jnp.var(x, axis=0)), axis=1)

    @jax.jit
    def run(r):
        def body(r, _):
            f = update_factors(x, r, prior)
            after_f = elbo(x, r, f, prior)
            r = update_responsibilities(x, f)
            return r, (f, jnp.stack([after_f, elbo(x, r, f, prior)]))

        return jax.lax.scan(body, r, None, length=max_iters)

    r, (factors, pairs) = run(r0)
    trace, iters, converged, worst = finish_trace(pairs, tol, max_iters, rtol)
    f = jax.tree.map(lambda a: a[-1], factors)
    params: dict[str, Any] = {name: np.asarray(v) for name, v in f._asdict().items()}
    params["r"] = np.asarray(r)
    params["weights"] = params["alpha"] / params["alpha"].sum()
    params["means"] = params["m"]
    params["covariances"] = np.linalg.inv(params["w"] * params["nu"][:, None, None])
    return CAVIResult(params, float(trace[-1]), trace, iters, converged, worst,
                      time.perf_counter() - t0)
