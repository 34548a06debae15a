"""The amortized objectives and their gradient estimators, checked against identities and
expectations that hold exactly: the analytic-KL ELBO equals the Monte Carlo ELBO in
expectation (value and gradient), DReG is unbiased for the IWAE gradient, and the flow's two
directions agree."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from conftest import z_bound
from vifit.amortized import ELBO, IWAE, VAEConfig, build_vae, make_objective
from vifit.amortized.likelihoods import Bernoulli, Categorical, Gaussian
from vifit.errors import ConfigError

D, L = 6, 3


def small_model(key=0, flow=0, likelihood="auto", kind="binary"):
    cfg = VAEConfig(D, kind, latent_dim=L, hidden=(8,), flow_layers=flow, flow_hidden=(8,),
                    likelihood=likelihood, n_categories=4 if kind == "discrete" else None)
    return build_vae(cfg, jax.random.key(key))


def data(n=4, seed=0):
    return (np.random.default_rng(seed).random((n, D)) < 0.4).astype(np.float64)


def flat(tree):
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))])


def test_analytic_kl_elbo_equals_monte_carlo_elbo_in_expectation(x64):
    model = small_model()
    x = jnp.asarray(data()[0])
    n = 40_000

    @jax.jit
    def both(key):
        analytic = ELBO(samples=n, kl="analytic").bound(model, x, key)
        mc = ELBO(samples=n, kl="mc").bound(model, x, key)
        # Same key, same draws: the two differ only by the KL term and its Monte Carlo
        # estimate, d_k = log q(z_k|x) - log p(z_k) - KL, whose expectation is exactly zero.
        xin = model.q_input(x)
        z, log_q = model.encoder.sample(xin, key, n)
        return analytic - mc, log_q - model.log_prior(z) - model.encoder.kl_to_prior(xin)

    gap, d = both(jax.random.key(1))
    d = np.asarray(d)
    assert float(gap) == pytest.approx(float(np.mean(d)), abs=1e-9)
    se = d.std(ddof=1) / np.sqrt(n)
    assert abs(d.mean()) < z_bound(1e-3) * se
    assert se > 0  # the Monte Carlo KL really is random, so the check has teeth


def test_analytic_and_monte_carlo_elbo_gradients_agree_in_expectation(x64):
    model = small_model(key=3)
    x = jnp.asarray(data(1, seed=2))
    reps = 3000
    keys = jax.random.split(jax.random.key(4), reps)

    def grads(objective, k):
        return flat(objective.loss_grad(model, x, k)[0])

    ga = jax.jit(jax.vmap(lambda k: grads(ELBO(kl="analytic"), k)))(keys)
    gm = jax.jit(jax.vmap(lambda k: grads(ELBO(kl="mc"), k)))(keys)
    diff = np.asarray(ga - gm)  # paired: same draws; decoder coordinates cancel exactly
    se = diff.std(axis=0, ddof=1) / np.sqrt(reps)
    live = se > 1e-12
    assert live.sum() >= 10  # the encoder's coordinates differ draw by draw
    k = z_bound(1e-3, int(live.sum()))
    assert np.all(np.abs(diff.mean(axis=0)[live]) < k * se[live])


def test_dreg_is_unbiased_for_the_iwae_gradient(x64):
    model = small_model(key=5)
    x = jnp.asarray(data(1, seed=3))
    reps, K = 3000, 8
    keys = jax.random.split(jax.random.key(6), reps)
    dreg, plain = IWAE(samples=K, estimator="dreg"), IWAE(samples=K, estimator="reparam")

    @jax.jit
    @jax.vmap
    def grads_and_bounds(k):
        (g1, b1), (g2, b2) = dreg.loss_grad(model, x, k), plain.loss_grad(model, x, k)
        return flat(g1), flat(g2), b1, b2

    gd, gp, bd, bp = grads_and_bounds(keys)
    # Both use the same draws; DReG changes only the encoder's gradient, so the decoder's
    # coordinates agree draw by draw, and the encoder's agree in expectation.
    n_enc = flat(model.encoder).shape[0]
    dec = slice(n_enc, None)
    np.testing.assert_allclose(gd[:, dec], gp[:, dec], rtol=1e-8, atol=1e-10)
    diff = np.asarray(gd[:, :n_enc] - gp[:, :n_enc])
    se = diff.std(axis=0, ddof=1) / np.sqrt(reps)
    live = se > 1e-12
    assert live.sum() >= 10
    k = z_bound(1e-3, int(live.sum()))
    assert np.all(np.abs(diff.mean(axis=0)[live]) < k * se[live])
    # Bounds agree too: both report log (1/K) sum_k w_k of the same draws.
    np.testing.assert_allclose(bd, bp, rtol=1e-10)


def test_iwae_with_one_sample_is_the_monte_carlo_elbo(x64):
    model = small_model(key=7)
    x = jnp.asarray(data(1)[0])
    key = jax.random.key(8)
    assert float(IWAE(samples=1).bound(model, x, key)) == pytest.approx(
        float(ELBO(samples=1, kl="mc").bound(model, x, key)), abs=1e-10)


def test_flow_posterior_density_along_the_draws_equals_the_inverse_density(x64):
    model = small_model(key=9, flow=2)
    x = jnp.asarray(data(1)[0])

    @jax.jit
    def check(model, key):
        # Perturb the zero-initialized coupling nets so that the flow is not the identity.
        leaves, tdef = jax.tree.flatten(model.encoder.flow)
        keys = jax.random.split(key, len(leaves) + 1)
        flow = jax.tree.unflatten(tdef, [v + 0.3 * jax.random.normal(k, v.shape)
                                         for v, k in zip(leaves, keys[1:])])
        model = eqx.tree_at(lambda m: m.encoder.flow, model, flow)
        xin = model.q_input(x)
        z, log_q = model.encoder.sample(xin, keys[0], 64)
        ctx = model.encoder.gaussian(xin)[2]
        z0 = jnp.array([0.3, -1.2, 0.7])
        logdet = model.encoder.flow.forward(z0, ctx)[1]
        jac = jax.jacobian(lambda v: model.encoder.flow.forward(v, ctx)[0])(z0)
        return model.encoder.log_prob(xin, z), log_q, logdet, jac

    inverse, along, logdet, jac = check(model, jax.random.key(10))
    np.testing.assert_allclose(inverse, along, rtol=1e-10, atol=1e-10)
    # The flow's log-determinant against jax.jacobian.
    assert float(logdet) == pytest.approx(float(np.linalg.slogdet(np.asarray(jac))[1]), abs=1e-10)
    assert abs(float(logdet)) > 1e-3


def test_the_analytic_kl_is_refused_under_a_flow(x64):
    model = small_model(flow=1)
    with pytest.raises(ConfigError, match="--kl mc"):
        ELBO(kl="analytic").check(model)
    ELBO(kl="auto").check(model)  # auto falls back to the Monte Carlo KL


def test_make_objective_refuses_options_it_does_not_have():
    assert make_objective("iwae", 50, estimator="dreg").samples == 50
    with pytest.raises(ConfigError, match="takes no option kl"):
        make_objective("iwae", 5, kl="analytic")
    with pytest.raises(ConfigError, match="unknown objective"):
        make_objective("renyi", 5)


def test_likelihoods_match_scipy(x64):
    rng = np.random.default_rng(0)
    out = rng.normal(size=D)
    x = (rng.random(D) < 0.5).astype(float)
    p = 1 / (1 + np.exp(-out))
    assert float(Bernoulli().log_prob(jnp.asarray(out), jnp.asarray(x))) == pytest.approx(
        stats.bernoulli(p).logpmf(x).sum(), rel=1e-10)
    g = Gaussian(D, "diagonal", init_log_scale=0.0)
    g = eqx.tree_at(lambda m: m.log_scale, g, jnp.asarray(rng.normal(size=D) * 0.3))
    xr = rng.normal(size=D)
    want = stats.norm(out, np.exp(np.asarray(g.log_scale))).logpdf(xr).sum()
    assert float(g.log_prob(jnp.asarray(out), jnp.asarray(xr))) == pytest.approx(want, rel=1e-10)
    c = Categorical(4)
    logits = rng.normal(size=D * 4)
    xc = rng.integers(0, 4, size=D)
    lp = logits.reshape(D, 4) - np.log(np.exp(logits.reshape(D, 4)).sum(1, keepdims=True))
    assert float(c.log_prob(jnp.asarray(logits), jnp.asarray(xc))) == pytest.approx(
        lp[np.arange(D), xc].sum(), rel=1e-10)
