"""Evaluating a trained VAE the way papers do: held-out log p(x) by importance sampling with
many draws from q(z|x) (Burda et al.'s 5,000), the ELBO and IWAE-K bounds, and the number of
active latent units.

Memory is bounded: examples go through in batches of ``batch``, and each example's draws in
chunks of ``chunk``, folded into a running log-sum-exp by ``lax.scan``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from vifit.amortized.model import VAE
from vifit.amortized.objectives import AmortizedObjective

Array = jax.Array


class LogLikelihood(NamedTuple):
    """Importance-sampling estimates of log p(x) per example, with their Monte Carlo error."""

    per_example: np.ndarray  # (n,) log (1/S) sum_s p(x, z_s) / q(z_s | x), nats
    mc_se: np.ndarray  # (n,) delta-method standard error of each estimate, nats
    ess: np.ndarray  # (n,) effective sample size of each example's weights
    samples: int  # S, draws per example

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_example))

    @property
    def se(self) -> float:
        """Standard error of the mean over examples (data spread and Monte Carlo together)."""
        n = len(self.per_example)
        return float(np.std(self.per_example, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")

    @property
    def mc_se_of_mean(self) -> float:
        """The Monte Carlo part alone of the error of the mean, for a fixed set of examples."""
        return float(np.sqrt(np.sum(self.mc_se**2)) / len(self.mc_se))


def _pad(x: np.ndarray, batch: int) -> tuple[np.ndarray, int]:
    n = len(x)
    n_pad = (-n) % batch
    if n_pad:
        x = np.concatenate([x, np.repeat(x[-1:], n_pad, axis=0)])
    return x, n


def _group_bound(lw: Array, k: int) -> Array:
    """The IWAE-k bound estimated from ``lw (n,)`` as the mean over floor(n/k) disjoint
    groups of k draws: unbiased for the bound, with less variance than one group."""
    g = lw.shape[0] // k
    return jnp.mean(jax.nn.logsumexp(lw[: g * k].reshape(g, k), axis=-1)) - math.log(k)


@eqx.filter_jit
def _is_batch(model: VAE, xb: Array, keys: Array, n_chunks: int, chunk: int,
              iwae_k: tuple[int, ...]):
    def one(x, key):
        def body(carry, k):
            m, s1, s2 = carry
            lw = model.log_weights(x, k, chunk)
            m_new = jnp.maximum(m, jnp.max(lw))
            s1 = s1 * jnp.exp(m - m_new) + jnp.sum(jnp.exp(lw - m_new))
            s2 = s2 * jnp.exp(2 * (m - m_new)) + jnp.sum(jnp.exp(2 * (lw - m_new)))
            return (m_new, s1, s2), None

        dt = jnp.result_type(float)
        keys = jax.random.split(key, n_chunks + 1)
        init = (jnp.asarray(-jnp.inf, dt), jnp.zeros((), dt), jnp.zeros((), dt))
        (m, s1, s2), _ = jax.lax.scan(body, init, keys[1:])
        # The bounds from one extra chunk of fresh draws (independent of the IS estimate).
        lw = model.log_weights(x, keys[0], chunk)
        bounds = jnp.stack([jnp.mean(lw)] + [_group_bound(lw, k) for k in iwae_k])
        return m, s1, s2, bounds

    return jax.vmap(one)(xb, keys)


def _importance(model: VAE, x: np.ndarray, key: Array, samples: int, chunk: int, batch: int,
                iwae_k: tuple[int, ...]) -> tuple[LogLikelihood, np.ndarray]:
    chunk = min(chunk, samples)
    n_chunks = -(-samples // chunk)
    S = n_chunks * chunk
    batch = min(batch, len(x))
    xp, n = _pad(np.asarray(x), batch)
    keys = jax.random.split(key, len(xp))
    iwae_k = tuple(k for k in iwae_k if k <= chunk)
    out = [_is_batch(model, jnp.asarray(xp[i:i + batch]), keys[i:i + batch], n_chunks, chunk,
                     iwae_k) for i in range(0, len(xp), batch)]
    m, s1, s2, bounds = (np.concatenate([np.asarray(o[j], np.float64) for o in out])[:n]
                         for j in range(4))
    est = m + np.log(s1 / S)
    rel_var = np.maximum(s2 * S / s1**2 - 1.0, 0.0)  # Var(w) / E[w]^2, from the draws
    return LogLikelihood(est, np.sqrt(rel_var / S), s1**2 / s2, S), bounds


def log_likelihood(model: VAE, x: np.ndarray, key: Array, samples: int = 5000,
                   chunk: int = 500, batch: int = 50) -> LogLikelihood:
    """``log p(x)`` of each row of ``x (n, D)`` by importance sampling with q(z|x) as the
    proposal: ``log (1/S) sum_s w_s``, a stochastic lower bound in expectation that tightens
    as S grows (the IWAE-S bound). ``samples`` is rounded up to a multiple of ``chunk``."""
    return _importance(model, x, key, samples, chunk, batch, ())[0]


@eqx.filter_jit
def _bound_batch(objective: AmortizedObjective, model: VAE, xb: Array, key: Array) -> Array:
    return objective.batch_bound(model, xb, key)


def bound_per_example(objective: AmortizedObjective, model: VAE, x: np.ndarray, key: Array,
                      batch: int = 100) -> np.ndarray:
    """One draw of ``objective``'s bound for each row of ``x``: ``(n,)`` float64."""
    batch = min(batch, len(x))
    xp, n = _pad(np.asarray(x), batch)
    keys = jax.random.split(key, -(-len(xp) // batch))
    vals = [np.asarray(_bound_batch(objective, model, jnp.asarray(xp[i:i + batch]), k))
            for k, i in zip(keys, range(0, len(xp), batch))]
    return np.concatenate(vals).astype(np.float64)[:n]


@eqx.filter_jit
def _means_batch(model: VAE, xb: Array, key: Array) -> Array:
    keys = jax.random.split(key, xb.shape[0])
    return jax.vmap(lambda x, k: model.encoder.mean(model.q_input(x), k))(xb, keys)


def posterior_means(model: VAE, x: np.ndarray, key: Array, batch: int = 500) -> np.ndarray:
    """E_q[z | x] for each row of ``x``: ``(n, L)``."""
    batch = min(batch, len(x))
    xp, n = _pad(np.asarray(x), batch)
    keys = jax.random.split(key, -(-len(xp) // batch))
    out = [np.asarray(_means_batch(model, jnp.asarray(xp[i:i + batch]), k))
           for k, i in zip(keys, range(0, len(xp), batch))]
    return np.concatenate(out)[:n]


def active_units(model: VAE, x: np.ndarray, key: Array, threshold: float = 0.01
                 ) -> tuple[int, np.ndarray]:
    """Burda et al.'s activity statistic: unit u is active when Cov_x(E_q[z_u | x]) > 0.01.
    Returns the count and the per-unit variances ``(L,)``."""
    means = posterior_means(model, x, key)
    var = np.var(means, axis=0, ddof=1) if len(means) > 1 else np.zeros(means.shape[1])
    return int(np.sum(var > threshold)), var


def _summary(values: np.ndarray) -> dict[str, float]:
    n = len(values)
    return {"mean": float(np.mean(values)),
            "se": float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")}


def evaluate(model: VAE, x: np.ndarray, key: Array, samples: int = 5000,
             iwae_k: tuple[int, ...] = (5, 50), chunk: int = 500, batch: int = 50,
             per_example: bool = False) -> dict:
    """The paper-style evaluation of ``model`` on ``x``, as a JSON-able dict (nats per example):
    ``log_likelihood`` (IS with ``samples`` draws; ``se`` over examples, ``mc_se`` the Monte
    Carlo part), ``elbo`` and ``iwae_<K>`` for each K (each from ``chunk`` further draws per
    example: the mean log-weight, and the mean IWAE-K over disjoint groups of K), and
    ``active_units`` with the per-unit variances. ``per_example=True`` adds the estimates
    of each example (``log_likelihood_per_example``), for paired comparisons of models."""
    k_ll, k_au = jax.random.split(key)
    ll, bounds = _importance(model, x, k_ll, samples, chunk, batch, iwae_k)
    result: dict = {
        "n_examples": int(len(x)),
        "log_likelihood": {"mean": ll.mean, "se": ll.se, "mc_se": ll.mc_se_of_mean,
                           "samples": ll.samples, "min_ess": float(np.min(ll.ess))},
        "elbo": _summary(bounds[:, 0]),
    }
    for j, k in enumerate(k for k in iwae_k if k <= min(chunk, samples)):
        result[f"iwae_{k}"] = _summary(bounds[:, j + 1])
    if per_example:
        result["log_likelihood_per_example"] = [float(v) for v in ll.per_example]
    n_active, var = active_units(model, x, k_au)
    result["active_units"] = n_active
    result["unit_variances"] = [float(v) for v in var]
    result["latent_dim"] = int(model.latent_dim)
    return result
