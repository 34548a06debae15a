"""log Z by importance sampling from q joined by the modes q misses.

When climbs of log p (from AIS's final particles, ``vifit.modes.climb_from``) reach modes
that q does not cover, every estimate made from q's draws is low by about the log of the share
of p's mass that q covers, and AIS, which started from q, often is too (on the mixtures of
``bench/evidence_mixtures.py`` its particles reached a narrow mode that its weights then lost).
A mode found is mass located: this estimate draws from

    m = w_0 q + sum_k w_k N(m_k, S_k),

with m_k a mode q misses and S_k = (-H)^-1 its Laplace covariance, and weights each draw by
p / m evaluated on the whole mixture (multiple importance sampling with the balance heuristic:
the component of each draw is drawn at random, so the estimate of Z is unbiased). PSIS smooths
the weights and its k-hat says whether m covers p: a mode whose shape the Laplace Gaussian
gets badly wrong shows up there.

The shares: half in proportion to each part's estimated mass (q's from PSIS from q, a mode's
from Laplace) and half equal, so that a Laplace mass that is off by orders of magnitude still
leaves its component ``1 / (2 (K + 1))`` of the draws.

What it cannot do: see a mode no climb reached. It is a better estimate where modes were
found, not a check that they all were.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from vifit.families.base import Family
from vifit.families.gaussian import FullRank, cholesky_to_raw
from vifit.target import Target

# Share of the mixture's draws given out equally among its parts; the rest by estimated mass.
EQUAL_SHARE = 0.5


def mixture_shares(log_z_q: float, log_masses: np.ndarray) -> np.ndarray:
    """Shares ``(K + 1,)`` of q and of K modes in the mixture (see the module docstring),
    from q's log Z and the modes' Laplace log masses, nats."""
    logs = np.concatenate([[log_z_q], np.asarray(log_masses, np.float64)])
    logs = np.where(np.isfinite(logs), logs, -np.inf)
    if not np.isfinite(logs).any():
        by_mass = np.full(logs.size, 1.0 / logs.size)
    else:
        by_mass = np.exp(logs - np.max(logs))
        by_mass /= by_mass.sum()
    return (1.0 - EQUAL_SHARE) * by_mass + EQUAL_SHARE / logs.size


def log_z_with_modes(target: Target, family: Family, params, modes: list, log_z_q: float,
                     key: jax.Array, draws: int) -> dict[str, Any] | None:
    """PSIS estimate of log Z from ``draws`` draws of q joined by ``modes`` (``vifit.modes.Mode``
    records of modes q does not cover; those without a Laplace covariance are left out), or
    None when none is usable. ``log_z_q``: PSIS's log Z from q alone, nats, for the shares.
    Returns a JSON-ready record: ``log_z``, ``se``, ``khat``, ``ess``, ``n``, ``modes`` (how
    many joined q), ``shares`` (q's first) and ``seconds``."""
    from vifit.evidence.importance import importance_log_z

    usable = [(m, c) for m in modes if np.all(np.isfinite(m.location))
              and (c := _cholesky_or_none(m.cov)) is not None]
    if not usable:
        return None
    t0 = time.perf_counter()
    dtype = target.init.dtype
    shares = mixture_shares(log_z_q, np.array([m.log_mass for m, _ in usable]))
    # The modes' Laplace Gaussians as FullRank parameters, stacked along a leading axis.
    means = jnp.asarray(np.stack([m.location for m, _ in usable]), dtype)
    chol = jnp.asarray(np.stack([c for _, c in usable]), dtype)
    laplace = {"loc": means, "chol": jax.vmap(cholesky_to_raw)(chol)}
    log_shares = jnp.asarray(np.log(shares), dtype)

    @jax.jit
    def log_weights(params, key):
        k_pick, k_q, k_n = jax.random.split(key, 3)
        n, d = draws, means.shape[1]
        part = jax.random.categorical(k_pick, log_shares, shape=(n,))
        z_q, _ = family.sample_and_log_prob(params, k_q, n)
        eps = jax.random.normal(k_n, (n, d), dtype)
        k = jnp.maximum(part - 1, 0)
        z_modes = means[k] + jnp.einsum("nij,nj->ni", chol[k], eps)
        z = jnp.where((part == 0)[:, None], z_q, z_modes)
        log_q = family.batch_log_prob(params, z)
        log_q = jnp.where(jnp.isnan(log_q), -jnp.inf, log_q)
        log_n = jax.vmap(lambda p: _LAPLACE.batch_log_prob(p, z))(laplace)  # (K, n)
        log_m = logsumexp(jnp.concatenate([log_shares[0] + log_q[None],
                                           log_shares[1:, None] + log_n]), axis=0)
        log_p = target.batch_log_density(z)
        ok = jnp.isfinite(log_p) & jnp.isfinite(log_m)
        return jnp.where(ok, log_p - log_m, -jnp.inf)

    est = importance_log_z(np.asarray(log_weights(params, key), np.float64))
    return {"log_z": est.log_z, "se": est.se, "khat": est.khat, "ess": est.ess, "n": est.n,
            "modes": len(usable), "shares": [float(s) for s in shares],
            "seconds": time.perf_counter() - t0}



_LAPLACE = FullRank()


def _cholesky_or_none(cov) -> np.ndarray | None:
    """The lower Cholesky factor of the symmetrized ``cov``; None where there is none."""
    if cov is None:
        return None
    try:
        return np.linalg.cholesky(0.5 * (cov + cov.T))
    except np.linalg.LinAlgError:
        return None
