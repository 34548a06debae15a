"""Summaries of importance weights shared by the estimators: log mean exp with its delta-method
standard error, effective sample size, and the Pareto k-hat of the weights' upper tail."""

from __future__ import annotations

import numpy as np

from vifit.evidence.psis import psis


def weights_summary(logw: np.ndarray) -> tuple[float, float, float, float]:
    """``(log mean exp(logw), delta-method SE, ESS, sd of the finite logw)``, in float64.

    With w_i i.i.d., Var(mean w) = Var(w) / n and log is smooth at mean(w), so
    SE(log mean w) ~ sd(w) / (sqrt(n) mean(w)); valid when Var(w) is finite (k-hat < 0.5)."""
    lw = np.asarray(logw, dtype=np.float64)
    lw = np.where(np.isnan(lw), -np.inf, lw)
    n, top = lw.size, np.max(lw)
    if not np.isfinite(top):
        return -np.inf, np.inf, 0.0, np.nan
    w = np.exp(lw - top)
    se = float(w.std(ddof=1) / (np.sqrt(n) * w.mean())) if n > 1 else np.inf
    finite = lw[np.isfinite(lw)]
    spread = float(finite.std(ddof=1)) if finite.size > 1 else np.nan
    return float(top + np.log(w.mean())), se, float(w.sum() ** 2 / np.sum(w**2)), spread


def pareto_khat(logw: np.ndarray) -> float:
    """Pareto k-hat of the upper tail of exp(logw) (``vifit.evidence.psis``)."""
    lw = np.asarray(logw, dtype=np.float64)
    lw = lw[np.isfinite(lw)]
    if lw.size < 20:
        return float("nan")  # too few for a tail fit
    return psis(lw)[1]
