"""Model comparison by evidence: log Bayes factors with standard errors and a plain reading.

The log Bayes factor of model A over model B is log Z_A - log Z_B. The two evidences are
estimated independently, so its standard error is sqrt(se_A^2 + se_B^2). The reading follows
Kass & Raftery (1995), whose scale is on 2 ln B:

    2 ln B   0 to 2: not worth more than a bare mention;  2 to 6: positive;
             6 to 10: strong;  above 10: very strong.

and says when the factor is within two standard errors of zero (the estimates cannot order the
models), when either evidence estimate was judged not reliable, and when the worse model's was
judged usable with care: every estimate of log Z errs low when it misses mass (a mode no search
reached), and a low log Z for the worse model overstates the factor. Where the better model
has a lower bound and the worse an upper bound that vifit stands behind (their ``bracket``),
the factor is at least their difference, whatever the estimates missed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from vifit.evidence.api import EvidenceResult

_SCALE = ((2.0, "not worth more than a bare mention"), (6.0, "positive"), (10.0, "strong"),
          (math.inf, "very strong"))


class BayesFactor(NamedTuple):
    better: str  # the model the data favour
    worse: str
    log_bf: float  # log Z_better - log Z_worse >= 0, nats
    se: float
    strength: str  # Kass & Raftery's words for 2 ln B
    reading: str  # one sentence for people
    # better's verified lower bound minus worse's verified upper bound, nats (None without both)
    at_least: float | None = None


def kass_raftery(log_bf: float) -> str:
    """Kass & Raftery's strength of evidence for ``log_bf >= 0`` (natural log)."""
    two = 2.0 * abs(log_bf)
    return next(words for bound, words in _SCALE if two <= bound)


def bayes_factor(name_a: str, a: EvidenceResult, name_b: str, b: EvidenceResult) -> BayesFactor:
    """The Bayes factor between two models of the same data, oriented so that it is >= 0."""
    if a.log_z < b.log_z:
        name_a, a, name_b, b = name_b, b, name_a, a
    log_bf = a.log_z - b.log_z
    se = math.hypot(a.log_z_se, b.log_z_se)
    strength = kass_raftery(log_bf)
    reading = (f"{name_a} over {name_b}: log Bayes factor {log_bf:.2f} ± {se:.2f} "
               f"(factor ~{_factor(log_bf)}), {strength}")
    if not math.isfinite(log_bf):
        reading = f"{name_a} over {name_b}: the log Bayes factor is not finite"
    elif log_bf < 2.0 * se:
        reading += "; but within two standard errors of zero, so these estimates cannot order " \
                   "the two models: estimate the evidence more precisely (more particles)"
    low, high = a.bracket["lower"], b.bracket["upper"]
    at_least = low - high if low is not None and high is not None else None
    unreliable = [n for n, r in ((name_a, a), (name_b, b)) if r.verdict.label == "not reliable"]
    if unreliable:
        reading += f"; the evidence of {' and '.join(unreliable)} is not reliable (see its " \
                   "verdict), so neither is this factor"
    elif b.verdict.label == "usable with care" and at_least is None:
        reading += (f"; the evidence of {name_b} is usable with care (see its verdict): where "
                    "it is low (mass its fit and AIS missed), this factor overstates the case "
                    f"for {name_a}")
    if at_least is not None and math.isfinite(log_bf):
        reading += (f"; by the bounds vifit stands behind it is at least {at_least:.2f}"
                    if at_least > 0 else "; the bounds vifit stands behind do not order them")
    return BayesFactor(name_a, name_b, log_bf, se, strength, reading + ".", at_least)


def _factor(log_bf: float) -> str:
    if log_bf > 700:
        return f"e^{log_bf:.0f}"
    value = math.exp(log_bf)
    return f"{value:.3g}" if value < 1e6 else f"{value:.2e}"


def rank_models(results: dict[str, EvidenceResult]) -> list[BayesFactor]:
    """Each model against the one with the highest evidence, best first (the best model's
    row is omitted). ``results``: model name -> its EvidenceResult."""
    ordered = sorted(results.items(), key=lambda kv: kv[1].log_z, reverse=True)
    best_name, best = ordered[0]
    return [bayes_factor(best_name, best, name, res) for name, res in ordered[1:]]
