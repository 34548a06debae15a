"""Annealed importance sampling / SMC: its pieces against exact answers, and log Z within
0.1 nats on the funnel and both mixtures, from q's shaped like the ones KL fits give."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import vifit
from evidence_qs import CASES, FAMILY, fullrank_params
from vifit.errors import ConfigError
from vifit.evidence.ais import AISConfig, _log_cess, _next_delta, _weighted_moments, mixture_base


def test_mixture_base_density_and_draws(x64):
    means = [np.array([0.0, 1.0]), np.array([3.0, -1.0])]
    covs = [np.array([[1.0, 0.3], [0.3, 0.5]]), np.array([[2.0, -0.4], [-0.4, 1.0]])]
    base = mixture_base([0.3, 0.7], means, covs, whiten=1)
    u = jax.random.normal(jax.random.key(0), (50, 2))
    z = np.asarray(base.to_z(u))
    exact = np.logaddexp(np.log(0.3) + stats.multivariate_normal(means[0], covs[0]).logpdf(z),
                         np.log(0.7) + stats.multivariate_normal(means[1], covs[1]).logpdf(z))
    np.testing.assert_allclose(np.asarray(jax.vmap(base.log_prob_u)(u)), exact, rtol=1e-10)
    # Draws: mean 0.3 m0 + 0.7 m1, to Monte Carlo error (sd < 2, n = 40000: se < 0.01).
    draws = np.asarray(base.to_z(base.sample_u(jax.random.key(1), (40_000,))))
    np.testing.assert_allclose(draws.mean(0), 0.3 * means[0] + 0.7 * means[1], atol=0.05)


def test_the_next_temperature_keeps_the_conditional_ess(x64):
    rng = np.random.default_rng(0)
    log_w, ell = jnp.asarray(rng.normal(size=500)), jnp.asarray(rng.normal(0, 30, size=500))
    delta = _next_delta(log_w, ell, jnp.asarray(1.0), np.log(0.99))
    assert 0 < float(delta) < 1
    assert np.isclose(float(_log_cess(log_w, ell, delta)), np.log(0.99), atol=1e-6)
    # Room for the whole step when the weights barely change.
    assert float(_next_delta(log_w, 1e-6 * ell, jnp.asarray(0.3), np.log(0.99))) == 0.3


def test_weighted_moments(x64):
    z = jnp.asarray([[0.0, 0.0], [2.0, 4.0]])
    mean, cov = _weighted_moments(z, jnp.log(jnp.asarray([0.25, 0.75])))
    np.testing.assert_allclose(np.asarray(mean), [1.5, 3.0])
    np.testing.assert_allclose(np.asarray(cov), 0.1875 * np.array([[4.0, 8.0], [8.0, 16.0]]),
                               rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(kernel="nuts"), "unknown AIS kernel"), (dict(cess=1.0), "cess"),
    (dict(particles=100, replicates=32), "multiple of replicates"), (dict(widen=0.5), "widen"),
])
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        AISConfig(**kwargs).checked()


def fake_fit(target, mean, cov):
    """What vifit.evidence reads from a FitResult: the target, the family and its params."""
    return types.SimpleNamespace(target=target, family=FAMILY,
                                 params=fullrank_params(mean, cov))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["funnel_10d", "mixture_2d", "mixture_10d"])
def test_ais_is_within_a_tenth_of_a_nat(name):
    # The criterion. With the default AIS settings and these q's, repeated runs gave
    # errors of -0.04 +- 0.02 (funnel: a bias, from the neck the moves barely enter) and
    # 0.01 +- 0.02 (mixtures), so 0.1 is at least 2.5 sds away (a false failure rate of
    # about 1% for the funnel).
    target, mean, cov, _ = CASES[name]()
    ev = vifit.evidence(target, fake_fit(target, mean, cov), seed=1)
    truth = target.exact["log_z"]
    # AIS, or importance sampling from q joined by the mode that climbs from AIS's particles
    # reach (recommended where it is higher: on mixture_10d, with the classic threefry
    # streams, AIS's weight sat in 3 of 32 replicates, -0.40 nats, and the joined estimate
    # was +0.0003).
    assert ev.recommended in ("ais", "modes")
    assert abs(ev.log_z - truth) < 0.1, ev.table()
    if name.startswith("mixture"):
        # k-hat cannot see the missing mode; AIS or the climbs from its particles flag it.
        assert ev.estimates["psis"].details["khat"] < 0.5
        assert ev.verdict.label == "usable with care"
        assert ("q misses part of the posterior" in ev.verdict.text
                or "mode(s) it misses" in ev.verdict.text), ev.verdict.text
    else:
        assert ev.estimates["psis"].details["khat"] > 0.7  # plain IS flagged unreliable


def test_ais_repeats_from_its_own_particles_until_it_settles():
    # A cheap AIS (one move of two leapfrog steps, cess 0.9) from a q 10 times too narrow and
    # 3 sds off p, a rotated Gaussian with sds 0.1 to 10 (d = 10): its exploration is 12-14
    # nats low and its first final run 2.3-3.9 nats low with standard errors of 0.3-0.6, all
    # replicates short together. Refitting the base to its own particles and running again
    # either settles within its errors of log Z or says that it has not settled.
    from vifit.evidence.ais import moved, run_ais

    d = 10
    rng = np.random.default_rng(0)
    rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
    sds = np.logspace(-1, 1, d)
    prec = jnp.asarray(rot @ np.diag(sds**-2) @ rot.T, jnp.float32)
    mu = jnp.asarray(3.0 * rng.normal(size=d), jnp.float32)
    log_z = 0.5 * d * np.log(2 * np.pi) + np.log(sds).sum()

    def log_p(z):
        return -0.5 * (z - mu) @ prec @ (z - mu)

    config = AISConfig(particles=512, replicates=16, moves=1, integration_steps=2, cess=0.9)
    start = (jnp.zeros(d), 0.01 * jnp.eye(d))
    once = run_ais(log_p, *start, jax.random.key(0), config._replace(rebase=0))
    assert len(once.history) == 2 and not once.settled  # the exploration was far below
    for seed in range(2):
        r = run_ais(log_p, *start, jax.random.key(seed), config)
        assert 2 <= len(r.history) <= 2 + config.rebase and r.log_z == r.history[-1][0]
        assert r.settled == (not moved(*r.history[-2:]))
        if r.settled:
            assert abs(r.log_z - log_z) < 4 * r.se, r.history
        else:
            assert len(r.history) == 2 + config.rebase


def test_a_covariance_that_rounding_left_singular_still_starts_ais():
    # A float32 q whose variances span 1e8 has a covariance that rounding leaves singular or
    # indefinite; float32 Cholesky then fails and vifit.evidence raised "not positive
    # definite" on a valid fit. The least ridge that factors it is below float32's resolution.
    from vifit.evidence.ais import _cholesky

    cov = jnp.asarray([[1.0, 1.0], [1.0, 1.0]], jnp.float32)
    chol = _cholesky(cov)
    assert chol.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(chol)))
    np.testing.assert_allclose(np.asarray(chol @ chol.T), np.asarray(cov), atol=1e-6)
    indefinite = np.array([[1.0, 1.0], [1.0, 0.5]])
    assert not np.all(np.isfinite(np.asarray(_cholesky(jnp.asarray(indefinite)))))
    with pytest.raises(ConfigError, match="not positive definite"):
        mixture_base([1.0], [jnp.zeros(2)], [jnp.asarray(indefinite, jnp.float32)])
