"""Probabilistic PCA (Tipping & Bishop, 1999) as a VAE with linear networks and isotropic
Gaussian noise: x = W z + b + sigma eps. Its marginal likelihood is exact,
log p(x) = log N(x; b, W W^T + sigma^2 I), so the trained model's importance-sampling estimate
and its IWAE bound can be checked against the truth for the learned parameters."""

import equinox as eqx
import jax
import numpy as np
import pytest
from scipy import stats

from conftest import z_bound
from vifit.amortized import (IWAE, Dataset, TrainConfig, VAEConfig, bound_per_example,
                             build_vae, log_likelihood, train)

D, L = 5, 2


def ppca_data(n, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(D, L)) * np.array([2.0, 1.0])
    b = rng.normal(size=D)
    z = rng.normal(size=(n, L))
    return z @ w.T + b + 0.5 * rng.normal(size=(n, D))


def exact_log_p(model, x):
    layer = model.decoder.layers[0]
    w, b = np.asarray(layer.weight), np.asarray(layer.bias)
    s2 = float(np.exp(2 * model.likelihood.log_scale))
    return stats.multivariate_normal(b, w @ w.T + s2 * np.eye(D)).logpdf(x)


def mle_log_p(x):
    """The maximum-likelihood PPCA fit in closed form (Tipping & Bishop, eq. 7-8)."""
    mu = x.mean(0)
    evals, evecs = np.linalg.eigh(np.cov(x.T, bias=True))
    evals, evecs = evals[::-1], evecs[:, ::-1]
    s2 = evals[L:].mean()
    w = evecs[:, :L] * np.sqrt(evals[:L] - s2)
    return stats.multivariate_normal(mu, w @ w.T + s2 * np.eye(D)).logpdf(x)


@pytest.mark.slow
def test_ppca_log_likelihood_and_iwae_bound_against_the_exact_marginal(x64):
    x = ppca_data(1200)
    data = Dataset("ppca", x[:1000], x[1000:], "real")
    cfg = VAEConfig(D, "real", latent_dim=L, hidden=(), likelihood="gaussian",
                    gaussian_scale="isotropic")
    init = build_vae(cfg, jax.random.key(0), data.train)
    run = train(cfg, TrainConfig(epochs=60, batch_size=50, lr=3e-2, schedule="cosine",
                                 eval_every=60), data, progress=False)
    model, test = run.model, data.test
    exact = exact_log_p(model, test)

    # Training did its job: the learned marginal likelihood of the training data is close to
    # the closed-form maximum, which it can never exceed.
    ll_init, ll_fit, ll_mle = (np.mean(v) for v in (exact_log_p(init, data.train),
                                                   exact_log_p(model, data.train),
                                                   mle_log_p(data.train)))
    assert ll_fit <= ll_mle + 1e-9
    assert ll_fit - ll_init >= 0.95 * (ll_mle - ll_init)

    # Importance sampling: each estimate within its delta-method standard error of the truth,
    # allowing the estimator's known downward bias of about se^2 / 2.
    ll = log_likelihood(model, test, jax.random.key(1), samples=2000, chunk=500)
    diff = ll.per_example - exact
    bias = ll.mc_se**2
    assert np.all(np.abs(diff) <= z_bound(1e-3, len(test)) * ll.mc_se + bias)
    assert abs(diff.mean()) <= z_bound(1e-3) * ll.mc_se_of_mean + bias.mean()

    # IWAE-K is a lower bound in expectation: below the exact value within its error, and no
    # looser than the ELBO (K = 1) on average.
    k = z_bound(1e-3, 2)
    iwae = bound_per_example(IWAE(samples=10), model, test, jax.random.key(2)) - exact
    elbo = bound_per_example(IWAE(samples=1), model, test, jax.random.key(3)) - exact
    se = lambda v: v.std(ddof=1) / np.sqrt(len(v))
    assert iwae.mean() <= k * se(iwae)
    assert elbo.mean() <= iwae.mean() + k * np.hypot(se(iwae), se(elbo))

    # The same with a poor q (the trained decoder, the untrained encoder), where the bounds are
    # far from tight: the checks above then have teeth. IWAE-K still sits below log p(x).
    poor = eqx.tree_at(lambda m: m.encoder, model, init.encoder)
    k = z_bound(1e-3, 3)
    iwae = bound_per_example(IWAE(samples=10), poor, test, jax.random.key(4)) - exact
    elbo = bound_per_example(IWAE(samples=1), poor, test, jax.random.key(5)) - exact
    assert iwae.mean() <= k * se(iwae)
    assert elbo.mean() < iwae.mean() - k * np.hypot(se(iwae), se(elbo))  # K = 10 is tighter
