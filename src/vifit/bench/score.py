"""Scores of an approximation against a catalog reference.

Every score is over the scalars of the model's constrained parameters that the reference has:

- ``mean_err``: max_k |mean_q,k - mean_ref,k| / sd_ref,k  (in posterior standard deviations);
- ``log_sd_err``: max_k |log(sd_q,k / sd_ref,k)|  (0.1 means 10% too wide or too narrow);
- ``log_z_err``: log Z estimate - exact log Z, where the reference knows log Z.

``n`` draws of q estimate its mean and sd, so a perfect q still scores about
sqrt(2 log m) / sqrt(n) on ``mean_err`` (0.05 for m = 100, n = 4000): differences below that
floor mean nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vifit.catalog.reference import Reference


class Scores(NamedTuple):
    mean_err: float  # max |mean error| / reference sd over the scalars
    log_sd_err: float  # max |log(sd / reference sd)|
    worst_mean: str  # the scalar where mean_err is reached
    worst_sd: str  # the scalar where log_sd_err is reached
    n_compared: int  # how many scalars were compared


def score_draws(names: list[str], draws: np.ndarray, reference: Reference) -> Scores:
    """Scores of draws ``(n, m)`` of the constrained scalars ``names`` against ``reference``."""
    index = {name: i for i, name in enumerate(names)}
    common = [k for k, name in enumerate(reference.names) if name in index]
    if not common:
        raise ValueError(
            f"none of the reference's parameters ({reference.names[:3]}...) are among the "
            f"draws' ({names[:3]}...)."
        )
    cols = [index[reference.names[k]] for k in common]
    x = np.asarray(draws, dtype=np.float64)[:, cols]
    ok = np.all(np.isfinite(x), axis=1)
    x = x[ok]
    if x.shape[0] < 2:
        return Scores(np.inf, np.inf, "", "", len(common))
    ref_mean, ref_sd = reference.mean[common], reference.sd[common]
    mean_err = np.abs(x.mean(0) - ref_mean) / ref_sd
    with np.errstate(divide="ignore"):
        sd_err = np.abs(np.log(x.std(0, ddof=1) / ref_sd))
    i, j = int(np.argmax(mean_err)), int(np.argmax(sd_err))
    return Scores(float(mean_err[i]), float(sd_err[j]), reference.names[common[i]],
                  reference.names[common[j]], len(common))


# The bar of the real-posterior issue: every mean within 0.1 posterior sd, every sd within 10%.
PASS_MEAN, PASS_SD = 0.1, 0.1


class ZScores(NamedTuple):
    """Scores on the unconstrained z that vifit fits, against the reference's z moments."""

    mean_err: float  # max_k |mean_k - ref_k| / ref sd_k
    sd_err: float  # max_k |sd_k / ref sd_k - 1|
    passed: bool  # mean_err <= PASS_MEAN and sd_err <= PASS_SD


def score_z(z: np.ndarray, reference: Reference, weights: np.ndarray | None = None
            ) -> ZScores | None:
    """Scores of draws ``z (n, d)`` (optionally with normalized ``weights (n,)``, e.g. PSIS's)
    against the reference's unconstrained moments; None when the reference has none."""
    if reference.z_mean is None or reference.z_sd is None:
        return None
    x = np.asarray(z, dtype=np.float64)
    ok = np.all(np.isfinite(x), axis=1)
    if weights is None:
        w = ok / max(ok.sum(), 1)
    else:
        w = np.where(ok, np.asarray(weights, np.float64), 0.0)
        w = w / w.sum() if w.sum() > 0 else w
    if ok.sum() < 2 or not np.any(w > 0):
        return ZScores(np.inf, np.inf, False)
    x = np.where(ok[:, None], x, 0.0)
    mean = w @ x
    var = w @ (x - mean) ** 2 / max(1.0 - float(w @ w), 1e-12)
    mean_err = float(np.max(np.abs(mean - reference.z_mean) / reference.z_sd))
    sd_err = float(np.max(np.abs(np.sqrt(var) / reference.z_sd - 1.0)))
    return ZScores(mean_err, sd_err, mean_err <= PASS_MEAN and sd_err <= PASS_SD)
