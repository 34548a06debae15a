"""Discrete latents against enumerated answers: the 4x4 Ising model (65536 states) and the
mixture-label target (59049 states), whose log Z and mean-field objectives are exact."""

import itertools

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import vifit
from conftest import z_bound
from vifit.examples import ising, mixture

J, H, SIDE = 0.2, 0.1, 4


@pytest.fixture(scope="module")
def ising_target():
    return ising.make(SIDE, J, H)


def neighbours_sum(m):
    g = m.reshape(SIDE, SIDE)
    return (np.roll(g, 1, 0) + np.roll(g, -1, 0) + np.roll(g, 1, 1) + np.roll(g, -1, 1)).ravel()


def mean_field_elbo(logits):
    """The exact mean-field ELBO of the Ising model for Bernoulli logits (spins s = 2x - 1,
    magnetizations m = tanh(logits / 2)): J sum_edges m_i m_j + h sum m_i + entropy."""
    p = jax.nn.sigmoid(logits)
    m = 2 * p - 1
    g = m.reshape(SIDE, SIDE)
    pair = jnp.sum(g * jnp.roll(g, -1, 0)) + jnp.sum(g * jnp.roll(g, -1, 1))
    ent = -jnp.sum(p * jnp.log(p) + (1 - p) * jnp.log1p(-p))
    return J * pair + H * jnp.sum(m) + ent


def coordinate_ascent(sweeps=500):
    """The mean-field optimum: m_i <- tanh(J sum_neighbours m_j + h), one site at a time."""
    m = np.zeros(SIDE * SIDE)
    for _ in range(sweeps):
        for i in range(m.size):
            m[i] = np.tanh(J * neighbours_sum(m)[i] + H)
    return 2 * np.arctanh(m)  # the logits


def test_enumeration_matches_brute_force(x64):
    def log_prob(x):
        return jnp.sum(jnp.asarray([0.3, -0.7, 1.1])[x]) + 0.5 * (x[0] == x[2])

    t = vifit.DiscreteTarget(log_prob, n_sites=3, n_states=3)
    exact = vifit.enumerate_exact(t)
    states = np.array(list(itertools.product(range(3), repeat=3)))
    lp = np.asarray(jax.vmap(log_prob)(jnp.asarray(states)))
    assert abs(exact["log_z"] - np.log(np.exp(lp).sum())) < 1e-12
    prob = np.exp(lp - exact["log_z"])
    np.testing.assert_allclose(exact["marginals"][2], [prob[states[:, 2] == k].sum()
                                                       for k in range(3)], atol=1e-12)


def test_bad_discrete_targets_are_refused():
    with pytest.raises(vifit.TargetError, match="finite"):
        vifit.DiscreteTarget(lambda x: jnp.log(jnp.sum(x) * 0.0), n_sites=2)
    with pytest.raises(vifit.TargetError, match="agree at one-hot"):
        vifit.DiscreteTarget(lambda x: jnp.sum(x) * 1.0, n_sites=2,
                             relaxed_log_prob=lambda y: jnp.sum(y) + 1.0)
    t = vifit.DiscreteTarget(lambda x: jnp.sum(x) * 1.0, n_sites=2)
    with pytest.raises(vifit.ConfigError, match="bernoulli"):
        vifit.fit(t, "fullrank", progress=False)
    with pytest.raises(vifit.ConfigError, match="score', 'rb' or 'relaxed'"):
        vifit.fit(t, estimator="stl", progress=False)
    with pytest.raises(vifit.ConfigError, match="relaxed_log_prob"):
        vifit.fit(t, estimator="relaxed", progress=False)


@pytest.mark.parametrize("family", [vifit.Bernoulli(), vifit.Categorical(n_states=3)],
                         ids=lambda f: f.name)
def test_discrete_families_normalize_and_know_their_entropy(family, x64):
    k = 2 if family.name == "bernoulli" else 3
    params = family.init(jax.random.key(1), 3)
    params = jax.tree.map(lambda x: 3 * x, params)
    states = jnp.asarray(list(itertools.product(range(k), repeat=3)))
    logq = family.batch_log_prob(params, states)
    np.testing.assert_allclose(jnp.sum(jnp.exp(logq)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(family.entropy(params), -jnp.sum(jnp.exp(logq) * logq),
                               rtol=1e-12)
    x = family.sample(params, jax.random.key(2), 20_000)
    assert x.dtype == jnp.int32 and x.shape == (20_000, 3)
    freq = np.mean(np.asarray(x)[:, 0, None] == np.arange(k), axis=0)
    p0 = np.exp(np.asarray(family.site_log_probs(params))[0])
    se = np.sqrt(p0 * (1 - p0) / 20_000)
    assert np.all(np.abs(freq - p0) < z_bound(1e-3, k) * se)


def ising_estimates(est, target, params, reps, draws, seed=0):
    obj = vifit.ELBO()
    keys = jax.random.split(jax.random.key(seed), reps)

    @jax.jit
    def many(keys):
        def one(key):
            g, _ = est.loss_grad(obj, target.log_density, vifit.Bernoulli(), params, key, draws)
            return jax.flatten_util.ravel_pytree(g)[0]

        return jax.lax.map(one, keys, batch_size=500)

    return np.asarray(many(keys))


def test_score_and_rb_are_unbiased_and_reduce_variance_on_ising(ising_target, x64):
    params = {"logits": 0.5 * jax.random.normal(jax.random.key(4), (SIDE * SIDE,))}
    exact = -np.asarray(jax.grad(mean_field_elbo)(params["logits"]))
    reps, draws = 2000, 16
    ests = {"score": vifit.ScoreFunction(), "rb": vifit.LocalExpectation(),
            "score_plain": vifit.ScoreFunction(baseline=False, control_variate=False)}
    k = z_bound(1e-3, len(ests) * exact.size)
    var = {}
    for name, est in ests.items():
        g = ising_estimates(est, ising_target, params, reps, draws)
        se = g.std(0, ddof=1) / np.sqrt(reps)
        z = np.abs(g.mean(0) - exact) / se
        assert z.max() < k, f"{name}: {z.max():.2f} standard errors off"
        var[name] = g.var(0, ddof=1).sum()
    # The same draws per estimate: the baseline + control variate cut the variance many times
    # over ("several": at least 3x), and Rao-Blackwellization more (at 32x the evaluations).
    assert var["score"] < var["score_plain"] / 3
    assert var["rb"] < var["score"]
    assert "biased" in vifit.Relaxed().bias(vifit.ELBO())


def test_mean_field_fit_of_ising_reaches_the_coordinate_ascent_optimum(ising_target):
    result = vifit.fit(ising_target, seed=0, progress=False)
    assert result.family.name == "bernoulli" and result.estimator == "score"
    with jax.enable_x64(True):
        best = float(mean_field_elbo(jnp.asarray(coordinate_ascent())))
        fitted = float(mean_field_elbo(jnp.asarray(result.params["logits"], jnp.float64)))
    log_z = ising_target.exact["log_z"]
    assert fitted < best + 1e-9 < log_z  # the mean-field optimum, itself below log Z
    assert best - fitted < 0.01  # acceptance: within 0.01 nats of the optimum
    k = z_bound(1e-3)
    assert abs(result.elbo - fitted) < k * result.elbo_se  # the reported ELBO is the real one
    assert abs(result.log_z - log_z) < k * result.log_z_se + 1e-4  # + float32 rounding


def test_mixture_labels_rb_is_unbiased_for_categorical(x64):
    target = mixture.make(n=6)  # 3^6 states: the same code as the built-in 10-point example
    family = vifit.Categorical().for_target(target)
    params = family.init(jax.random.key(0), target.dim)
    params = {"logits": params["logits"] * 10}
    states = jnp.asarray(list(itertools.product(range(3), repeat=target.dim)))
    logp = jax.vmap(target.log_prob)(states)

    def exact_elbo(p):  # by enumeration of all states
        logq = family.batch_log_prob(p, states)
        return jnp.sum(jnp.exp(logq) * (logp - logq))

    exact = -jax.flatten_util.ravel_pytree(jax.grad(exact_elbo)(params))[0]
    reps = 400
    keys = jax.random.split(jax.random.key(1), reps)
    est = vifit.LocalExpectation()

    @jax.jit
    def one(key):
        g, _ = est.loss_grad(vifit.ELBO(), target.log_density, family, params, key, 4)
        return jax.flatten_util.ravel_pytree(g)[0]

    g = np.asarray(jax.lax.map(one, keys, batch_size=100))
    se = g.std(0, ddof=1) / np.sqrt(reps)
    z = np.abs(g.mean(0) - exact) / se
    assert z.max() < z_bound(1e-3, exact.size)
    assert abs(target.exact["log_z"] - float(jax.scipy.special.logsumexp(logp))) < 1e-9
