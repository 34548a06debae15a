"""family='auto' and the flows against the full-rank Gaussian on a banana and a funnel."""

import math

import pytest

import vifit
from conftest import gaussian_log_density, z_bound
from test_fit import COV, MEAN
from vifit.auto import _khat_sd, fit_auto
from vifit.examples.shapes import banana, funnel

N_EVAL = 100_000  # k-hat's sd is about (1 + k) / sqrt(3 sqrt(n)): 0.05 here


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("make", [banana, funnel], ids=["banana", "funnel"])
def test_a_flow_beats_the_full_rank_gaussian(make):
    """auto fits the full-rank Gaussian (k-hat > 0.5 on both shapes), then RealNVP from it.
    The flow's ELBO must be higher by more than z_bound(1e-3) standard errors of the difference
    (independent evaluation draws), and its k-hat lower.

    On the banana the k-hat gap must exceed 2 asymptotic standard errors of the difference (a
    gap this large between equal k-hats has probability < 2.3%). On the funnel we only ask for
    a lower point estimate: measured gaps there were 0.10-0.15 against a 2-sd margin of 0.16,
    the flow fits the funnel's bulk (KL from ~0.9 to ~0.05 nats) but not reliably its tails
    (docs/families.md, "Tails"). The banana's margin holds at this seed since flows default to
    patience 20; across seeds the flow's k-hat is not reliably lower (seed 2: 0.75 against
    0.78, docs/families.md "Stopping"): reverse KL does not control the tails."""
    target = make()
    result = fit_auto(target, seed=0, n_eval=N_EVAL, progress=False, verbose=False)
    rows = {row["stage"]: row for row in result.info["auto"]["decisions"]}
    gauss, flow = rows["fullrank"], rows["realnvp"]
    assert gauss["khat"] > 0.5  # the Gaussian is not good enough: the reason to try a flow
    assert result.info["auto"]["chosen"] == "realnvp" and result.family.name == "realnvp"
    gain_se = math.hypot(gauss["elbo_se"], flow["elbo_se"])
    assert flow["elbo"] - gauss["elbo"] > z_bound(1e-3) * gain_se
    k_sd = math.hypot(_khat_sd(gauss["khat"], N_EVAL), _khat_sd(flow["khat"], N_EVAL))
    margin = 2.0 * k_sd if target.name == "banana" else 0.0
    assert gauss["khat"] - flow["khat"] > margin
    # log Z = 0 for both shapes: the flow's ELBO is a lower bound on it
    assert result.elbo < z_bound(1e-3) * result.elbo_se


def test_auto_keeps_the_gaussian_on_a_gaussian_target(capsys):
    log_density, log_z = gaussian_log_density(MEAN, COV, offset=1.0)
    result = vifit.fit(vifit.Target(log_density, dim=4), "auto", seed=0, progress=False)
    auto = result.info["auto"]
    assert auto["chosen"] == "fullrank" and [r["stage"] for r in auto["decisions"]] == [
        "pathfinder", "mode search", "fullrank"]
    assert result.info["modes"]["found"] == 1 and result.info["modes"]["covered_by_q"] == 1
    assert "k-hat" in auto["decisions"][2]["why"] and result.khat < 0.5
    assert abs(result.log_z - log_z) < z_bound(1e-3) * result.log_z_se + 1e-4
    with pytest.raises(vifit.ConfigError, match="chooses the estimator"):
        vifit.fit(vifit.Target(log_density, dim=4), "auto", optimizer="sgd")
