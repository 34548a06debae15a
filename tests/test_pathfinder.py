"""Pathfinder: on a Gaussian target its chosen Gaussian is the target."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vifit
from conftest import gaussian_log_density, z_bound
from test_fit import COV, MEAN, gaussian_kl
from vifit.optim.pathfinder import dense_inverse_hessian, pathfinder, secant_fit_inverse_hessian


@pytest.mark.timeout(300)
def test_chosen_gaussian_on_a_gaussian_target_is_the_target(x64):
    """On N(mu, Sigma) the curvature pairs satisfy y = Sigma^-1 s exactly, so once L-BFGS has
    d independent pairs the secant-fit candidate is exactly N(mu, Sigma), with ELBO exactly
    log Z at every draw. The ELBO choice then returns a Gaussian whose fixed-draw ELBO is at
    least log Z; since each candidate's ELBO estimate has mean log Z - KL, the chosen one's KL
    is at most its estimate's excess, bounded by z sd / sqrt(draws)."""
    log_density, log_z = gaussian_log_density(MEAN, COV, offset=3.0)
    target = vifit.Target(log_density, dim=4, init=jnp.array([5.0, 5.0, -5.0, 0.0]))
    draws = 500
    res = pathfinder(target, seed=0, draws=draws)
    assert res.stop_reason == "converged" and res.best_iter > 0
    assert res.elbo >= log_z - 1e-9  # the exact candidate was there and was not beaten
    kl = gaussian_kl(res.mean, res.cov, MEAN, COV)
    # sd of log w under the chosen q, from fresh draws; Bonferroni over the iterates.
    fam = vifit.FullRank()
    params = fam.from_gaussian(jnp.asarray(res.mean), jnp.asarray(res.cov))
    z = fam.sample(params, jax.random.key(9), 20_000)
    sd = float(np.std(jax.vmap(log_density)(z) - fam.batch_log_prob(params, z)))
    assert kl <= z_bound(1e-3, res.iters) * sd / np.sqrt(draws) + 1e-10


def test_inverse_hessian_estimates_from_exact_pairs(x64):
    """With pairs y = A s: the secant fit is A^-1 once the pairs span R^d; the BFGS recursion
    satisfies the secant equation of its newest pair (and only that one, in general)."""
    rng = np.random.default_rng(0)
    a = np.linalg.inv(COV)
    s = jnp.asarray(rng.normal(size=(6, 4)))
    y = s @ a
    valid = jnp.array([False, True, True, True, True, True])
    np.testing.assert_allclose(secant_fit_inverse_hessian(s, y, valid), COV, atol=1e-10)
    h = dense_inverse_hessian(s, y, valid)
    np.testing.assert_allclose(h @ y[-1], s[-1], atol=1e-10)
    assert np.all(np.linalg.eigvalsh(np.asarray(h)) > 0)


@pytest.mark.timeout(300)
def test_pathfinder_starts_a_fit_and_runs_alone():
    log_density, log_z = gaussian_log_density(MEAN, COV)
    target = vifit.Target(log_density, dim=4)
    alone = vifit.fit(target, "fullrank", optimizer="pathfinder", seed=0, progress=False)
    assert alone.info["pathfinder"]["best_iter"] > 0 and alone.steps == alone.trace.size
    assert alone.elbo <= log_z + z_bound(1e-3) * alone.elbo_se
    started = vifit.fit(target, "meanfield", init="pathfinder", steps=300, seed=0,
                        progress=False)
    assert "pathfinder" in started.info["init"]


@pytest.mark.timeout(300)
def test_pathfinder_finds_a_narrow_posterior_far_from_the_start_in_float32():
    """N(100, (1e-4)^2 I): curvature 1e8, beyond 1 / float32's eps. A curvature test that
    compares s.y with eps |y|^2 (units of z against units of the gradient) rejected every
    pair there, so Pathfinder returned its start (ELBO -1.5e12) and auto's first Gaussian
    failed. The float32 spacing at 100 is 0.076 of p's sd, so log p at a draw is rounded by
    about 0.1 nats: the chosen Gaussian's ELBO is within 1 nat of log Z and its sds within
    20%, where a rejected pair leaves it 1e12 nats off."""
    mu, sd, d = 100.0, 1e-4, 3
    target = vifit.Target(lambda z: -0.5 * jnp.sum(((z - mu) / sd) ** 2), dim=d)
    log_z = d * np.log(sd * np.sqrt(2 * np.pi))
    res = pathfinder(target, seed=0)
    assert res.best_iter > 0 and res.elbo > log_z - 1.0
    np.testing.assert_allclose(np.sqrt(np.diag(res.cov)), sd, rtol=0.2)
    assert np.all(np.abs(res.mean - mu) < sd)
