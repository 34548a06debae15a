"""Each gradient estimator is unbiased for the ELBO gradient (Gaussian q, Gaussian p, where
the ELBO is known in closed form), and the score estimator's variance reductions help."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vifit
from conftest import z_bound

D = 3
MEAN = np.array([1.0, -0.5, 2.0])
COV = np.array([[1.0, 0.6, 0.2], [0.6, 2.0, -0.4], [0.2, -0.4, 0.8]])
OFFSET = 30.0  # a large unnormalized constant: what baselines exist to remove
REPS = 20_000
DRAWS = 8


def log_p(z):
    r = z - jnp.asarray(MEAN)
    return OFFSET - 0.5 * r @ jnp.asarray(np.linalg.inv(COV)) @ r


def exact_elbo(family, params):
    """E_q[log p] + H[q] in closed form for Gaussian q and p."""
    prec = jnp.asarray(np.linalg.inv(COV))
    m, s = family.mean(params), family.covariance(params)
    r = m - jnp.asarray(MEAN)
    return OFFSET - 0.5 * (jnp.trace(prec @ s) + r @ prec @ r) + family.entropy(params)


def estimates(estimator, family, params, reps=REPS, draws=DRAWS):
    """REPS independent gradient estimates, flattened to (REPS, P)."""
    obj = vifit.get_objective("elbo")
    keys = jax.random.split(jax.random.key(42), reps)

    @jax.jit
    def one(key):
        grads, _ = estimator.loss_grad(obj, log_p, family, params, key, draws)
        return jax.flatten_util.ravel_pytree(grads)[0]

    return np.asarray(jax.lax.map(one, keys, batch_size=1000))


def off_optimum_params(family):
    params = family.init(jax.random.key(0), D)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(7), len(leaves))
    return jax.tree.unflatten(
        tree, [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


ESTIMATORS = {
    "reparam": vifit.Reparam(),
    "stl": vifit.STL(),
    "score": vifit.ScoreFunction(),
    "score-baseline-only": vifit.ScoreFunction(control_variate=False),
    "score-cv-only": vifit.ScoreFunction(baseline=False),
    "score-plain": vifit.ScoreFunction(baseline=False, control_variate=False),
}


@pytest.mark.parametrize("family", [vifit.MeanField(), vifit.FullRank()], ids=lambda f: f.name)
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimator_is_unbiased(name, family, x64):
    import jax.flatten_util  # noqa: F401  (used inside estimates)

    params = off_optimum_params(family)
    exact = -jax.flatten_util.ravel_pytree(jax.grad(lambda p: exact_elbo(family, p))(params))[0]
    g = estimates(ESTIMATORS[name], family, params)
    mean, se = g.mean(0), g.std(0, ddof=1) / np.sqrt(REPS)
    live = se > 0  # the unused upper triangle of the Cholesky parameter has no gradient at all
    np.testing.assert_array_equal(mean[~live], np.asarray(exact)[~live])
    k = z_bound(1e-3, int(live.sum()))  # all components at once, 0.1% false-failure rate
    z = np.abs(mean[live] - np.asarray(exact)[live]) / se[live]
    assert z.max() < k, f"{name}: worst component is {z.max():.2f} standard errors off"


def test_variance_reduction_lowers_score_variance(x64):
    import jax.flatten_util  # noqa: F401

    family = vifit.FullRank()
    params = off_optimum_params(family)
    reps = 5000
    var = {name: estimates(ESTIMATORS[name], family, params, reps=reps).var(0, ddof=1).sum()
           for name in ["score", "score-baseline-only", "score-cv-only", "score-plain"]}
    # Each reduction alone and both together lower the total variance at the same budget.
    assert var["score-baseline-only"] < var["score-plain"]
    assert var["score-cv-only"] < var["score-plain"]
    assert var["score"] < var["score-plain"]


def test_score_estimator_refuses_too_few_draws():
    t = vifit.Target(log_p, dim=D)
    with pytest.raises(vifit.ConfigError, match="at least 3 draws"):
        vifit.fit(t, estimator="score", draws=2, progress=False)
