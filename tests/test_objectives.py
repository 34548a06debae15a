"""The objectives against known answers: on a Gaussian target with a Gaussian q, ELBO and CUBO
are known in closed form and log Z exactly, so ELBO <= IWAE_K <= log Z <= CUBO can be checked
within Monte Carlo error; the Renyi family is checked against its own limits."""

import jax.numpy as jnp
import numpy as np
import pytest

import vifit
from conftest import z_bound

D = 2
MEAN_P = np.array([0.5, -1.0])
COV_P = np.array([[1.0, 0.6], [0.6, 2.0]])
OFFSET = 3.0
LOG_Z = OFFSET + 0.5 * np.linalg.slogdet(2 * np.pi * COV_P)[1]
MEAN_Q = np.array([0.8, -0.6])  # q: shifted and wider than p, so that E_q[w^4] is finite
COV_Q = np.diag([2.0, 3.5])
N = 1 << 16
K_BOUND = z_bound(1e-3, 8)  # all comparisons of the ordering test together: 0.1% false failures


def logw_draws(n=N, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal(MEAN_Q, COV_Q, size=n)
    rp, rq = z - MEAN_P, z - MEAN_Q
    logp = OFFSET - 0.5 * np.einsum("ni,ij,nj->n", rp, np.linalg.inv(COV_P), rp)
    logq = (-0.5 * np.einsum("ni,ij,nj->n", rq, np.linalg.inv(COV_Q), rq)
            - 0.5 * np.linalg.slogdet(2 * np.pi * COV_Q)[1])
    return logp - logq


def exact_elbo():
    prec = np.linalg.inv(COV_P)
    r = MEAN_Q - MEAN_P
    e_logp = OFFSET - 0.5 * (np.trace(prec @ COV_Q) + r @ prec @ r)
    return e_logp + 0.5 * np.linalg.slogdet(2 * np.pi * np.e * COV_Q)[1]


def exact_cubo():
    """log Z + 1/2 log int p^2 / q for normalized Gaussians p, q."""
    p1, p2 = np.linalg.inv(COV_P), np.linalg.inv(COV_Q)
    a = 2 * p1 - p2
    b = 2 * p1 @ MEAN_P - p2 @ MEAN_Q
    c = MEAN_P @ p1 @ MEAN_P - 0.5 * MEAN_Q @ p2 @ MEAN_Q
    log_int = (0.5 * np.linalg.slogdet(COV_Q)[1] - np.linalg.slogdet(COV_P)[1]
               - 0.5 * np.linalg.slogdet(a)[1] + 0.5 * b @ np.linalg.solve(a, b) - c)
    return LOG_Z + 0.5 * log_int


def test_elbo_iwae_log_z_cubo_are_ordered(x64):
    lw = logw_draws()
    elbo, elbo_se = vifit.ELBO().estimate(lw)
    assert abs(elbo - exact_elbo()) < K_BOUND * elbo_se
    iwae, iwae_se = vifit.IWAE(K=16).estimate(lw)
    # ELBO <= IWAE: paired per group of 16, so the comparison's own error is small.
    diff = (np.asarray(vifit.IWAE(K=16).group_values(jnp.asarray(lw)))
            - lw.reshape(-1, 16).mean(1))
    assert diff.mean() > K_BOUND * diff.std(ddof=1) / np.sqrt(diff.size)
    assert iwae < LOG_Z + K_BOUND * iwae_se
    # The CUBO from all draws as one group: its error by the delta method; its Jensen bias is
    # of the order of the squared error, negligible here.
    cubo = float(vifit.CUBO(K=N).value(jnp.asarray(lw)))
    w2 = np.exp(2 * (lw - lw.max()))
    cubo_se = 0.5 * w2.std(ddof=1) / (np.sqrt(N) * w2.mean())
    assert abs(cubo - exact_cubo()) < K_BOUND * cubo_se
    assert cubo > LOG_Z - K_BOUND * cubo_se
    assert exact_elbo() < LOG_Z < exact_cubo()  # the closed forms used above are consistent


def test_iwae_increases_with_k_toward_log_z(x64):
    lw = logw_draws(seed=1)
    ks = [1, 4, 16, 64]
    values = {k: np.asarray(vifit.IWAE(K=k).group_values(jnp.asarray(lw))) for k in ks}
    k_z = z_bound(1e-3, len(ks))
    for small, big in zip(ks, ks[1:]):
        # Each group of `big` holds big/small groups of `small`: paired differences.
        d = values[big] - values[small].reshape(-1, big // small).mean(1)
        assert d.mean() > k_z * d.std(ddof=1) / np.sqrt(d.size), (small, big)
    gap = {k: LOG_Z - values[k].mean() for k in ks}
    assert gap[64] < gap[16] < gap[4] < gap[1]
    assert gap[64] > -k_z * values[64].std(ddof=1) / np.sqrt(values[64].size)


def test_renyi_limits_and_monotonicity(x64):
    lw = jnp.asarray(logw_draws(n=4096, seed=2))
    k = 8
    # Exact identities on the same draws: alpha = 0 is IWAE, alpha = -1 is the CUBO, and the
    # estimate is non-increasing in alpha in every group (the power-mean inequality).
    np.testing.assert_allclose(vifit.Renyi(alpha=0.0, K=k).value(lw), vifit.IWAE(K=k).value(lw),
                               rtol=1e-12)
    np.testing.assert_allclose(vifit.Renyi(alpha=-1.0, K=k).value(lw),
                               vifit.CUBO(K=k).value(lw), rtol=1e-12)
    alphas = [-2.0, -0.5, 0.0, 0.3, 0.9, 1.0, 1.5]
    per_group = np.stack([vifit.Renyi(alpha=a, K=k).group_values(lw) for a in alphas])
    assert np.all(np.diff(per_group, axis=0) <= 1e-12)
    elbo = float(jnp.mean(lw))
    np.testing.assert_allclose(per_group[alphas.index(1.0)].mean(), elbo, rtol=1e-12)
    # alpha -> 1 (beta = 1 - alpha -> 0): per group, L - mean = var/2 beta + kappa3/6 beta^2 +
    # remainder, the cumulant expansion of log mean exp(beta l) / beta, with the remainder at
    # most beta^3 R^4 / 24 for a group of range R (each tilted cumulant is bounded by R^4).
    g = np.asarray(lw).reshape(-1, k)
    c = g - g.mean(1, keepdims=True)
    var, k3 = np.mean(c**2, 1).mean(), np.mean(c**3, 1).mean()
    r4 = np.max(np.ptp(g, axis=1)) ** 4
    for beta in [1e-2, 1e-3, 1e-4]:
        gap = float(vifit.Renyi(alpha=1.0 - beta, K=k).value(lw)) - elbo
        assert abs(gap - var / 2 * beta - k3 / 6 * beta**2) <= beta**3 * r4 / 24 + 1e-12


def test_directions_and_labels():
    assert vifit.ELBO().direction == 1 and vifit.IWAE().direction == 1
    assert vifit.CUBO().direction == -1 and vifit.CUBO().is_upper_bound
    assert vifit.Renyi(alpha=-0.5).direction == -1 and vifit.Renyi(alpha=0.5).direction == 1
    assert vifit.ForwardKL().direction == -1
    assert vifit.get_objective("iwae", K=32).label() == "iwae(K=32)"
    with pytest.raises(vifit.ConfigError, match="no option K"):
        vifit.get_objective("elbo", K=3)
    with pytest.raises(vifit.ConfigError, match=">= 2"):
        vifit.get_objective("chi2", K=1)


def test_draws_must_fill_whole_groups():
    t = vifit.Target(lambda z: -0.5 * jnp.sum(z**2), dim=2)
    with pytest.raises(vifit.ConfigError, match="draws=16 or 24"):
        vifit.fit(t, objective=vifit.IWAE(K=8), draws=20, progress=False)
    with pytest.raises(vifit.ConfigError, match="use estimator='snis'"):
        vifit.fit(t, objective="forward_kl", estimator="stl", progress=False)
    with pytest.raises(vifit.ConfigError, match="no doubly reparameterized form|has no"):
        vifit.fit(t, objective="forward_kl", estimator="dreg", progress=False)
