"""The mode search over integer states (vifit.state_modes): a mean-field q on one of an Ising
model's two ground states is not "good", the mass it misses is measured, and `vifit evidence`
reaches it; log Z exact by enumeration (2^16 states), which the verdicts use where vifit can
sum the states (vifit.discrete.enumerable)."""

import math
import re

import jax.numpy as jnp
import numpy as np
import pytest

import vifit
from conftest import z_bound
from vifit.evidence.psis import psis
from vifit.examples.ising import make


@pytest.fixture(scope="module")
def cold_ising():
    """Below the critical temperature, no field: all spins up and all down equally likely."""
    target = make(coupling=0.5, field=0.0)
    return target, vifit.fit(target, seed=0, progress=False)


def test_a_q_on_one_of_two_ground_states_is_not_reliable(cold_ising):
    target, fit = cold_ising
    exact = target.exact["log_z"]
    modes = fit.info["modes"]
    ground = {tuple(np.ones(10, int)), tuple(np.zeros(10, int))}
    assert ground <= {tuple(np.asarray(m["location"], int)) for m in modes["modes"]}
    assert fit.verdict.label == "not reliable"
    assert "misses about" in fit.verdict.text
    # q's own log Z reaches one ground state's half of the mass
    assert fit.log_z < exact - math.log(2) + 0.1
    # the mixture of q and the modes found measures it: its log Z is exact to its error
    joined = modes["log_z_with_modes"]
    assert abs(joined["log_z"] - exact) < z_bound(1e-3) * joined["se"] + 0.01
    assert modes["mass_by"] == "importance sampling"
    assert 0.4 < modes["missed_mass_fraction"] < 0.6


def test_evidence_recommends_the_sum_over_every_state(cold_ising):
    """2^16 states are few enough to sum: the sum is the answer, every bound is checked
    against it, and the verdict says how much q misses."""
    target, fit = cold_ising
    exact = target.exact["log_z"]
    ev = vifit.evidence(target, fit, seed=0)
    assert ev.verdict.recommended == "enumeration" and ev.verdict.label == "good"
    assert ev.kind("enumeration") == "exact"
    assert ev.log_z == pytest.approx(exact, abs=1e-9)
    assert ev.bracket["lower"] <= exact <= ev.bracket["upper"]
    assert ev.bracket["upper"] - ev.bracket["lower"] < 1e-6
    # half the mass, up to q's Monte Carlo error
    missed = re.search(r"q misses about (\d+)%", ev.verdict.text)
    assert missed and 40 <= int(missed.group(1)) <= 60
    # no bound on the wrong side of the sum is stood behind
    for name in ("elbo", "iwae", "cubo"):
        e = ev.estimates[name]
        wrong = (e.estimate > exact + 3 * e.se if e.kind == "lower"
                 else e.estimate < exact - 3 * e.se)
        assert ev.kind(name) == ("unverified" if wrong else e.kind), name


def test_beyond_the_sum_evidence_recommends_the_estimate_that_reaches_both_modes(
        cold_ising, monkeypatch):
    """Where the states are too many to sum (here: the limit lowered below 2^16), the
    estimate from q joined by the modes the search found is the best there is."""
    import vifit.discrete

    monkeypatch.setattr(vifit.discrete, "ENUMERATE_MAX_STATES", 1 << 10)
    target, fit = cold_ising
    exact = target.exact["log_z"]
    ev = vifit.evidence(target, fit, seed=0)
    assert "enumeration" not in ev.estimates
    assert ev.verdict.recommended == "modes" and ev.verdict.label == "usable with care"
    est = ev.estimates["modes"]
    assert abs(est.estimate - exact) < z_bound(1e-3) * est.se + 0.01
    # every bound vifit stands behind holds
    assert ev.bracket["lower"] < exact + z_bound(1e-3) * ev.estimates["elbo"].se
    assert ev.bracket["upper"] is None


def test_one_mode_is_found_and_covered_on_independent_sites():
    """A product target: one mode, covered, nothing missed, and the sum over its 8 states
    agrees with q's log Z: the fit is good."""
    a = jnp.array([1.5, -0.7, 0.3])
    target = vifit.DiscreteTarget(lambda x: jnp.sum(a * x), n_sites=3, n_states=2)
    fit = vifit.fit(target, seed=0, progress=False)
    modes = fit.info["modes"]
    assert modes["found"] == 1 and modes["covered_by_q"] == 1
    assert modes["missed_mass_fraction"] == 0.0
    assert modes["modes"][0]["location"] == [1.0, 0.0, 1.0]
    # the mode's local conditionals are exact for a product: its mass is Z
    exact = float(jnp.sum(jnp.logaddexp(0.0, a)))
    assert modes["modes"][0]["laplace_log_mass"] == pytest.approx(exact, abs=1e-5)
    assert fit.info["enumeration"]["log_z"] == pytest.approx(exact, abs=1e-6)
    assert fit.bracket["lower"] <= exact + 1e-6 and fit.bracket["upper"] >= exact - 1e-6
    assert fit.verdict.label == "good"
    assert "all 8 states" in fit.verdict.text and "agrees" in fit.verdict.text


def _spike(n_states: int, share: float = 0.3):
    """Three sites of ``n_states`` states: a smooth bump in the middle, and one state far from
    it holding ``share`` of the mass. Every single-site change from that state falls onto the
    bump's tail, so a climb reaches it only from a start that shares two of its sites."""
    sd, centre = n_states / 10, (n_states - 1) / 2
    spike = jnp.array([10, 47, 84]) % n_states
    smooth_log_z = 3 * math.log(math.sqrt(2 * math.pi) * sd)  # the bump's sum, nearly
    log_spike = smooth_log_z + math.log(share / (1 - share))

    def log_prob(x):
        smooth = -0.5 * jnp.sum(((x - centre) / sd) ** 2)
        return jnp.where(jnp.all(x == spike), jnp.logaddexp(smooth, log_spike), smooth)

    return vifit.DiscreteTarget(log_prob, n_sites=3, n_states=n_states, name="spike")


def test_a_state_no_climb_reaches_is_found_by_the_sum():
    """10^6 states: the search over states climbs onto the bump alone, and q's k-hat is clean,
    yet 30% of the mass sits on one state (the fit read "good" with log Z 0.39 nats low
    before the sum). The sum over every state measures the mass q misses."""
    target = _spike(100)
    fit = vifit.fit(target, seed=0, progress=False)
    exact = fit.info["enumeration"]["log_z"]
    assert exact - fit.log_z > math.log(1 / 0.7) - 0.1
    assert fit.verdict.label == "not reliable"
    assert "misses about" in fit.verdict.text
    ev = vifit.evidence(target, fit, seed=0)
    assert ev.verdict.recommended == "enumeration" and ev.log_z == pytest.approx(exact)
    assert ev.bracket["lower"] <= exact <= ev.bracket["upper"]


def test_states_too_many_to_sum_are_never_good(monkeypatch):
    """Where the states are too many to sum, no search over them vouches for every mode: the
    same target with the sum's limit below its 10^6 states is at best usable with care, and
    the verdict says why."""
    import vifit.discrete

    monkeypatch.setattr(vifit.discrete, "ENUMERATE_MAX_STATES", 1 << 16)
    target = _spike(100)
    fit = vifit.fit(target, seed=0, progress=False)
    assert "enumeration" not in fit.info
    assert fit.verdict.label != "good"
    assert "too many for vifit to sum" in fit.verdict.text
    ev = vifit.evidence(target, fit, seed=0)
    assert ev.verdict.label != "good" and ev.bracket["upper"] is None


def test_auto_on_a_discrete_target_fits_the_factorized_family():
    """family="auto" (the command line's default) on states: the factorized family and its
    search, not auto's Gaussian stage (which raised "family 'fullrank' is continuous")."""
    target = vifit.DiscreteTarget(lambda x: jnp.sum(jnp.array([0.5, -0.5, 1.0, 0.0]) * x),
                                  n_sites=4, n_states=3)
    fit = vifit.fit(target, "auto", seed=0, progress=False)
    assert fit.family.name == "categorical" and "modes" in fit.info
    assert any("factorized family" in n for n in fit.notes)


def test_psis_fits_a_tail_whose_largest_weights_tie():
    """Draws of a discrete q repeat states: the cutoff draw can share its value with every
    draw above it. The tail then starts below the tie, not nowhere (k-hat was inf)."""
    rng = np.random.default_rng(0)
    logw = np.concatenate([rng.normal(0.0, 0.3, 3000), np.full(1000, 1.0)])
    _, k = psis(logw)
    assert np.isfinite(k) and k < 0.5
    _, k_const = psis(np.zeros(100))  # nothing to fit at all
    assert k_const == float("inf")


def test_rounding_does_not_break_the_ties_of_repeated_states():
    """The same state's log weight computed in different lanes can differ in its last bits;
    those broken ties must not reach PSIS (k-hat went from 0.33 to 7.3 with 1e-7 nats of
    noise), so draws of a discrete q share one weight per state."""
    from vifit.evidence.importance import tie_repeated_states

    rng = np.random.default_rng(0)
    z = (rng.random((8192, 12)) < 0.9).astype(np.int32)  # mean-field q over 12 spins
    s = 2 * z - 1
    logw = (0.8 * np.sum(s[:, 1:] * s[:, :-1], axis=1) + 0.3 * s.sum(axis=1)
            - np.sum(np.where(z == 1, np.log(0.9), np.log(0.1)), axis=1))
    noisy = logw + 1e-7 * rng.standard_normal(logw.size)
    _, k_clean = psis(logw)
    _, k_tied = psis(tie_repeated_states(z, noisy))
    assert k_clean < 0.5 and k_tied == pytest.approx(k_clean, abs=1e-6)
    floats = z.astype(np.float32)  # continuous draws are left as they are
    assert np.array_equal(tie_repeated_states(floats, noisy), noisy)


def test_a_hard_constraint_fails_with_a_discrete_remedy():
    """log p = -inf off a constraint: KL(q || p) is infinite for any factorized q, and the
    verdict says what to do on a discrete target (not "write the model on the real line")."""
    w = jnp.linspace(-1.0, 1.0, 8)
    target = vifit.DiscreteTarget(lambda x: jnp.where(jnp.sum(x) == 3, jnp.sum(w * x), -jnp.inf),
                                  n_sites=8, n_states=2, init=jnp.array([1, 1, 1, 0, 0, 0, 0, 0]))
    fit = vifit.fit(target, seed=0, progress=False)
    assert fit.verdict.label == "failed"
    assert "hard constraint" in fit.verdict.text and "real line" not in fit.verdict.text
