"""Gaussian q's for the evidence testbeds, made by hand so that tests need no fit: "good" ones
close to p, and ones shaped like what a KL(q || p) fit gives (too narrow, or on one mode)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from vifit.evidence import testbeds as tb
from vifit.families import FullRank


def fullrank_params(mean, cov) -> dict:
    """FullRank parameters of N(mean, cov)."""
    chol = np.linalg.cholesky(np.asarray(cov, dtype=np.float64))
    raw = np.tril(chol, -1) + np.diag(np.log(np.diag(chol)))
    return {"loc": jnp.asarray(np.asarray(mean, dtype=np.float64)), "chol": jnp.asarray(raw)}


def _student_scale(d=10, seed=2):
    rng = np.random.default_rng(seed)
    rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scale = (rot * np.logspace(0.0, 1.0, d)) @ rot.T
    return rng.normal(size=d), scale


def _gaussian():
    g = tb.correlated_gaussian()
    return g, g.exact["mean"] + 0.05, 1.2 * g.exact["cov"], "close"


def _linear_regression():
    lr = tb.linear_regression()
    return lr, lr.exact["mean"], 1.3 * lr.exact["cov"], "close"


def _student_t():
    loc, scale = _student_scale()
    return tb.student_t(), loc, 0.5 * scale, "narrow"


def _mode_a(d):  # the mean of the mixtures' 0.3-weight component
    return -4.0 * np.ones(d) / np.sqrt(d)


# name -> () -> (target, q mean, q cov, how q relates to p). Built on call, so that the target
# takes the current float precision.
CASES = {
    "gaussian_100d": _gaussian,
    "linear_regression": _linear_regression,
    # q as a fullrank KL fit finds it: v too narrow and shifted into the neck.
    "funnel_10d": lambda: (tb.funnel(), np.r_[-1.0, np.zeros(9)],
                           np.diag([0.46**2] + [0.57**2] * 9), "narrow"),
    # Half the moment-matched scale: a KL fit is too narrow in the same way.
    "banana_2d": lambda: (tb.banana(2), np.zeros(2), 0.25 * np.diag([100.0, 201.0]), "narrow"),
    "banana_20d": lambda: (tb.banana(20), np.zeros(20),
                           0.25 * np.diag([100.0, 201.0] + [1.0] * 18), "narrow"),
    "student_t_10d": _student_t,
    # On the 0.3-weight mode only, as the fits find it; a little off so that weights vary.
    "mixture_2d": lambda: (tb.gaussian_mixture(2), _mode_a(2) + 0.1, 0.9 * np.eye(2),
                           "one mode"),
    "mixture_10d": lambda: (tb.gaussian_mixture(10), _mode_a(10) + 0.05, 0.9 * np.eye(10),
                            "one mode"),
}

FAMILY = FullRank()
