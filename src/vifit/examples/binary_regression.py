"""Bayesian probit and logistic regression on Finney's (1947) vasoconstriction data (real).

    beta ~ N(0, 5^2 I_3),
    P(y_i = 1 | beta) = link(beta_0 + beta_1 log volume_i + beta_2 log rate_i),

with link the standard normal CDF (probit) or the logistic sigmoid; 39 trials (data file:
examples/data/vaso.csv, shipped with the package). A classic: nearly separable, so the
posterior is skewed and a Gaussian is only an approximation, which makes EP vs VI interesting.
The same model is an EP model (``probit_model()``) and a VI target (``make_probit()``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vifit.ep.model import Factorized
from vifit.ep.terms import Logistic, Probit
from vifit.target import Target

PRIOR_SD = 5.0
NAMES = ("intercept", "log_volume", "log_rate")
_DATA = Path(__file__).parent / "data" / "vaso.csv"


def vaso() -> tuple[np.ndarray, np.ndarray]:
    """Design ``(39, 3)``: intercept, log volume, log rate; response ``(39,)`` in {0, 1}."""
    lines = [ln for ln in _DATA.read_text().splitlines() if ln and not ln.startswith("#")]
    raw = np.array([[float(v) for v in ln.split(",")] for ln in lines[1:]])  # after the header
    x = np.column_stack([np.ones(len(raw)), np.log(raw[:, 0]), np.log(raw[:, 1])])
    return x, raw[:, 2]


def probit_model() -> Factorized:
    x, y = vaso()
    return Factorized(Probit(), y, x, prior_sd=PRIOR_SD, param_names=NAMES,
                      name="probit_regression")


def logistic_model() -> Factorized:
    x, y = vaso()
    return Factorized(Logistic(), y, x, prior_sd=PRIOR_SD, param_names=NAMES,
                      name="logistic_vaso")


def make_probit() -> Target:
    return probit_model().target()


def make_logistic() -> Target:
    return logistic_model().target()
