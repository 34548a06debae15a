"""Pareto-smoothed importance sampling (Vehtari, Simpson, Gelman, Yao and Gabry, 2024).

vifit keeps its own PSIS so that every k-hat it reports, and every smoothed weight behind an
estimate, is the same number whichever ArviZ is installed: ArviZ 0.2x has ``az.psislw`` and
ArviZ 1.x moved and reshaped it. The method is the published one, with the usual constants:
a right tail of ``min(n / 5, 3 sqrt(n / r_eff))`` draws, the generalized Pareto fit of Zhang
and Stephens (2009) with its weakly informative prior on the shape (10 pseudo-draws at
k = 0.5), the tail replaced by the fitted quantiles and capped at the largest raw weight.
"""

from __future__ import annotations

import numpy as np

# Zhang and Stephens' prior constants: the grid's scale (in units of the first quartile) and
# the weight, in draws, of the shape prior centred at 0.5.
_PRIOR_SCALE = 3.0
_PRIOR_DRAWS = 10.0
_PRIOR_SHAPE = 0.5
# Fewer tail draws than this and no shape is fitted (k-hat = inf: nothing can be said).
MIN_TAIL = 5


# Log weights whose range is below this many nats are constant to rounding (q equals p up to
# float32 precision); a Pareto fit to a handful of distinct values is then meaningless. Over
# the tail PSIS fits, the same: k-hat is 0 (no tail).
CONSTANT_SPREAD = 1e-3


def tail_length(n: int, r_eff: float = 1.0) -> int:
    """Draws in the fitted right tail for ``n`` draws with relative efficiency ``r_eff``."""
    return int(np.ceil(min(n / 5.0, 3.0 * np.sqrt(n / r_eff))))


def gpd_fit(exceedances: np.ndarray) -> tuple[float, float]:
    """``(k, sigma)`` of a generalized Pareto fitted to positive ``exceedances (m,)`` sorted
    ascending: the posterior mean of Zhang and Stephens' profile over a grid of the
    reparameterized scale ``b = -k / sigma``, then k shrunk toward 0.5 by the prior."""
    x = np.asarray(exceedances, dtype=np.float64)
    m = x.size
    grid_size = 30 + int(np.sqrt(m))
    j = np.arange(1, grid_size + 1, dtype=np.float64)
    quartile = x[int(m / 4 + 0.5) - 1]
    b = 1.0 / x[-1] + (1.0 - np.sqrt(grid_size / (j - 0.5))) / (_PRIOR_SCALE * quartile)
    # For each b the shape that maximizes the likelihood has a closed form; its profile
    # log-likelihood, exponentiated and normalized, weights the grid.
    with np.errstate(invalid="ignore", divide="ignore"):
        shape = np.log1p(-b[:, None] * x).mean(axis=1)
        profile = m * (np.log(-b / shape) - shape - 1.0)
    # A b with 1 - b x <= 0 at some exceedance puts it outside the support: likelihood zero.
    # (Tied exceedances, as from weights that rounding made equal, put most of the grid there;
    # its NaN profile made every weight NaN and the fit divide by zero.)
    profile = np.where(np.isfinite(profile), profile, -np.inf)
    if not np.isfinite(profile).any():
        return float("inf"), float("nan")
    top = profile.max()
    weight = np.exp(profile - top) / np.exp(profile - top).sum()  # no overflow far from top
    keep = weight >= 10 * np.finfo(np.float64).eps
    b, weight = b[keep], weight[keep] / weight[keep].sum()
    b_mean = float(np.sum(b * weight))
    k = float(np.log1p(-b_mean * x).mean())
    sigma = -k / b_mean
    k = (m * k + _PRIOR_DRAWS * _PRIOR_SHAPE) / (m + _PRIOR_DRAWS)
    return k, sigma


def gpd_quantile(p: np.ndarray, k: float, sigma: float) -> np.ndarray:
    """Quantiles at probabilities ``p`` in (0, 1) of the generalized Pareto (shape k, scale
    sigma, location 0); NaN when sigma is not positive."""
    p = np.asarray(p, dtype=np.float64)
    if not sigma > 0:
        return np.full_like(p, np.nan)
    if abs(k) < np.finfo(np.float64).eps:
        return -sigma * np.log1p(-p)
    return sigma * np.expm1(-k * np.log1p(-p)) / k


def psis(logw: np.ndarray, r_eff: float = 1.0) -> tuple[np.ndarray, float]:
    """Pareto-smoothed log weights of ``logw (n,)`` (finite; float64; on the input's scale,
    not normalized) and the k-hat of the tail; ``k-hat = inf`` and the weights unchanged when
    the tail is too short or constant to fit."""
    lw = np.array(logw, dtype=np.float64)
    top = lw.max()
    lw -= top  # exp() of the tail stays in range
    order = np.argsort(lw)
    # The tail is what lies strictly above the cutoff draw, which is never below the smallest
    # normal double (the exceedances would underflow).
    cut = max(lw[order[-tail_length(lw.size, r_eff) - 1]], np.log(np.finfo(np.float64).tiny))
    tail = np.flatnonzero(lw > cut)
    if tail.size < MIN_TAIL:
        # Draws of a discrete q repeat states, so the largest weights can tie: the cutoff
        # draw then shares its value with the draws above it and too few lie strictly above.
        # The tail starts below the tie instead (measured: on an Ising model whose q drew
        # one state 70% of the time every k-hat was inf, with the largest weight 2.9 nats
        # above the median).
        below = lw[(lw < cut) & (lw >= np.log(np.finfo(np.float64).tiny))]
        if below.size == 0 or np.sum(lw > below.max()) < MIN_TAIL:
            return lw + top, float("inf")
        cut = below.max()
        tail = np.flatnonzero(lw > cut)
    tail = tail[np.argsort(lw[tail])]
    if lw[tail[-1]] - cut < CONSTANT_SPREAD:
        # the largest weights agree with the cutoff's to rounding: no tail to fit (a
        # two-component mixture fitted to an exact mixture had a tail 2e-5 nats wide,
        # 59 distinct float32 values in 190, and the fit read k-hat 1.17)
        return lw + top, 0.0
    k, sigma = gpd_fit(np.exp(lw[tail]) - np.exp(cut))
    if np.isfinite(k):
        probs = (np.arange(tail.size) + 0.5) / tail.size
        lw[tail] = np.log(gpd_quantile(probs, k, sigma) + np.exp(cut))
        lw = np.minimum(lw, 0.0)  # no smoothed weight above the largest raw one
    return lw + top, k
