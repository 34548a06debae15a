"""from_numpyro on models with numpyro.plate(..., subsample_size=B): a DataTarget over the
plate's rows, with the z and the full-data density of the same model without subsampling."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro import handlers
from numpyro.infer.util import log_likelihood, potential_energy

import vifit
from vifit.adapters import ModelTarget
from vifit.data.batches import BatchSchedule


def regression(x, y, w, batch=None):
    """A logistic regression (``y``) with a second observed site in a nested plate (``w``,
    shape (2, N)), an observed site outside the plate and a positive latent (log-Jacobian).
    ``batch=None``: the same model without subsampling."""
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 2.5))
    beta = numpyro.sample("beta", dist.Normal(0.0, 2.5).expand([x.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    numpyro.sample("anchor", dist.Normal(alpha, 1.0), obs=0.3)
    with numpyro.plate("data", x.shape[0], subsample_size=batch) as ind:
        logits = alpha + x[ind] @ beta
        numpyro.deterministic("p", jax.nn.sigmoid(logits))
        numpyro.sample("y", dist.Bernoulli(logits=logits), obs=y[ind])
        with numpyro.plate("rep", 2, dim=-2):
            numpyro.sample("w", dist.Normal(logits, sigma), obs=w[:, ind])


def logistic(x, y, batch=None):
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 2.5))
    beta = numpyro.sample("beta", dist.Normal(0.0, 2.5).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0], subsample_size=batch) as ind:
        numpyro.sample("y", dist.Bernoulli(logits=alpha + x[ind] @ beta), obs=y[ind])


def regression_data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    logits = 0.3 + x @ np.array([1.0, -0.5, 0.25])
    y = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(np.int32)
    w = logits + 0.7 * rng.normal(size=(2, n))
    return jnp.asarray(x), jnp.asarray(y), jnp.asarray(w)


def unravel_of(target):
    _, unravel = jax.flatten_util.ravel_pytree(
        {k: jnp.zeros(s) for k, s in target.site_shapes.items()})
    return unravel


def numpyro_log_density(model, target, args, kwargs, zs):
    """NumPyro's own ``-potential_energy`` at each row of ``zs`` (one compiled program)."""
    unravel = unravel_of(target)
    return jax.jit(jax.vmap(lambda z: -potential_energy(model, args, kwargs, unravel(z))))(zs)


@pytest.fixture(scope="module")
def small():
    """The regression on 200 rows in float64, subsampled (B = 20) and not (built in float64
    here; the tests that use it run in float64 too, with the x64 fixture)."""
    with jax.enable_x64(True):
        data = regression_data(200)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. NumPyro's subsample_size mismatch warning
            sub = vifit.from_numpyro(regression, *data, batch=20)
        plain = vifit.from_numpyro(regression, *data)
        zs = 1.5 * jax.random.normal(jax.random.key(1), (4, sub.dim))
    return data, sub, plain, zs


def test_same_z_and_full_data_density_as_the_model_without_subsampling(small, x64):
    data, sub, plain, zs = small
    assert isinstance(sub, vifit.DataTarget) and sub.n_rows == 200 and sub.source == "numpyro"
    assert type(plain) is ModelTarget  # without a subsampled plate: what it always was
    assert sub.param_names == plain.param_names and sub.site_shapes == plain.site_shapes
    np.testing.assert_array_equal(sub.init, plain.init)
    # NumPyro's own potential energy of the model without subsampling.
    np.testing.assert_allclose(sub.batch_log_density(zs),
                               numpyro_log_density(regression, plain, data, {}, zs), rtol=1e-10)
    got, want = jax.vmap(sub.constrain)(zs), jax.vmap(plain.constrain)(zs)
    assert set(got) == set(want) and got["p"].shape == (4, 200)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12)
    values = {k: v[0] for k, v in want.items() if k != "p"}
    np.testing.assert_allclose(sub.unconstrain(values), plain.unconstrain(values), rtol=1e-12)


def test_minibatch_estimate_is_numpyros_subsampled_density(small, x64):
    """The N/B check: vifit's step estimate ``log_prior + (N/B) sum_batch log_lik``, with the
    scale its batch schedule uses, equals NumPyro's own minibatch density (the subsampled
    model with the plate's indices fixed, sites inside scaled by NumPyro's plate); and each
    row's log_lik is NumPyro's unscaled per-row log-likelihood."""
    data, sub, plain, zs = small
    n, b = 200, 20
    scale = BatchSchedule(sub.n_rows, b, seed=0).scale
    assert scale == n / b
    idx = jnp.asarray(np.sort(np.random.default_rng(2).choice(n, b, replace=False)))
    fixed = handlers.substitute(regression, data={"data": idx})
    vifit_estimate = jax.jit(jax.vmap(sub.minibatch_log_density({"index": idx}, scale)))(zs)
    np.testing.assert_allclose(vifit_estimate,
                               numpyro_log_density(fixed, plain, data, {"batch": b}, zs),
                               rtol=1e-10)
    values = {k: v for k, v in jax.vmap(sub.constrain)(zs).items() if k != "p"}
    per_site = log_likelihood(fixed, values, *data, batch=b, parallel=True)
    np.testing.assert_allclose(jax.vmap(sub.log_lik, in_axes=(0, None))(zs, {"index": idx}),
                               per_site["y"] + per_site["w"].sum(1), rtol=1e-10)


@pytest.fixture(scope="module")
def big():
    """The logistic regression on N = 20,000 rows (float32), subsampled with B = 256."""
    x, y, _ = regression_data(20_000, seed=3)
    x = x.astype(jnp.float32)
    return (x, y), vifit.from_numpyro(logistic, x, y, batch=256)


def test_float32_full_data_density(big):
    data, target = big
    assert isinstance(target, vifit.DataTarget) and target.n_rows == 20_000
    assert target.param_names == ("alpha", "beta[0]", "beta[1]", "beta[2]")
    zs = 0.5 * jax.random.normal(jax.random.key(4), (3, target.dim))
    # float32: the two sum the 20,000 terms in different orders (chunks vs one sum).
    np.testing.assert_allclose(target.batch_log_density(zs),
                               numpyro_log_density(logistic, target, data, {}, zs), rtol=1e-5)


def test_minibatch_fit_matches_the_full_data_fit(big):
    """Fitted on minibatches of 256 rows (scaled by N/B, the scale checked against NumPyro's
    in test_minibatch_estimate_is_numpyros_subsampled_density), the posterior mean lies
    within 0.1 posterior sd of the full-data fit's, in every coordinate. Both are seeded and
    deterministic; at N = 20,000 the subsampling and Monte Carlo noise left in the fitted
    means is a few hundredths of an sd (0.01 to 0.04 measured)."""
    _, target = big
    assert target.init.dtype == jnp.float32
    mini = vifit.fit(target, batch_size=256, seed=0, progress=False, n_eval=256)
    assert mini.info["minibatch"]["batch_size"] == 256
    assert mini.info["minibatch"]["rows"] == 20_000
    full = vifit.fit(target, batch_size=None, seed=0, progress=False, n_eval=256)
    assert "minibatch" not in full.info
    sd = np.sqrt(np.diag(full.covariance()))
    assert np.all(np.abs(mini.mean() - full.mean()) < 0.1 * sd), (mini.mean(), full.mean(), sd)


def test_local_latents_and_several_subsampled_plates_are_refused():
    x, y, _ = regression_data(50)

    def local(x, y):
        alpha = numpyro.sample("alpha", dist.Normal())
        with numpyro.plate("data", x.shape[0], subsample_size=10) as ind:
            u = numpyro.sample("u", dist.Normal(alpha, 1.0))
            numpyro.sample("y", dist.Bernoulli(logits=u), obs=y[ind])

    def maybe_observed(x, y=None):
        alpha = numpyro.sample("alpha", dist.Normal())
        with numpyro.plate("data", x.shape[0], subsample_size=10) as ind:
            numpyro.sample("y", dist.Normal(alpha, 1.0), obs=None if y is None else y[ind])

    def two_plates(x, y):
        alpha = numpyro.sample("alpha", dist.Normal())
        with numpyro.plate("data", x.shape[0], subsample_size=10) as ind:
            numpyro.sample("y", dist.Bernoulli(logits=alpha), obs=y[ind])
        with numpyro.plate("features", x.shape[1], subsample_size=2) as j:
            numpyro.sample("x0", dist.Normal(alpha, 1.0), obs=x[0, j])

    with pytest.raises(vifit.TargetError, match=r"latent sites inside the subsampled plate "
                                                r"'data': \['u'\].*Remove subsample_size="):
        vifit.from_numpyro(local, x, y)
    with pytest.raises(vifit.TargetError, match="obs=None is latent too"):
        vifit.from_numpyro(maybe_observed, x)  # y=None: the site inside the plate is latent
    with pytest.raises(vifit.TargetError, match=r"subsamples 2 plates \['data', 'features'\]"):
        vifit.from_numpyro(two_plates, x, y)


def test_data_not_indexed_by_the_plate_is_refused():
    x, y, _ = regression_data(50)

    def unindexed(x, y):
        alpha = numpyro.sample("alpha", dist.Normal())
        with numpyro.plate("data", x.shape[0], subsample_size=10):
            numpyro.sample("y", dist.Bernoulli(logits=alpha * x[:10, 0]), obs=y[:10])

    with pytest.raises(vifit.TargetError, match="runs on 2 of its 50 rows rather than on 10.*index the data"):
        vifit.from_numpyro(unindexed, x, y)
