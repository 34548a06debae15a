"""FitResult.to_arviz: the groups ArviZ's workflow needs (posterior, sample_stats,
log_likelihood, observed_data), checked by az.loo against NUTS and az.compare on two models."""

from __future__ import annotations

import numpy as np
import pytest

import vifit

az = pytest.importorskip("arviz")
numpyro = pytest.importorskip("numpyro")
dist = pytest.importorskip("numpyro.distributions")

N, SIGMA = 40, 0.5


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 3))
    y = x @ np.array([1.0, -0.5, 0.3]) + SIGMA * rng.normal(size=N)
    return x, y


def regression(x, y):
    """Bayesian linear regression, 3 coefficients, known noise."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 2.0).expand([3]).to_event(1))
    numpyro.sample("y", dist.Normal(x @ beta, SIGMA), obs=y)


def first_column_only(x, y):
    """A clearly worse model of the same data: only the first predictor."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 2.0).expand([1]).to_event(1))
    numpyro.sample("y", dist.Normal(x[:, :1] @ beta, SIGMA), obs=y)


@pytest.fixture(scope="module")
def fits():
    x, y = _data()
    good = vifit.fit(vifit.from_numpyro(regression, x, y), family="fullrank", seed=0,
                     progress=False)
    bad = vifit.fit(vifit.from_numpyro(first_column_only, x, y), family="fullrank", seed=0,
                    progress=False)
    return good, bad


def _groups(idata) -> set[str]:
    """Group names of ArviZ 0.2x's InferenceData or ArviZ 1.x's DataTree."""
    return set(idata.children) if hasattr(idata, "children") else set(idata.groups())


def _elpd(loo) -> tuple[float, float, float]:
    """``(elpd, p, se)`` of az.loo's answer under either ArviZ (0.2x: elpd_loo and p_loo)."""
    if hasattr(loo, "elpd_loo"):
        return float(loo.elpd_loo), float(loo.p_loo), float(loo.se)
    return float(loo.elpd), float(loo.p), float(loo.se)


def _loo_mc_se(log_lik: np.ndarray, draws_worth: float) -> float:
    """Monte Carlo standard error of sum_i log mean_s p(y_i | theta_s) from ``draws_worth``
    effective draws (delta method: Var[log mean] ~ Var_s[p] / (S mean^2), summed over i).
    PSIS-LOO's own error is of the same order; it bounds the noise of either estimate."""
    p = np.exp(log_lik - log_lik.max(axis=0))
    rel_var = p.var(axis=0, ddof=1) / p.mean(axis=0) ** 2
    return float(np.sqrt(rel_var.sum() / draws_worth))


def test_groups(fits):
    good, _ = fits
    idata = good.to_arviz(0, 1000)
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= _groups(idata)
    ss = idata.sample_stats
    assert {"lp", "log_q", "log_weight"} <= set(ss.data_vars)
    assert ss["lp"].shape == (1, 1000)
    np.testing.assert_allclose(ss["log_weight"], ss["lp"] - ss["log_q"], rtol=1e-6, atol=1e-6)
    assert ss.attrs["pareto_k"] == pytest.approx(good.khat)
    assert idata.log_likelihood["y"].shape == (1, 1000, N)
    np.testing.assert_allclose(idata.observed_data["y"], _data()[1], rtol=1e-6)
    assert idata.attrs["weighting"] in ("psis-resampled", "q")
    # lp is the target's log density at the draws' z: check one draw against the model.
    z = good.target.unconstrain({"beta": idata.posterior["beta"].values[0, 0]})
    assert float(ss["lp"][0, 0]) == pytest.approx(float(good.target.log_density(z)), abs=1e-3)


def test_loo_agrees_with_nuts(fits):
    import jax
    from numpyro.infer import MCMC, NUTS

    good, _ = fits
    x, y = _data()
    ours = good.to_arviz(0, 2000)
    mcmc = MCMC(NUTS(regression), num_warmup=400, num_samples=1000, progress_bar=False)
    mcmc.run(jax.random.key(1), x, y)
    nuts = az.from_numpyro(mcmc, log_likelihood=True)
    loo_v, loo_n = az.loo(ours), az.loo(nuts)
    # Tolerance. Both estimates use the same data, so the loo standard error (the spread of
    # elpd_loo over data sets, ~4 nats here) is not the error of their difference: that is
    # Monte Carlo error (both) plus q's departure from p (vifit). We allow 4 Monte Carlo
    # standard errors (delta-method, vifit's distinct resampled draws counted once and NUTS's
    # draws at their bulk ESS), floored at 5% of the loo standard error: a difference that
    # small cannot change a model comparison (az.compare's dse is of the order of the se).
    ll_v = ours.log_likelihood["y"].values.reshape(-1, N)
    ll_n = nuts.log_likelihood["y"].values.reshape(-1, N)
    distinct = len(np.unique(ours.posterior["beta"].values.reshape(-1, 3), axis=0))
    ess_n = float(az.ess(nuts, var_names=["beta"])["beta"].min())
    mc = np.hypot(_loo_mc_se(ll_v, distinct), _loo_mc_se(ll_n, ess_n))
    tol = max(4 * mc, 0.05 * _elpd(loo_n)[2])
    (elpd_v, p_v, se_v), (elpd_n, p_n, se_n) = _elpd(loo_v), _elpd(loo_n)
    assert abs(elpd_v - elpd_n) < tol, (loo_v, loo_n, tol)
    assert abs(p_v - p_n) < max(tol, 0.5)
    assert se_v == pytest.approx(se_n, rel=0.1)


def test_compare_ranks_good_model_first(fits):
    good, bad = fits
    table = az.compare({"regression": good.to_arviz(0, 1000),
                        "first_column_only": bad.to_arviz(0, 1000)})
    assert table.index[0] == "regression"
    worse = table.loc["first_column_only"]
    # Clearly worse, not by noise: more than two standard errors of the difference (ArviZ 0.2x
    # writes elpd_diff as a positive shortfall, ArviZ 1.x as a negative difference).
    assert abs(worse["elpd_diff"]) > 2 * worse["dse"]


def test_data_target_log_likelihood():
    import jax.numpy as jnp

    x, y = _data()

    def log_prior(z):
        return -0.5 * jnp.sum(z**2) / 4.0

    def log_lik(z, batch):
        r = batch["y"] - batch["x"] @ z
        return -0.5 * (r / SIGMA) ** 2 - jnp.log(SIGMA) - 0.5 * jnp.log(2 * jnp.pi)

    target = vifit.DataTarget(log_prior, log_lik, {"x": x, "y": y}, dim=3)
    fit = vifit.fit(target, family="fullrank", seed=0, progress=False)
    idata = fit.to_arviz(0, 500)
    assert idata.log_likelihood["log_lik"].shape == (1, 500, N)
    assert idata.observed_data["y"].shape == (N,)
    assert idata.observed_data["x"].shape == (N, 3)
    assert np.isfinite(_elpd(az.loo(idata))[0])
    assert np.all(np.isfinite(idata.sample_stats["lp"]))


def test_plain_target_has_no_likelihood_groups():
    import jax.numpy as jnp

    target = vifit.Target(lambda z: -0.5 * jnp.sum(z**2), dim=2)
    fit = vifit.fit(target, family="fullrank", seed=0, steps=200, progress=False)
    idata = fit.to_arviz(0, 100)
    assert "log_likelihood" not in _groups(idata)
    assert "sample_stats" in _groups(idata)


def test_pymc_model_loo_matches_the_numpyro_form(fits):
    """The same regression written in PyMC: its to_arviz carries PyMC's pointwise
    log-likelihood, equal to NumPyro's at the same parameters, and az.loo agrees with the
    NumPyro fit's within their Monte Carlo errors."""
    pm = pytest.importorskip("pymc")
    good, _ = fits
    x, y = _data()
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, 2.0, shape=3)
        pm.Normal("y", mu=pm.math.dot(x, beta), sigma=SIGMA, observed=y)
    fit = vifit.fit(vifit.from_pymc(model), family="fullrank", seed=0, progress=False)
    ours, theirs = fit.to_arviz(0, 2000), good.to_arviz(0, 2000)
    assert ours.log_likelihood["y"].shape == (1, 2000, N)
    np.testing.assert_allclose(ours.observed_data["y"], y, rtol=1e-6)
    # Pointwise log-likelihoods at the same beta: the two adapters must agree.
    beta0 = ours.posterior["beta"].values[0, 0]
    want = -0.5 * ((y - x @ beta0) / SIGMA) ** 2 - np.log(SIGMA) - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(ours.log_likelihood["y"].values[0, 0], want, rtol=1e-4,
                               atol=1e-4)
    (elpd_p, _, se_p), (elpd_n, _, _) = _elpd(az.loo(ours)), _elpd(az.loo(theirs))
    ll_p = ours.log_likelihood["y"].values.reshape(-1, N)
    ll_n = theirs.log_likelihood["y"].values.reshape(-1, N)
    distinct = [len(np.unique(t.posterior["beta"].values.reshape(-1, 3), axis=0))
                for t in (ours, theirs)]
    mc = np.hypot(_loo_mc_se(ll_p, distinct[0]), _loo_mc_se(ll_n, distinct[1]))
    assert abs(elpd_p - elpd_n) < max(4 * mc, 0.05 * se_p), (elpd_p, elpd_n, mc)


def test_the_written_draws_file_is_to_arviz_s(fits, tmp_path):
    """write_netcdf (what `vifit fit --out` writes, without importing ArviZ) gives the file
    that to_arviz().to_netcdf() gives: az.from_netcdf reads the same groups, variables, dims,
    values and record attributes, on ArviZ 0.2x and 1.x alike (a data model: posterior,
    sample_stats, log_likelihood and observed_data)."""
    from vifit.arviz_groups import write_netcdf

    fit = fits[0]
    ours, theirs = tmp_path / "ours.nc", tmp_path / "theirs.nc"
    write_netcdf(fit, ours, 3, 200)
    fit.to_arviz(3, 200).to_netcdf(str(theirs))
    a, b = az.from_netcdf(ours), az.from_netcdf(theirs)
    assert _groups(a) == _groups(b)
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= _groups(a)
    for g in _groups(a):
        da, db = a[g], b[g]
        assert sorted(da.data_vars) == sorted(db.data_vars)
        for v in da.data_vars:
            assert da[v].dims == db[v].dims, (g, v)
            np.testing.assert_array_equal(np.asarray(da[v]), np.asarray(db[v]))
    for k in ("pareto_k", "log_weight"):  # the attributes vifit gives a group of its own
        assert np.ravel(a["sample_stats"].attrs[k]).tolist() == \
            np.ravel(b["sample_stats"].attrs[k]).tolist()
    for k in ("inference_library", "family", "weighting"):
        assert a.attrs[k] == b.attrs[k]
    assert np.ravel(a.attrs["pareto_k"])[0] == pytest.approx(np.ravel(b.attrs["pareto_k"])[0])
