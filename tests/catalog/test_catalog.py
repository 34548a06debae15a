"""The catalog: every model builds, is finite where it starts, and has a reference answer;
exact references are the exact answers; a full-rank fit agrees with a NUTS reference."""

import jax
import numpy as np
import pytest
from scipy import stats

import vifit
from conftest import z_bound
from vifit import catalog
from vifit.catalog.reference import exact_reference

ISSUE_MODELS = {"eight_schools", "eight_schools_centered", "logistic_regression", "radon",
                "stochastic_volatility", "horseshoe", "gp_poisson", "funnel", "banana",
                "gaussian_mixture", "gaussian_100d"}


@pytest.fixture(scope="module")
def targets():
    return {name: catalog.get_model(name) for name in catalog.catalog_names()}


def test_the_catalog_has_the_models_users_know():
    assert ISSUE_MODELS <= set(catalog.catalog_names())
    assert {"linear_regression", "gaussian"} <= set(catalog.catalog_names())  # the examples


def test_every_model_is_finite_at_its_start_and_has_a_reference(targets):
    for name, target in targets.items():
        if target.discrete:  # integer states: a value, no gradient
            assert np.isfinite(target.log_density(target.init)), name
        else:
            value, grad = jax.jit(jax.value_and_grad(target.log_density))(target.init)
            assert np.isfinite(value) and np.all(np.isfinite(grad)), name
    for name in catalog.scored_names():
        target = targets[name]
        ref = catalog.reference(name)
        names, _ = target.constrained_names()
        assert set(ref.names) == set(names), name  # every constrained scalar is scored
        assert np.all(np.isfinite(ref.mean)) and np.all(ref.sd > 0), name
        if ref.kind == "nuts":
            assert ref.info["max_rhat"] < 1.01, name
            assert min(ref.info["min_ess_bulk"], ref.info["min_ess_tail"]) >= 1000, name
            assert np.all(ref.mean_se > 0) and np.all(ref.mean_se < 0.1 * ref.sd), name
        else:
            assert ref.log_z is not None, name


def test_exact_references_are_the_exact_answers(targets):
    exact = [n for n in catalog.scored_names() if "log_z" in targets[n].exact]
    assert {"funnel", "banana", "gaussian_mixture", "gaussian_100d", "linear_regression",
            "gaussian"} <= set(exact)
    for name in exact:
        stored, expected = catalog.reference(name), exact_reference(targets[name])
        assert stored.kind == "exact" and stored.names == expected.names, name
        np.testing.assert_allclose(stored.mean, expected.mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(stored.sd, expected.sd, rtol=1e-12)
        assert stored.log_z == pytest.approx(expected.log_z, rel=1e-12)


def _generative_draws(name, rng, n):
    """Exact draws and their normalized log density, written from each model's definition
    with NumPy and SciPy (not from the catalog's code)."""
    if name == "funnel":
        v = rng.normal(0.0, 3.0, n)
        x = rng.normal(size=(n, 9)) * np.exp(v / 2)[:, None]
        logp = stats.norm.logpdf(v, 0, 3) + stats.norm.logpdf(x, 0, np.exp(v / 2)[:, None]).sum(1)
        return np.column_stack([v, x]), logp
    if name == "banana":
        x1 = rng.normal(0.0, 10.0, n)
        x2 = rng.normal(0.03 * (x1**2 - 100.0), 1.0)
        logp = stats.norm.logpdf(x1, 0, 10) + stats.norm.logpdf(x2, 0.03 * (x1**2 - 100), 1)
        return np.column_stack([x1, x2]), logp
    from vifit.catalog import gaussian_mixture as gm

    k = rng.choice(3, size=n, p=gm.WEIGHTS)
    z = np.stack([rng.multivariate_normal(gm.MEANS[j], gm.COVS[j], n) for j in range(3)], 1)[
        np.arange(n), k]
    dens = sum(w * stats.multivariate_normal(m, c).pdf(z)
               for w, m, c in zip(gm.WEIGHTS, gm.MEANS, gm.COVS))
    return z, np.log(dens)


@pytest.mark.parametrize("name", ["funnel", "banana", "gaussian_mixture"])
def test_closed_forms_match_the_generative_definition(name, targets, x64):
    target = targets[name]
    z, logp = _generative_draws(name, np.random.default_rng(0), 100_000)
    # log Z = offset: the catalog's density minus the normalized one is that constant.
    diff = np.asarray(jax.vmap(target.log_density)(z[:1000])) - logp[:1000]
    np.testing.assert_allclose(diff, target.exact["log_z"], atol=1e-6)
    # Moments: 100,000 exact draws; standard errors from the draws themselves
    # (for the funnel's x the sd of x^2 is heavy-tailed, so only v and the means are checked).
    mean, cov = target.exact["mean"], target.exact["cov"]
    k = z_bound(1e-3, 2 * z.shape[1])
    se = z.std(0) / np.sqrt(z.shape[0])
    assert np.all(np.abs(z.mean(0) - mean) < k * se)
    cols = [0] if name == "funnel" else list(range(z.shape[1]))
    sq = (z[:, cols] - mean[cols]) ** 2
    assert np.all(np.abs(sq.mean(0) - np.diag(cov)[cols])
                  < k * sq.std(0) / np.sqrt(z.shape[0]))


def test_a_fullrank_fit_lands_within_the_nuts_reference():
    """Logistic regression on real data against its NUTS reference. The fitted q is corrected
    by Pareto-smoothed importance weights, which removes the Gaussian approximation's bias, so
    what is left is Monte Carlo error on both sides: the reference's MCSE and the
    self-normalized IS error of the fit, sqrt(sum_i w_i^2 (x_i - m)^2)."""
    target = catalog.get_model("logistic_regression")
    ref = catalog.reference("logistic_regression")
    result = vifit.fit(target, "fullrank", seed=0, progress=False)
    names, flat = target.constrained_names()
    z = result.sample_unconstrained(jax.random.key(5), 8000)
    logw = np.asarray(target.batch_log_density(z) - result.family.batch_log_prob(result.params, z),
                      dtype=np.float64)
    from vifit.evidence.psis import psis

    lw, khat = psis(logw)
    assert khat < 0.7  # otherwise the IS error estimate below is not trustworthy
    w = np.exp(lw - np.max(lw))
    w /= w.sum()
    x = np.asarray(jax.vmap(flat)(z), dtype=np.float64)
    m = w @ x
    se = np.sqrt(w**2 @ (x - m) ** 2)
    order = [names.index(n) for n in ref.names]
    tol = z_bound(1e-3, len(ref.names)) * np.sqrt(se[order] ** 2 + ref.mean_se**2)
    assert np.all(np.abs(m[order] - ref.mean) < tol), (m[order] - ref.mean) / tol
