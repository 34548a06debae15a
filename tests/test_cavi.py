"""Coordinate ascent VI: the exact ELBO never decreases, and on the conjugate regression the
answers are the exact posterior's (closed form, float64)."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from conftest import z_bound
from vifit import cavi
from vifit.cavi.gmm import GMMFactors, elbo as gmm_elbo, update_factors
from vifit.examples.linear_regression import data

PRIOR = dict(a0=2.0, b0=3.0)


def regression():
    x, y, _ = data(n=60, d=3, seed=4)
    return np.hstack([np.ones((60, 1)), x]), y


def rounding(trace):
    return 1000 * np.finfo(np.float64).eps * (1 + np.abs(trace[1:]))


def test_meanfield_regression_elbo_rises_to_the_exact_posterior_means(x64):
    x, y = regression()
    res = cavi.fit_linear_regression(x, y, l0=0.5 * np.eye(4), **PRIOR)
    exact = cavi.exact_posterior(x, y, l0=0.5 * np.eye(4), **PRIOR)
    assert res.converged and res.trace.size == 2 * res.iters
    assert np.all(np.diff(res.trace) >= -rounding(res.trace))  # every update
    # Mean-field's fixed point: E[beta] and E[tau] are the exact posterior's ...
    np.testing.assert_allclose(res.params["mean_beta"], exact["mean_beta"], rtol=1e-10)
    np.testing.assert_allclose(res.params["a"] / res.params["b"], exact["a"] / exact["b"],
                               rtol=1e-10)
    # ... and Cov(beta) is (b/a) LN^-1, narrower than the exact Student-t's b/(a-1) LN^-1.
    ln_inv = np.linalg.inv(exact["prec_beta_given_tau"])
    np.testing.assert_allclose(res.params["cov_beta"], exact["b"] / exact["a"] * ln_inv,
                               rtol=1e-8)
    # The ELBO is a lower bound on the exact log evidence, strictly (q is not the posterior).
    assert res.elbo < exact["log_evidence"]


def test_structured_regression_is_the_exact_posterior(x64):
    x, y = regression()
    res = cavi.fit_linear_regression(x, y, factorization="structured", **PRIOR)
    exact = cavi.exact_posterior(x, y, **PRIOR)
    for key in ("mean_beta", "cov_beta", "a", "b"):
        np.testing.assert_allclose(res.params[key], exact[key], rtol=1e-12)
    assert res.elbo == pytest.approx(exact["log_evidence"], rel=1e-12)


def test_exact_posterior_matches_brute_force_evidence(x64):
    """log p(y) of the closed form against integrating tau out numerically of the Gaussian
    marginal y | tau ~ N(X m0, (I + X L0^-1 X^T) / tau)."""
    from scipy import integrate

    x, y = regression()
    exact = cavi.exact_posterior(x, y, **PRIOR)
    cov = np.eye(len(y)) + x @ x.T

    def integrand(tau):
        return np.exp(stats.multivariate_normal(np.zeros(len(y)), cov / tau).logpdf(y)
                      + stats.gamma(PRIOR["a0"], scale=1 / PRIOR["b0"]).logpdf(tau)
                      - exact["log_evidence"])

    total, _ = integrate.quad(integrand, 0, np.inf, limit=200)
    assert np.log(total) == pytest.approx(0.0, abs=1e-7)


def gmm_data():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [4.0, 4.0], [-4.0, 4.0]])
    n = np.array([90, 120, 60])
    x = np.concatenate([rng.normal(c, s, (m, 2)) for c, s, m in zip(centres, [0.6, 0.8, 0.5], n)])
    return x, centres, n / n.sum()


def test_gmm_elbo_never_decreases_and_finds_the_clusters(x64):
    x, centres, weights = gmm_data()
    res = cavi.fit_gmm(x, k=5, seed=1, max_iters=200)
    assert res.converged
    assert np.all(np.diff(res.trace) >= -rounding(res.trace))  # every update
    used = res.params["weights"] > 0.05
    assert used.sum() == 3  # the two spare components emptied out
    found = res.params["means"][used]
    order = [int(np.argmin(np.linalg.norm(found - c, axis=1))) for c in centres]
    # 0.3 is about 3 standard errors of a cluster mean here (sd <= 0.8, n >= 60)
    np.testing.assert_allclose(found[order], centres, atol=0.3)
    np.testing.assert_allclose(res.params["weights"][used][order], weights, atol=0.05)


def test_gmm_elbo_formula_matches_monte_carlo(x64):
    """The closed-form ELBO against E_q[log p(x, Z, pi, mu, Lambda) - log q(...)], sampling
    pi, mu, Lambda from q and summing over Z exactly; agreement within z standard errors."""
    x, _, _ = gmm_data()
    x = x[::6]  # fewer points: a cheaper Monte Carlo
    prior = cavi.default_prior(jnp.asarray(x))
    k, n = 3, x.shape[0]
    rng = np.random.default_rng(2)
    r = rng.dirichlet(np.ones(k), size=n)  # any responsibilities: the formula is general
    # Factors away from their optimum given r: at the optimum log p - log q is constant in
    # (pi, mu, Lambda) (conjugacy), which would test nothing.
    f = update_factors(jnp.asarray(x), jnp.asarray(r), prior)
    f = GMMFactors(f.alpha * 1.3, f.beta * 0.7, f.m + 0.3, f.w * 1.2, f.nu + 1.0)
    closed = float(gmm_elbo(jnp.asarray(x), jnp.asarray(r), f, prior))

    f = GMMFactors(*(np.asarray(v) for v in f))
    m0, w0, nu0, beta0, alpha0 = (np.asarray(prior.m0), np.asarray(prior.w0), prior.nu0,
                                  prior.beta0, prior.alpha0)
    draws = []
    for _ in range(1000):
        pi = rng.dirichlet(f.alpha)
        lp = stats.dirichlet(np.full(k, alpha0)).logpdf(pi) - stats.dirichlet(f.alpha).logpdf(pi)
        for j in range(k):
            lam = stats.wishart(f.nu[j], f.w[j]).rvs(random_state=rng)
            mu = rng.multivariate_normal(f.m[j], np.linalg.inv(f.beta[j] * lam))
            lp += (stats.wishart(nu0, w0).logpdf(lam) - stats.wishart(f.nu[j], f.w[j]).logpdf(lam)
                   + stats.multivariate_normal(m0, np.linalg.inv(beta0 * lam)).logpdf(mu)
                   - stats.multivariate_normal(f.m[j], np.linalg.inv(f.beta[j] * lam)).logpdf(mu)
                   + np.sum(r[:, j] * (np.log(pi[j]) + stats.multivariate_normal(
                       mu, np.linalg.inv(lam)).logpdf(x))))
        draws.append(lp - np.sum(r * np.log(r)))
    draws = np.asarray(draws)
    se = draws.std(ddof=1) / np.sqrt(draws.size)
    assert draws.std() > 1e-3  # the check has teeth
    assert abs(draws.mean() - closed) < z_bound(1e-3) * se


def test_a_decreasing_elbo_is_an_error():
    with pytest.raises(cavi.CAVIError, match="decreased at update 2"):
        cavi.common.check_monotone(np.array([-10.0, -9.0, -9.5]), rtol=1e-12)
