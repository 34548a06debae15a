"""Deterministic ADVI (L-BFGS on a fixed-draw ELBO) against its closed-form optimum.

For a Gaussian target N(mu, Sigma = K K^T) and q = N(m, L L^T) with draws z_j = m + L eps_j,
the fixed-draw objective is, up to a constant,

    -1/2 (m - mu + L ebar)^T P (m - mu + L ebar) - 1/2 tr(L^T P L C) + log|L|,

with ebar the mean of the eps_j and C their (divisor-M) covariance. Writing L = K B, it is
maximized at m* = mu - L* ebar and B* = U^-1 with C = U U^T (Cholesky), i.e. L* = K U^-1:
tril(B C - B^-T) = U^T - U^T = 0. So the optimum is known exactly, exists only when C is
invertible (M > d), and differs from (mu, Sigma) by O(1/sqrt(M)) sampling error, which the
sandwich standard error estimates.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vifit
from conftest import gaussian_log_density, z_bound
from test_fit import COV, MEAN, gaussian_kl
from vifit.families.gaussian import _cholesky
from vifit.optim.deterministic import run_fixed_draws
from vifit.optim.runner import RunArgs

M = 12  # fixed draws: more than d = 4, few enough that the sampling error is visible


@pytest.mark.timeout(600)
def test_fixed_draw_optimum_is_the_closed_form_one(x64):
    log_density, _ = gaussian_log_density(MEAN, COV)
    target = vifit.Target(log_density, dim=4)
    fam = vifit.FullRank()
    key = jax.random.key(7)
    args = RunArgs(target, fam, vifit.ELBO(), None, fam.init(key, 4), key, 1000, M, None, 100, 3,
                   1e-3, None, {"gtol": 1e-9})
    loop, info = run_fixed_draws(args)
    assert loop.stop_reason == "converged"
    # the draws it fixed: sample() at the same key with loc 0 and L = I
    eps = np.asarray(fam.sample({"loc": jnp.zeros(4), "chol": jnp.zeros((4, 4))}, key, M))
    ebar = eps.mean(0)
    u = np.linalg.cholesky((eps - ebar).T @ (eps - ebar) / M)
    l_star = np.linalg.cholesky(COV) @ np.linalg.inv(u)
    m_star = MEAN - l_star @ ebar
    # gtol = 1e-9 on the gradient; the objective is strongly concave near the optimum with
    # curvature O(1) here, so parameters are within ~1e-8 of it.
    np.testing.assert_allclose(loop.params["loc"], m_star, atol=1e-7)
    np.testing.assert_allclose(_cholesky(loop.params["chol"]), l_star, atol=1e-7)
    # The fixed-draw answer is off the target by sampling error; the sandwich estimate of that
    # error must cover it (4 coordinates, 1e-3 false-failure rate).
    se = np.asarray(info["lbfgs_fixed"]["mean_se"])
    assert np.all(np.abs(m_star - MEAN) < z_bound(1e-3, 4) * se)
    fixed = info["lbfgs_fixed"]
    assert fixed["fixed_draws"] == M and fixed["fixed_elbo_se"] > 0


@pytest.mark.timeout(600)
def test_lbfgs_fixed_through_fit_reports_fresh_and_fixed_elbos():
    log_density, log_z = gaussian_log_density(MEAN, COV, offset=1.0)
    target = vifit.Target(log_density, dim=4)
    r = vifit.fit(target, "fullrank", optimizer="lbfgs-fixed", draws=64, seed=0, progress=False)
    assert r.stop_reason == "converged" and r.optimizer == "lbfgs-fixed"
    fixed = r.info["lbfgs_fixed"]
    assert fixed["fixed_draws"] == 64 and len(fixed["mean_se"]) == 4
    assert "warning" not in fixed  # a Gaussian target with 64 > d draws: no overfit to flag
    # result.elbo is the fresh-draw ELBO of the fitted q, so log Z - ELBO is its exact KL.
    kl = gaussian_kl(r.mean(), r.covariance(), MEAN, COV)
    assert abs((log_z - r.elbo) - kl) < z_bound(1e-3) * r.elbo_se


@pytest.mark.timeout(600)
def test_too_few_fixed_draws_on_a_banana_are_flagged():
    """With 30 draws a Gaussian q can line its draws up along the banana's ridge: the fixed-draw
    ELBO then far exceeds the fresh-draw one, and the result says so."""
    from vifit.examples.shapes import banana

    gaps, ses = [], []
    for seed in range(3):  # how much q fits its 30 draws varies with them: pooled over three
        r = vifit.fit(banana(), "fullrank", optimizer="lbfgs-fixed", draws=30, seed=seed,
                      progress=False)
        fixed = r.info["lbfgs_fixed"]
        if seed == 0:
            assert "fitted to its 30 draws" in fixed["warning"]
        gaps.append(fixed["fixed_elbo"] - r.elbo)
        ses.append(np.hypot(fixed["fixed_elbo_se"], r.elbo_se))
    assert np.mean(gaps) > z_bound(1e-3) * np.sqrt(np.sum(np.square(ses))) / len(gaps)


def test_full_rank_needs_more_fixed_draws_than_dimensions():
    """Below M = d the fixed-draw objective is unbounded for a full-rank q: refused, and the
    default M is 10 d (radon, d = 34, went to a fresh ELBO of -2e36 with M = 30)."""
    log_density, _ = gaussian_log_density(MEAN, COV)
    target = vifit.Target(log_density, dim=4)
    with pytest.raises(vifit.ConfigError, match="more fixed draws than dimensions"):
        vifit.fit(target, "fullrank", optimizer="lbfgs-fixed", draws=4, progress=False)
    wide = vifit.Target(lambda z: -0.5 * jnp.sum(z**2), dim=5)
    r = vifit.fit(wide, "fullrank", optimizer="lbfgs-fixed", seed=0, progress=False)
    assert r.info["lbfgs_fixed"]["fixed_draws"] == 50 and r.draws == 50
    r = vifit.fit(wide, "meanfield", optimizer="lbfgs-fixed", seed=0, progress=False)
    assert r.info["lbfgs_fixed"]["fixed_draws"] == 30
