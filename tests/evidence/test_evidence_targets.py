"""vifit.evidence on targets from the adapters and on enumerable discrete targets, against
exactly known log Z."""

import numpy as np
import pytest
from scipy import stats

import vifit
from conftest import z_bound

# y_i ~ N(mu_j, 1) for i in group j; mu ~ N(0, 2^2) per group: log Z = log N(y; 0, I + 4 11^T)
# per group, in closed form.
Y = np.array([[0.3, -1.2, 2.1, 0.8], [1.5, 2.5, 0.9, 1.9]])


def _exact_log_z():
    n = Y.shape[1]
    cov = np.eye(n) + 4.0 * np.ones((n, n))
    return sum(stats.multivariate_normal(np.zeros(n), cov).logpdf(y) for y in Y)


def _numpyro_target():
    import numpyro
    import numpyro.distributions as dist

    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 2.0).expand([y.shape[0]]))
        numpyro.sample("y", dist.Normal(mu[:, None], 1.0), obs=y)

    return vifit.from_numpyro(model, Y)


def _pymc_target():
    import pymc as pm

    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 2.0, shape=Y.shape[0])
        pm.Normal("y", mu[:, None], 1.0, observed=Y)
    return vifit.from_pymc(model)


@pytest.mark.parametrize("make", [_numpyro_target, _pymc_target], ids=["numpyro", "pymc"])
def test_evidence_of_adapter_targets_matches_the_exact_log_z(make):
    target = make()
    truth = _exact_log_z()
    fit = vifit.fit(target, "fullrank", seed=0, progress=False)
    ev = vifit.evidence(target, fit, seed=1, draws=4096,
                        ais=vifit.AISConfig(particles=256, replicates=16))
    z = z_bound(1e-3, n_comparisons=5)
    # The posterior is Gaussian, so q can be exact and every estimate is near the truth; the
    # bounds must sit on their side, the point estimates within their errors.
    assert ev.estimates["elbo"].estimate < truth + z * ev.estimates["elbo"].se
    assert ev.estimates["iwae"].estimate < truth + z * ev.estimates["iwae"].se
    assert ev.estimates["cubo"].estimate > truth - z * ev.estimates["cubo"].se
    for name in ("psis", "ais"):
        e = ev.estimates[name]
        assert abs(e.estimate - truth) < z * e.se + 1e-3, (name, e.estimate, truth)
    assert abs(ev.log_z - truth) < z * ev.log_z_se + 1e-3


def _chain(n=12, coupling=0.8, field=0.3):
    """A ferromagnetic Ising chain with a field: correlated spins, so a factorized q is not
    exact; 2^12 states, cheap to enumerate."""
    import jax.numpy as jnp

    def log_prob(x):
        s = 2.0 * x - 1.0
        return coupling * jnp.sum(s[1:] * s[:-1]) + field * jnp.sum(s) + 7.0

    return vifit.DiscreteTarget(log_prob, n_sites=n, n_states=2, name="chain")


def test_evidence_of_a_discrete_target_recommends_the_enumerated_answer():
    target = _chain()
    exact = vifit.enumerate_exact(target)["log_z"]
    fit = vifit.fit(target, seed=0, progress=False)  # bernoulli family, score estimator
    ev = vifit.evidence(target, fit, seed=2, draws=8192)
    assert ev.exact_log_z == pytest.approx(exact)
    assert "ais" not in ev.estimates  # no gradient for HMC moves: skipped
    assert ev.recommended == "enumeration" and ev.verdict.label == "good"
    assert ev.bracket["lower"] <= exact <= ev.bracket["upper"]
    z = z_bound(1e-3, n_comparisons=3)
    assert ev.estimates["elbo"].estimate < exact + z * ev.estimates["elbo"].se
    assert ev.estimates["iwae"].estimate < exact + z * ev.estimates["iwae"].se
    assert ev.estimates["cubo"].estimate > exact - z * ev.estimates["cubo"].se
    # The chain is strongly coupled: the mean-field ELBO is visibly below log Z, and the
    # importance-weighted estimates close most of that gap.
    gap = exact - ev.estimates["elbo"].estimate
    assert gap > 0.05
    assert exact - ev.estimates["psis"].estimate < 0.5 * gap


def test_evidence_of_a_discrete_target_too_large_to_sum_says_ais_was_not_run(monkeypatch):
    import vifit.discrete

    monkeypatch.setattr(vifit.discrete, "ENUMERATE_MAX_STATES", 1 << 8)  # 2^12 states
    target = _chain()
    fit = vifit.fit(target, seed=0, progress=False)
    ev = vifit.evidence(target, fit, seed=2, draws=8192)
    assert "enumeration" not in ev.estimates and ev.exact_log_z is None
    assert any("AIS was not run" in r for r in ev.verdict.reasons)
    assert ev.verdict.label != "good" and ev.bracket["upper"] is None


def test_explicit_ais_on_a_discrete_target_is_refused():
    target = _chain(n=4)
    fit = vifit.fit(target, seed=0, steps=200, progress=False)
    with pytest.raises(vifit.ConfigError, match="gradient"):
        vifit.evidence(target, fit, ais=vifit.AISConfig(particles=64, replicates=4))
