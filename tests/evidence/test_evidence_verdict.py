"""The verdict rule on synthetic estimates: each branch of vifit.evidence.verdict, and the
Bayes-factor reading of vifit.evidence.compare."""

import math

import pytest

from vifit.evidence.api import EvidenceResult
from vifit.evidence.compare import bayes_factor, kass_raftery, rank_models
from vifit.evidence.verdict import Estimate, judge


def est(name, value, se, kind="point", **details):
    return Estimate(name, value, se, kind, 0.1, details)


def estimates(psis=(0.0, 0.01, 0.2), ais=(0.0, 0.02, 0.1, 0.2), elbo=-0.5, iwae=-0.05,
              cubo=(0.4, 0.05, 0.2), ais_ess=30.0):
    out = {
        "elbo": est("elbo", elbo, 0.01, "lower"),
        "iwae": est("iwae", iwae, 0.01, "lower", k=64),
        "psis": est("psis", psis[0], psis[1], khat=psis[2]),
        "cubo": est("cubo", cubo[0], cubo[1], "upper", khat=cubo[2]),
    }
    if ais is not None:
        value, se, khat, spread = ais
        out["ais"] = est("ais", value, se, khat=khat, ess=ais_ess, replicates=32, spread=spread)
    return out


def test_agreeing_clean_estimates_are_good_and_the_precise_one_is_recommended():
    v = judge(estimates())
    assert v.label == "good" and v.recommended == "psis"  # se 0.01 < 0.02
    v = judge(estimates(psis=(0.0, 0.05, 0.2)))
    assert v.label == "good" and v.recommended == "ais"


def test_q_missing_a_mode_is_caught_by_ais_though_khat_looks_fine():
    # The well-separated mixture: PSIS sits log(0.3) low with a small k-hat; AIS finds the rest.
    v = judge(estimates(psis=(-1.2, 0.001, 0.1), elbo=-1.21, iwae=-1.2, cubo=(-1.2, 0.001, 0.1)))
    assert v.recommended == "ais" and v.label == "usable with care"
    assert "q misses part of the posterior" in v.text and "looks fine" in v.text
    assert "CUBO comes from the same draws of q" in v.text


def test_heavy_tailed_weights_lower_the_label():
    v = judge(estimates(ais=None, psis=(0.0, 0.05, 0.6)))
    assert v.recommended == "psis" and v.label == "usable with care"
    assert "0.5 to 0.7" in v.text and "AIS was not run" in v.text


def test_nothing_trustworthy_is_not_reliable_and_falls_back_to_a_lower_bound():
    v = judge(estimates(psis=(-0.3, 0.1, 1.1), ais=(0.0, 0.3, 0.9, 2.0), ais_ess=1.5))
    assert v.label == "not reliable" and v.recommended == "iwae"
    assert "carry all the weight" in v.text and "k-hat is 1.10" in v.text


def test_a_skipped_ais_is_said_even_when_nothing_passes():
    # Without AIS and with PSIS failing, the fallback's reasons still say AIS was never run: a
    # user reading "not reliable" should know the one check that could have helped is missing.
    v = judge(estimates(ais=None, psis=(-0.3, 0.1, 0.9)))
    assert v.label == "not reliable" and v.recommended == "iwae"
    assert "AIS was not run" in v.text and "k-hat is 0.90" in v.text


def test_a_rough_ais_khat_lowers_the_label_but_keeps_ais():
    v = judge(estimates(psis=(-0.8, 0.07, 0.9), ais=(0.0, 0.04, 0.8, 0.3)))
    assert v.recommended == "ais" and v.label == "usable with care"
    assert "k-hat 0.80" in v.text and "32 replicates" in v.text


def test_ais_below_a_lower_bound_is_not_used():
    v = judge(estimates(ais=(-0.5, 0.02, 0.1, 0.2), psis=(0.0, 0.01, 0.3)))
    assert v.recommended == "psis" and v.label == "usable with care"
    assert "below the iwae lower bound" in v.text


def test_psis_above_ais_is_preferred():
    v = judge(estimates(ais=(-0.3, 0.02, 0.1, 0.2), psis=(0.0, 0.01, 0.55), iwae=-0.4))
    assert v.recommended == "psis" and "lost mass" in v.text


def test_cubo_checks():
    v = judge(estimates(cubo=(0.1, 0.05, 0.8)))
    assert "E_q[w^2] is infinite" in v.text and v.label == "good"
    v = judge(estimates(cubo=(-1.0, 0.05, 0.3)))  # below the lower bounds: CUBO fails
    assert "biased low" in v.text
    v = judge(estimates(cubo=(-0.2, 0.01, 0.3), iwae=-0.3))  # estimate above a sound CUBO
    assert "above the CUBO upper bound" in v.text and v.label == "usable with care"


@pytest.mark.parametrize("log_bf, words", [(0.4, "not worth more than a bare mention"),
                                            (2.0, "positive"), (4.0, "strong"),
                                            (6.0, "very strong")])
def test_kass_raftery_scale(log_bf, words):
    assert kass_raftery(log_bf) == words


def result(log_z, se, label="good"):
    v = judge({"psis": est("psis", log_z, se, khat=0.1)})._replace(label=label)
    return EvidenceResult("m", 1, {"psis": est("psis", log_z, se, khat=0.1)}, v, None, None)


def test_bayes_factors_orient_rank_and_say_when_unsure():
    bf = bayes_factor("a", result(-10.0, 0.3), "b", result(-6.5, 0.4))
    assert (bf.better, bf.worse) == ("b", "a")
    assert math.isclose(bf.log_bf, 3.5) and math.isclose(bf.se, 0.5)
    assert bf.strength == "strong" and "cannot order" not in bf.reading
    close = bayes_factor("a", result(-10.0, 0.3), "b", result(-9.5, 0.4))
    assert "cannot order the two models" in close.reading
    bad = bayes_factor("a", result(-10.0, 0.3, "not reliable"), "b", result(-1.0, 0.1))
    assert "evidence of a is not reliable" in bad.reading
    rows = rank_models({"x": result(-5.0, 0.1), "y": result(-1.0, 0.1), "z": result(-3.0, 0.1)})
    assert [(r.better, r.worse) for r in rows] == [("y", "z"), ("y", "x")]


def test_a_bayes_factor_says_when_the_worse_evidence_may_be_low():
    """Estimates of log Z err low when they miss mass: a worse model whose evidence is only
    usable with care may be better than it looks, and the reading says so; where both
    brackets exist the factor is bounded below by them."""
    care = bayes_factor("a", result(-10.0, 0.1, "usable with care"), "b", result(-2.0, 0.1))
    assert (care.better, care.worse) == ("b", "a") and care.at_least is None
    assert "evidence of a is usable with care" in care.reading
    assert "overstates the case for b" in care.reading
    # the better model's care does not weaken the ordering: its log Z can only be higher
    fine = bayes_factor("a", result(-10.0, 0.1), "b", result(-2.0, 0.1, "usable with care"))
    assert "usable with care" not in fine.reading

    def bounded(log_z, lower, upper):
        e = {"psis": est("psis", log_z, 0.01, khat=0.1),
             "elbo": est("elbo", lower, 0.01, "lower"), "cubo": est("cubo", upper, 0.01, "upper")}
        v = judge({"psis": e["psis"]})._replace(label="usable with care")
        return EvidenceResult("m", 1, e, v, None, None)

    sure = bayes_factor("a", bounded(-10.0, -10.2, -9.9), "b", bounded(-2.0, -2.1, -1.8))
    assert sure.at_least == pytest.approx(-2.1 - (-9.9))
    assert "at least 7.80" in sure.reading and "overstates" not in sure.reading
    overlap = bayes_factor("a", bounded(-2.5, -2.6, -1.0), "b", bounded(-2.0, -2.1, -1.8))
    assert overlap.at_least < 0 and "do not order them" in overlap.reading


def test_an_ais_that_has_not_settled_is_not_used():
    # Its runs from refitted bases still rose: its replicates, all short of the same mass,
    # agree with each other, so its standard error is no measure of its error.
    e = estimates(psis=(-0.1, 0.01, 0.3), ais=(0.0, 0.02, 0.1, 0.2))
    e["ais"].details.update(settled=False, history=[[-3.0, 0.3], [-0.6, 0.05], [0.0, 0.02]])
    v = judge(e)
    assert v.recommended == "psis" and v.label == "usable with care"
    assert "AIS has not settled" in v.text and "-3.000 -> -0.600 -> 0.000" in v.text


def test_where_nothing_passes_an_unsettled_ais_above_the_bounds_is_reported():
    # Every estimate here errs low in log space; the highest is the nearest, under "not
    # reliable" (the rotated Gaussian with sds 1e-3 to 1e3: PSIS 20 nats low, AIS rising).
    e = estimates(psis=(-20.1, 0.2, 1.2), ais=(-0.8, 0.3, 0.3, 5.8), elbo=-25.9, iwae=-21.0,
                  cubo=(-17.2, 0.2, 1.2))
    e["ais"].details.update(settled=False, history=[[-5.5, 0.1], [-1.3, 0.1], [-0.8, 0.3]])
    v = judge(e)
    assert v.label == "not reliable" and v.recommended == "ais"
    assert "the last AIS run, itself likely low, is reported" in v.text
    e["ais"].details.update(settled=True)
    assert judge(e).label != "not reliable"  # the same estimates, settled: AIS stands
