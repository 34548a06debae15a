"""Bounds on log Z from the log-weights logw_i = log p(x, z_i) - log q(z_i) of draws z_i ~ q.

All three are functions of i.i.d. log-weights ``(n,)``, computed in float64. A NaN or -inf
log-weight (a draw outside the target's support) is a zero weight.

- ELBO = E_q[logw] <= log Z. Its Monte Carlo estimate is unbiased for the ELBO, so it is a lower
  bound in expectation; standard error sd(logw) / sqrt(n).
- IWAE-K = E[log (1/K) sum_{k<=K} w_k] <= log Z (Burda, Grosse & Salakhutdinov, 2016), tighter
  as K grows, and equal to the ELBO at K = 1. The n draws form n / K independent groups of K;
  the estimate is the mean of the groups' values, so it too is unbiased for a lower bound, and
  its standard error is simply sd(group values) / sqrt(n / K): the groups are i.i.d., which is
  why we use them rather than a delta method (that would need the variance of a ratio of
  correlated sums).
- CUBO_2 = (1/2) log E_q[w^2] >= log Z (Dieng et al., 2017), by Jensen since E_q[w] = Z. It is an
  upper bound in expectation of exp(2 CUBO), not of its estimate: (1/2) log mean(w_i^2) is biased
  *low* (the log of an unbiased estimate), and badly so when w^2 is heavy-tailed. If the Pareto
  k-hat of w exceeds 0.5, E_q[w^2] is infinite: CUBO is +inf and any finite estimate of it is
  meaningless. Its standard error is the delta method, (1/2) sd(w^2) / (sqrt(n) mean(w^2)),
  which needs E_q[w^4] finite (k-hat of w < 0.25); the details report that k-hat.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from vifit.errors import ConfigError
from vifit.evidence.weights import pareto_khat


class Bound(NamedTuple):
    estimate: float  # nats
    se: float  # Monte Carlo standard error, nats
    kind: str  # "lower" or "upper"
    details: dict  # estimator-specific diagnostics


def _clean(logw: np.ndarray) -> np.ndarray:
    lw = np.asarray(logw, dtype=np.float64).ravel()
    if np.any(lw == np.inf):
        raise ValueError("a log-weight is +inf: log p(x, z) is +inf at a draw of q.")
    return np.where(np.isnan(lw), -np.inf, lw)


def _log_mean_exp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    top = np.max(x, axis=axis, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    out = np.log(np.mean(np.exp(x - safe), axis=axis)) + np.squeeze(safe, axis)
    return np.where(np.isfinite(np.squeeze(top, axis)), out, np.squeeze(top, axis))


def elbo_bound(logw: np.ndarray) -> Bound:
    """The ELBO: mean of the log-weights. -inf if q puts mass where p has none (then
    KL(q || p) is infinite and the ELBO is -inf)."""
    lw = _clean(logw)
    n = lw.size
    outside = int(np.sum(~np.isfinite(lw)))
    if outside:
        return Bound(-np.inf, np.inf, "lower", {"n": n, "outside_support": outside})
    return Bound(float(lw.mean()), float(lw.std(ddof=1) / math.sqrt(n)), "lower",
                 {"n": n, "outside_support": 0})


def iwae_bound(logw: np.ndarray, k: int) -> Bound:
    """IWAE-K from ``n`` log-weights: n // K groups of K (a remainder is dropped)."""
    lw = _clean(logw)
    if k < 1:
        raise ConfigError(f"IWAE needs K >= 1, got {k}.")
    groups = lw.size // k
    if groups < 2:
        raise ConfigError(
            f"IWAE-{k} needs at least 2 groups of {k} draws for a standard error, got "
            f"{lw.size} draws; lower K or draw more (n >= {2 * k})."
        )
    values = _log_mean_exp(lw[: groups * k].reshape(groups, k), axis=1)
    if not np.all(np.isfinite(values)):
        return Bound(-np.inf, np.inf, "lower", {"k": k, "groups": groups})
    return Bound(float(values.mean()), float(values.std(ddof=1) / math.sqrt(groups)), "lower",
                 {"k": k, "groups": groups})


def cubo_bound(logw: np.ndarray) -> Bound:
    """CUBO_2 = (1/2) log mean(w^2), with the Pareto k-hat of w (finite E w^2 needs k < 0.5)."""
    lw = _clean(logw)
    n = lw.size
    top = np.max(lw)
    if not np.isfinite(top):
        return Bound(-np.inf, np.inf, "upper", {"khat": float("nan"), "n": n})
    w2 = np.exp(2.0 * (lw - top))
    est = 0.5 * math.log(w2.mean()) + top
    se = 0.5 * w2.std(ddof=1) / (math.sqrt(n) * w2.mean())
    return Bound(float(est), float(se), "upper", {"khat": pareto_khat(lw), "n": n})
