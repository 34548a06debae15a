"""The evidence contract on Gaussian mixtures with exact log Z (issue "Honest evidence on hard
targets"): after ``vifit.fit(target, "auto")`` and ``vifit.evidence``, every estimate vifit
calls a lower bound is below the truth and every upper bound above it (within 4 standard
errors), the mode search finds every mode, and a "good" verdict is within 0.1 nats.

The targets are bench/evidence_mixtures.py's (unequal weights, rotated anisotropic components
with condition number 10, minimum pairwise separation S in component sds, a constant offset):
the same constructors the benchmark in docs/evidence.md ("Mixtures") measures.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import vifit

_BENCH = Path(__file__).resolve().parents[2] / "bench" / "evidence_mixtures.py"
_spec = importlib.util.spec_from_file_location("bench_evidence_mixtures", _BENCH)
mixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mixtures)

Z = 4.0  # standard errors: a bound on the wrong side by more is a defect, not noise (6e-5)

# (K, d, S): three weights 1/6, 1/2, 1/3 in the plane 6 sds apart; four (0.1 to 0.4) in d = 5,
# where the narrowest sits beside wide ones (about 1 over-dispersed start in 700 lands in its
# basin: found since the search screens 16 short climbs per start); eight in d = 10, 10 sds apart, where the search misses most.
CONFIGS = [(3, 2, 6), (4, 5, 6), (8, 10, 10)]

# Known misses (docs/evidence.md, "Mixtures: modes found and log Z"). Strict: when the search
# finds them, this test passes and the entry must go. The verdict must not be "good" there.
MODES_MISSED = {(8, 10, 10): "the mode search finds 3 of 8 modes: the narrow components' "
                             "basins are too small for over-dispersed starts in d = 10"}


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: mixtures.config_name(*c))
def case(request):
    k, d, s = request.param
    target = mixtures.mixture(k, d, s)
    fit = vifit.fit(target, "auto", progress=False, seed=0)
    ev = vifit.evidence(target, fit, seed=0)
    return k, target, fit, ev, request.param


@pytest.mark.slow
def test_the_testbed_has_k_separate_modes(case):
    k, target, _, _, _ = case
    spec = target.exact["spec"]
    assert mixtures.min_separation(spec["means"], spec["covs"]) == pytest.approx(spec["sep"])
    assert mixtures.true_modes(spec).shape[0] == k


@pytest.mark.slow
def test_every_verified_bound_holds(case):
    _, target, _, ev, _ = case
    truth = target.exact["log_z"]
    assert mixtures.bound_failures(ev, truth, Z) == []
    for name, e in ev.estimates.items():  # the same, spelled out
        if ev.kind(name) == "lower":
            assert e.estimate < truth + Z * e.se, name
        elif ev.kind(name) == "upper":
            assert e.estimate > truth - Z * e.se, name
    br = ev.bracket
    if br["lower"] is not None:
        assert br["lower"] < truth + Z * ev.estimates[_name_of(ev, br["lower"], "lower")].se
    if br["upper"] is not None:
        assert br["upper"] > truth - Z * ev.estimates[_name_of(ev, br["upper"], "upper")].se


def _name_of(ev, value, kind):
    return next(n for n, e in ev.estimates.items() if ev.kind(n) == kind and e.estimate == value)


@pytest.mark.slow
def test_the_mode_search_finds_every_mode(case, request):
    k, target, fit, _, config = case
    if config in MODES_MISSED:
        request.applymarker(pytest.mark.xfail(strict=True, reason=MODES_MISSED[config]))
    modes = fit.info["modes"]
    assert modes["found"] == k
    present = mixtures.true_modes(target.exact["spec"])
    sd = float(np.sqrt(min(np.linalg.eigvalsh(c)[0] for c in target.exact["spec"]["covs"])))
    assert mixtures.match_modes([m["location"] for m in modes["modes"]], present, sd) == k


@pytest.mark.slow
def test_good_means_within_a_tenth_of_a_nat(case):
    _, target, _, ev, _ = case
    if ev.verdict.label == "good":
        assert abs(ev.log_z - target.exact["log_z"]) < 0.1, ev.verdict.text


@pytest.mark.slow
def test_a_search_that_misses_modes_is_not_good(case):
    k, target, fit, ev, _ = case
    if fit.info["modes"]["found"] < k:
        assert ev.verdict.label != "good", ev.verdict.text
        assert ev.bracket["upper"] is None

