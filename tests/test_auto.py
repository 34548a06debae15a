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
    a lower k-hat on average over seeds 0-2: the flow fits the funnel's bulk (KL from ~0.9 to
    ~0.05 nats) but not reliably its tails (docs/families.md, "Tails"). Measured gaps, seeds
    0-3: 0.02, 0.09, 0.15, 0.29 (Python 3.11, jax 0.10) and -0.01, 0.21, 0.23, 0.23 (3.12,
    jax 0.12), each with an sd of about 0.07: one seed alone is within noise of zero. The
    banana's margin holds at this seed since flows default to patience 20; across seeds the
    flow's k-hat is not reliably lower (seed 2: 0.75 against 0.78, docs/families.md
    "Stopping"): reverse KL does not control the tails."""
    target = make()
    seeds = [0] if target.name == "banana" else [0, 1, 2]
    gaps = []
    for seed in seeds:
        result = fit_auto(target, seed=seed, n_eval=N_EVAL, progress=False, verbose=False)
        rows = {row["stage"]: row for row in result.info["auto"]["decisions"]}
        gauss, flow = rows["fullrank"], rows["realnvp"]
        assert gauss["khat"] > 0.5  # the Gaussian is not good enough: the reason to try a flow
        assert result.info["auto"]["chosen"] == "realnvp" and result.family.name == "realnvp"
        gain_se = math.hypot(gauss["elbo_se"], flow["elbo_se"])
        assert flow["elbo"] - gauss["elbo"] > z_bound(1e-3) * gain_se
        # log Z = 0 for both shapes: the flow's ELBO is a lower bound on it
        assert result.elbo < z_bound(1e-3) * result.elbo_se
        gaps.append(gauss["khat"] - flow["khat"])
        k_sd = math.hypot(_khat_sd(gauss["khat"], N_EVAL), _khat_sd(flow["khat"], N_EVAL))
    if target.name == "banana":
        assert gaps[0] > 2.0 * k_sd
    else:
        assert sum(gaps) / len(gaps) > 0.0


def test_auto_keeps_the_gaussian_on_a_gaussian_target(capsys):
    log_density, log_z = gaussian_log_density(MEAN, COV, offset=1.0)
    result = vifit.fit(vifit.Target(log_density, dim=4), "auto", seed=0, progress=False)
    auto = result.info["auto"]
    assert auto["chosen"] == "fullrank" and [r["stage"] for r in auto["decisions"]] == [
        "pathfinder", "mode search", "fullrank"]
    assert result.info["modes"]["found"] == 1 and result.info["modes"]["covered_by_q"] == 1
    # natgrad from the default start converges on a Gaussian: Pathfinder is not run
    assert auto["decisions"][0]["decision"].startswith("not run")
    assert "k-hat" in auto["decisions"][2]["why"] and result.khat < 0.5
    assert abs(result.log_z - log_z) < z_bound(1e-3) * result.log_z_se + 1e-4
    with pytest.raises(vifit.ConfigError, match="chooses the estimator"):
        vifit.fit(vifit.Target(log_density, dim=4), "auto", optimizer="sgd")


def _scaled_regression(n: int = 200):
    """Earnings-on-height-like regression on the raw scale (intercept ~ -6e4, slope ~ 1e3,
    noise sd ~ 2e4), flat priors on the coefficients and on sigma (z = log sigma): natgrad from
    the default start (0, 0, 0) overflows. Returns the target and its exact log Z:
    integrating out beta leaves (2 pi) |X'X|^-1/2 s^(2-n) exp(-R / 2s^2) with R the least-squares
    residual sum, and over u = log s, with the Jacobian s of the flat prior on s,
    1/2 (2/R)^((n-3)/2) Gamma((n-3)/2)."""
    import jax.numpy as jnp
    import numpy as np
    from scipy.special import gammaln

    rng = np.random.default_rng(0)
    h = rng.normal(66.0, 4.0, n)
    y = -60000.0 + 1300.0 * h + rng.normal(0.0, 19000.0, n)
    x = np.stack([np.ones(n), h], axis=1)
    resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    r = float(resid @ resid)
    log_z = (math.log(2 * math.pi) - 0.5 * np.linalg.slogdet(x.T @ x)[1] + math.log(0.5)
             + 0.5 * (n - 3) * math.log(2.0 / r) + gammaln(0.5 * (n - 3)))
    hj, yj = jnp.asarray(h), jnp.asarray(y)

    def log_density(z):
        b0, b1, log_s = z[0], z[1], z[2]
        return jnp.sum(-0.5 * ((yj - b0 - b1 * hj) / jnp.exp(log_s)) ** 2) - (n - 1) * log_s

    return vifit.Target(log_density, dim=3), float(log_z)


def test_auto_asks_pathfinder_for_a_start_where_the_default_one_fails():
    """On a badly scaled regression natgrad from the default start fails; auto then fits again
    from Pathfinder's start, and the answer is right: the ELBO is a lower bound on the exact
    log Z and the importance-sampling log Z agrees with it."""
    target, log_z = _scaled_regression()
    result = vifit.fit(target, "auto", seed=0, progress=False)
    first = result.info["auto"]["decisions"][0]
    assert first["stage"] == "pathfinder"
    assert "from the default start stopped" in first["why"]
    assert first["decision"] == "start the full-rank Gaussian from Pathfinder's"
    z = z_bound(1e-3, 2)
    assert result.elbo < log_z + z * result.elbo_se
    # 1e-3: float32 rounding of a log p near -2000 nats
    assert abs(result.log_z - log_z) < z * result.log_z_se + 1e-3


def test_auto_without_gradients_fits_by_score_and_never_says_good():
    """On a target with ``differentiable=False`` auto fits the full-rank Gaussian by Adam with
    the score-function estimator (Pathfinder, natural gradient, the mode search and flows all
    need gradients). Without a mode search k-hat cannot see a mode q misses: on two equal
    modes 12 apart q sits on one, log Z is log 2 low, and the verdict must not read "good"."""
    import jax.numpy as jnp

    def two_modes(z):
        return (jnp.logaddexp(-0.5 * jnp.sum((z - 6.0) ** 2), -0.5 * jnp.sum((z + 6.0) ** 2))
                - math.log(2.0) - math.log(2.0 * math.pi))

    res = vifit.fit(vifit.Target(two_modes, dim=2, differentiable=False), "auto",
                    progress=False, seed=0)
    assert res.family.name == "fullrank" and res.estimator == "score"
    stages = {row["stage"]: row["decision"] for row in res.info["auto"]["decisions"]}
    assert stages["pathfinder"] == "not run: log p has no gradients"
    assert "modes" not in res.info
    # q found one mode (exact there): log Z is log 2 low, well outside its standard error
    assert abs(res.log_z + math.log(2.0)) < 4 * res.log_z_se + 0.01
    assert res.verdict.label == "usable with care"
    assert "No mode search ran (log p has no gradients" in res.verdict.text


def test_auto_fits_polynomial_tails_with_the_heavy_tailed_family():
    """A product of four Student-t(2) coordinates, log Z known. Every q on a Gaussian base has
    unbounded weights here (k-hat > 0.5), the flow gains nothing, and the tail check finds p's
    mass where q has almost none: auto must then fit the heavy-tailed family and keep it. Its
    KL(q || p) = log Z - ELBO must be a tenth of the Gaussian's or less (measured, seeds 0-3:
    0.004-0.011 nats against 0.45), and its log Z within z_bound(1e-3) standard errors."""
    import jax.numpy as jnp
    from scipy.special import gammaln

    nu, d = 2.0, 4
    log_z = d * (gammaln(nu / 2) + 0.5 * math.log(nu * math.pi) - gammaln((nu + 1) / 2))
    target = vifit.Target(lambda z: jnp.sum(-(nu + 1) / 2 * jnp.log1p(z**2 / nu)), dim=d)
    result = vifit.fit(target, "auto", seed=0, progress=False)
    rows = {row["stage"]: row for row in result.info["auto"]["decisions"]}
    assert rows["fullrank"]["khat"] > 0.5
    assert result.info["auto"]["chosen"] == "heavytail" and result.family.name == "heavytail"
    assert "tails are too light" in rows["heavytail"]["why"]
    z = z_bound(1e-3)
    assert result.elbo < log_z + z * result.elbo_se  # a lower bound
    assert log_z - result.elbo < (log_z - rows["fullrank"]["elbo"]) / 10
    assert abs(result.log_z - log_z) < z * result.log_z_se


def test_auto_in_one_dimension_fits_a_mixture_where_the_gaussian_misses():
    """z = log of a Gamma(1, 1) variable: log p = z - exp(z), log Z = 0, a long left tail the
    Gaussian misses (k-hat 2.7-2.8, KL 0.07-0.08 nats, seeds 0-1). auto used to try a coupling
    flow here and crash (a flow needs d >= 2); it must fit the 1-D mixture and keep it, with
    KL(q || p) a third of the Gaussian's or less (measured: 0.003 and 0.009) and the ELBO a
    lower bound, and any "good" must be right to 0.1 nats."""
    import jax.numpy as jnp

    target = vifit.Target(lambda z: jnp.sum(z - jnp.exp(z)), dim=1)
    result = vifit.fit(target, "auto", seed=0, progress=False)
    rows = {row["stage"]: row for row in result.info["auto"]["decisions"]}
    assert rows["fullrank"]["khat"] > 0.5 and "mixture" in rows["fullrank"]["decision"]
    assert result.info["auto"]["chosen"] == "mixture" and result.family.name == "mixture"
    assert result.elbo < z_bound(1e-3) * result.elbo_se
    assert -result.elbo < -rows["fullrank"]["elbo"] / 3
    if result.verdict.label == "good":
        assert abs(result.log_z) < 0.1


def narrow_inside_broad():
    """0.5 N(0, 5^2 I) + 0.5 N((6, 0), 0.05^2 I) in d = 2 (log Z = 0): the narrow half lies
    1.2 broad sds from the broad half's centre, in any broad q's typical region, where 4,000
    draws of q land about 0.1 times."""
    import jax.numpy as jnp

    def log_density(z):
        broad = math.log(0.5) - 0.5 * jnp.sum(z ** 2) / 25.0 - math.log(2 * math.pi * 25.0)
        narrow = (math.log(0.5) - 0.5 * jnp.sum((z - jnp.array([6.0, 0.0])) ** 2) / 0.0025
                  - math.log(2 * math.pi * 0.0025))
        return jnp.logaddexp(broad, narrow)

    return vifit.Target(log_density, dim=2)


def test_a_mode_inside_q_that_q_never_draws_from_is_missed_mass():
    """A named family's q covers the narrow mode's location, not its mass: before, the mode
    counted as covered and a flow read "usable with care" (k-hat 0.59) with log Z log 2 low."""
    result = vifit.fit(narrow_inside_broad(), "fullrank", seed=0, progress=False)
    modes = result.info["modes"]
    assert modes["found"] >= 1 and modes["missed_mass_fraction"] > 0.3
    assert result.verdict.label == "not reliable"


def test_auto_joins_the_gaussian_and_the_mode_its_draws_miss():
    result = vifit.fit(narrow_inside_broad(), "auto", seed=0, progress=False)
    assert result.info["auto"]["chosen"] == "mixture"
    assert result.elbo < z_bound(1e-3) * result.elbo_se
    assert abs(result.log_z) < max(0.05, z_bound(1e-3) * result.log_z_se)
    assert result.info["modes"]["missed_mass_fraction"] < 0.01


def test_a_mixture_that_cannot_start_leaves_the_gaussian_and_its_verdict(monkeypatch):
    """A mode whose Laplace Gaussian puts every first draw where log p is not finite (a flat
    direction read as a mode once did) made the mixture stage raise and auto with it. Now the
    stage says so and auto goes on; the mode the Gaussian misses still caps the verdict."""
    import vifit.auto
    from vifit.errors import TargetError

    def cannot_start(*args, **kwargs):
        raise TargetError("log_density is not finite at any of 16 draws")

    monkeypatch.setattr(vifit.auto, "_fit_mixture", cannot_start)
    result = vifit.fit(narrow_inside_broad(), "auto", seed=0, progress=False)
    rows = {row["stage"]: row for row in result.info["auto"]["decisions"]}
    assert "could not start" in rows["mixture"]["why"]
    assert result.info["auto"]["chosen"] != "mixture"
    assert result.verdict.label == "not reliable"


def test_no_mixture_for_a_mode_without_mass():
    """(1 - 1e-9) N(0, I) + 1e-9 N((16, 0), I): the search finds both modes (a barrier of 22
    nats between them), but a mixture could raise the ELBO by 1e-9 nats at most; auto keeps
    the Gaussian without fitting one (on posteriordb's hmm_drive_0 a second mode of e^-60 of
    the mass cost an 8 s mixture stage)."""
    import jax.numpy as jnp

    def log_density(z):
        return jnp.logaddexp(math.log1p(-1e-9) - 0.5 * jnp.sum(z**2),
                             math.log(1e-9) - 0.5 * jnp.sum((z - jnp.array([16.0, 0.0])) ** 2))

    result = vifit.fit(vifit.Target(log_density, dim=2), "auto", seed=0, progress=False)
    rows = {row["stage"]: row for row in result.info["auto"]["decisions"]}
    assert result.info["modes"]["found"] == 2
    assert "could raise the ELBO by about that many nats" in rows["mixture"]["why"]
    assert result.info["auto"]["chosen"] == "fullrank"
    assert abs(result.log_z - math.log(2 * math.pi)) < max(0.01, z_bound(1e-3) * result.log_z_se)


def test_a_gaussian_on_a_mode_without_mass_is_refitted_at_the_heaviest_mode():
    """The mirror image: 1e-9 N(0, I) + (1 - 1e-9) N((16, 0), 0.5^2 I), fitted from the
    default start at 0, converges on the light mode; the search finds the heavy one. The
    rule above set a mixture aside because the heaviest mode carried all the mass, though q
    missed it: auto kept the Gaussian on the light mode, log Z 20.7 nats low ("not reliable";
    on posteriordb's low_dim_gauss_mix it ended 575 sds off). Now the Gaussian is refitted at
    the heaviest mode and kept by its ELBO."""
    import jax.numpy as jnp

    log_z = math.log(2 * math.pi * 0.25)

    def log_density(z):
        return jnp.logaddexp(math.log(1e-9) - 0.5 * jnp.sum(z**2) + log_z - math.log(2 * math.pi),
                             math.log1p(-1e-9) - 0.5 * jnp.sum((z - jnp.array([16.0, 0.0])) ** 2)
                             / 0.25)

    result = vifit.fit(vifit.Target(log_density, dim=2), "auto", seed=0, progress=False)
    rows = {row["stage"]: row for row in result.info["auto"]["decisions"]}
    assert rows["fullrank (at the heaviest mode)"]["decision"].startswith("keep the Gaussian")
    assert result.info["auto"]["chosen"] == "fullrank"
    assert abs(result.mean()[0] - 16.0) < 0.1
    assert abs(result.log_z - log_z) < max(0.01, z_bound(1e-3) * result.log_z_se)
    assert result.info["modes"]["found"] == 2 and result.verdict.label != "not reliable"


def spike_on_slab(d: int = 3):
    """0.5 N(0, I) + 0.5 N(0, 0.05^2 I) (log Z = 0): one mode, two scales. A Gaussian on either
    part is a local optimum of the ELBO at log(1/2); so are the flow and the heavy-tailed
    family started from it."""
    import jax.numpy as jnp

    def log_density(z):
        slab = -0.5 * jnp.sum(z**2) - 0.5 * d * math.log(2 * math.pi)
        spike = (-0.5 * jnp.sum(z**2) / 0.0025 - 0.5 * d * math.log(2 * math.pi * 0.0025))
        return math.log(0.5) + jnp.logaddexp(slab, spike)

    return vifit.Target(log_density, dim=d)


def test_auto_gives_the_mass_outside_q_a_component_of_its_own():
    """The tail check finds about half of p's mass where the Gaussian puts 0.1%; no mode
    search sees it (one mode). Before, auto kept the Gaussian: "not reliable", log Z 0.69 nats
    low. A mixture of q and a component started where the check's draws found that mass fits
    both parts."""
    result = vifit.fit(spike_on_slab(), "auto", seed=0, progress=False)
    rows = {row["stage"]: row for row in result.info["auto"]["decisions"]}
    assert rows["mixture (outside q)"]["decision"].startswith("keep the mixture")
    assert result.info["auto"]["chosen"] == "mixture"
    assert result.elbo < z_bound(1e-3) * result.elbo_se
    assert abs(result.log_z) < z_bound(1e-3) * result.log_z_se
    assert result.info["tails"]["flag"] == "ok"


def test_a_mixture_of_points_along_one_ridge_gets_a_flow_beside_it():
    """A banana curved enough (x ~ N(0, 1), y | x ~ N(2 (x^2 - 1), 0.1^2), log Z = 0) that the
    search's climbs stop at points along its ridge, each of which looks like a separate mode
    (a straight path between two leaves the ridge). Before, auto kept the mixture of those
    "modes" (k-hat 0.50, log Z 0.62 nats low, "not reliable") and never tried a flow; now a
    mixture whose k-hat is not good has the flow fitted beside it, which bends with the ridge."""
    def log_density(z):
        return (-0.5 * z[0] ** 2 - 0.5 * ((z[1] - 2.0 * (z[0] ** 2 - 1.0)) / 0.1) ** 2
                - math.log(2 * math.pi * 0.1))

    result = vifit.fit(vifit.Target(log_density, dim=2), "auto", seed=0, progress=False)
    stages = [row["stage"] for row in result.info["auto"]["decisions"]]
    rows = {row["stage"]: row for row in result.info["auto"]["decisions"]}
    if "mixture" not in rows or rows["mixture"]["khat"] < 0.5:
        pytest.skip("the search found the banana's one mode: no mixture to try a flow beside")
    assert stages.index("realnvp") > stages.index("mixture")
    assert result.info["auto"]["chosen"] == "realnvp"
    assert result.elbo > rows["mixture"]["elbo"] + z_bound(1e-3) * math.hypot(
        result.elbo_se, rows["mixture"]["elbo_se"])
    # The flow is no match for the arms (its sd of y about half the exact 2.83): a k-hat
    # above 0.7 must not be read as "usable with care" because the tail check's widened
    # draws, blind to arms 0.1 wide, find no mass beyond q (the flow's KL is 0.1-0.2 nats).
    assert "the tail check's draws" not in result.verdict.text
    if result.khat > 0.7:
        assert result.verdict.label == "not reliable"


def test_auto_fits_a_300_dimensional_gaussian_by_natural_gradient(x64):
    """Above d = 200 auto used to ask Pathfinder for a start and fit the Gaussian by Adam: on
    this target that took 192 s and stopped 38 nats short ("not reliable"). Natural gradient
    applies wherever its exact Hessians fit the budget (``NATGRAD_FLOPS``), as here, and is
    exact on a Gaussian target: log Z within z_bound(1e-3) standard errors (plus rounding)."""
    import jax.numpy as jnp
    import numpy as np

    from vifit.auto import _natgrad_applies

    d = 300
    rng = np.random.default_rng(0)
    rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
    cov = (rot * np.logspace(-1.5, 1.5, d)) @ rot.T
    mean = rng.normal(size=d)
    log_density, log_z = gaussian_log_density(mean, cov, offset=7.0)
    target = vifit.Target(log_density, dim=d)
    assert _natgrad_applies(target)
    result = vifit.fit(target, "auto", seed=0, progress=False)
    rows = [row["stage"] for row in result.info["auto"]["decisions"]]
    assert result.family.name == "fullrank" and result.optimizer == "natgrad"
    assert "pathfinder" in rows and result.info["auto"]["decisions"][0]["decision"].startswith(
        "not run")
    assert abs(result.log_z - log_z) < z_bound(1e-3) * result.log_z_se + 1e-6 * abs(log_z)
    assert not _natgrad_applies(vifit.Target(lambda z: -0.5 * jnp.sum(
        (jnp.outer(z, z) @ jnp.ones((1000, 1000)))**2), dim=1000))  # 1e15 flops: Pathfinder


def test_auto_fits_a_multivariate_t_with_the_radial_heavy_tailed_form():
    """A multivariate t_5 in d = 10 (log Z known): one radial tail, which independent heavy
    coordinates do not have. The Gaussian's k-hat is below 0.5 but the tail check finds ~9% of
    p's mass in q's far tail; the axes form then gains little and still fails the check, and
    the radial form must be tried and kept. Its KL(q || p) must be a tenth of the Gaussian's
    or less (measured, seed 0: 0.016 against 0.237), and log Z within z_bound(1e-3) se."""
    import jax.numpy as jnp
    import numpy as np
    from scipy.special import gammaln

    nu, d = 5.0, 10
    a = np.random.default_rng(3).normal(size=(d, d))
    cov = a @ a.T / d + np.eye(d)
    prec = jnp.asarray(np.linalg.inv(cov))
    log_z = (gammaln(nu / 2) + d / 2 * math.log(nu * math.pi)
             + 0.5 * np.linalg.slogdet(cov)[1] - gammaln((nu + d) / 2))
    target = vifit.Target(lambda z: -(nu + d) / 2 * jnp.log1p(z @ prec @ z / nu), dim=d)
    result = vifit.fit(target, "auto", seed=0, progress=False)
    rows = {row["stage"]: row for row in result.info["auto"]["decisions"]}
    assert result.info["auto"]["chosen"] == "heavytail:radial"
    assert result.family.name == "heavytail" and result.family.tails == "radial"
    z = z_bound(1e-3)
    assert result.elbo < log_z + z * result.elbo_se
    assert log_z - result.elbo < (log_z - rows["fullrank"]["elbo"]) / 10
    assert abs(result.log_z - log_z) < z * result.log_z_se


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_float32_gaussian_with_sds_from_001_to_100_is_fitted():
    """A rotated Gaussian (d = 10) with sds log-spaced from 0.01 to 100: natural gradient
    from the default start came within 0.59 nats of log Z and then went non-finite (a
    precision with condition 1e8 in float32); auto then started Adam from Pathfinder's fit
    (17 nats short), ended 9.5 nats short, and the flow after it reported log Z 1.36 nats low
    ("not reliable", sds 85% small). Adam from natgrad's last finite state ends 0.53 short,
    the flow after it within 0.01 nats of log Z. Where natgrad converges (other JAX builds)
    the last assertion holds all the more."""
    import jax
    import jax.numpy as jnp
    import jax.scipy.linalg
    import numpy as np

    d = 10
    rng = np.random.default_rng(1)
    rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
    sds = np.logspace(-2, 2, d)
    chol = jnp.asarray(np.linalg.cholesky(rot @ np.diag(sds**2) @ rot.T), jnp.float32)
    mu = jnp.asarray(rng.normal(size=d), jnp.float32)

    def log_density(z):  # through the Cholesky factor (condition 1e4, not the precision's 1e8)
        r = jax.scipy.linalg.solve_triangular(chol, z - mu, lower=True)
        return -0.5 * r @ r

    log_z = float(np.sum(np.log(np.diag(np.asarray(chol, np.float64))))
                  + 0.5 * d * math.log(2 * math.pi))
    target = vifit.Target(jax.jit(log_density), dim=d)
    result = vifit.fit(target, "auto", seed=0, progress=False)
    rows = result.info["auto"]["decisions"]
    first = rows[0]
    if "stopped non-finite" in first["why"]:
        assert "natural gradient's last finite state" in first["decision"], first
    assert abs(result.log_z - log_z) < 0.1 + 4 * result.log_z_se, (result.log_z, rows)
    # its climbs end where float32 reads the Hessian as singular: no "found 0 modes, all
    # covered" (which read as if the search had vouched for something)
    assert "found 0 modes" not in result.verdict.text


def test_a_ctrl_c_in_the_heavy_tailed_stage_ends_auto_at_once(monkeypatch):
    """The heavy-tailed family's stage stopped by the user: auto reports the stage before it
    and marks the result interrupted (its row's reason names the tails, so the mark came only
    from rows whose reason was the bare "interrupted"; `vifit fit` then exited 0), and runs no
    stage after it (the component outside q was still fitted, seconds after the Ctrl-C)."""
    from dataclasses import replace

    import jax.numpy as jnp

    import vifit.auto
    import vifit.engine

    original = vifit.engine.fit_one

    def fit_one(target, family, **settings):
        if family.name != "heavytail":
            return original(target, family, **settings)
        return replace(original(target, family, **{**settings, "steps": 100}),
                       stop_reason="interrupted")

    def outside(*args, **kwargs):
        raise AssertionError("a stage ran after the user stopped one")

    monkeypatch.setattr(vifit.engine, "fit_one", fit_one)
    monkeypatch.setattr(vifit.auto, "_outside", outside)
    nu = 2.0
    target = vifit.Target(lambda z: jnp.sum(-(nu + 1) / 2 * jnp.log1p(z**2 / nu)), dim=4)
    result = vifit.fit(target, "auto", seed=0, progress=False)
    last = result.info["auto"]["decisions"][-1]
    assert last["stage"] == "heavytail" and last["interrupted"], last
    assert result.info["auto"]["interrupted"] and result.family.name != "heavytail"
