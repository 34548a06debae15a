import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import vifit
from conftest import z_bound

FAMILIES = [vifit.MeanField(), vifit.FullRank(), vifit.LowRank(rank=2)]
D = 4


def random_params(family, key, scale=0.5):
    """Parameters away from the initial ones, so that off-diagonal terms are exercised."""
    params = family.init(key, D)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    leaves = [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    return jax.tree.unflatten(tree, leaves)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_log_prob_and_entropy_match_scipy(family, x64):
    params = random_params(family, jax.random.key(0))
    mean, cov = np.asarray(family.mean(params)), np.asarray(family.covariance(params))
    ref = stats.multivariate_normal(mean, cov)
    z = np.random.default_rng(0).normal(size=(5, D))
    np.testing.assert_allclose(family.batch_log_prob(params, jnp.asarray(z)), ref.logpdf(z),
                               rtol=1e-10)
    np.testing.assert_allclose(family.entropy(params), ref.entropy(), rtol=1e-10)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_samples_have_the_family_moments(family, x64):
    params = random_params(family, jax.random.key(1))
    n = 200_000
    z = np.asarray(family.sample(params, jax.random.key(2), n))
    mean, cov = np.asarray(family.mean(params)), np.asarray(family.covariance(params))
    sd = np.sqrt(np.diag(cov))
    k = z_bound(1e-3, D + D * D)
    assert np.all(np.abs(z.mean(0) - mean) < k * sd / np.sqrt(n))
    # Var of the sample covariance of jointly Gaussian x_i, x_j is (s_ii s_jj + s_ij^2) / n.
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.cov(z.T) - cov) < k * se_cov)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_families_jit_and_vmap_over_params(family):
    keys = jax.random.split(jax.random.key(3), 3)
    batch = jax.vmap(lambda k: family.init(k, D))(keys)
    draws = jax.jit(jax.vmap(lambda p, k: family.sample(p, k, 7)))(batch, keys)
    assert draws.shape == (3, 7, D)
    lp = jax.jit(jax.vmap(family.batch_log_prob))(batch, draws)
    ent = jax.vmap(family.entropy)(batch)
    assert lp.shape == (3, 7) and ent.shape == (3,)
    assert np.all(np.isfinite(lp)) and np.all(np.isfinite(ent))


def test_unknown_family_name_is_refused():
    with pytest.raises(vifit.ConfigError,
                       match="choose one of .*fullrank, heavytail, lowrank, meanfield"):
        vifit.get_family("normalish")


FLOWS = [vifit.RealNVP(), vifit.SplineFlow(), vifit.RealNVP(tail_df=5.0)]


HEAVY = [vifit.HeavyTail(), vifit.HeavyTail(tails="radial", init_radial=0.3)]


@pytest.mark.parametrize("family", FAMILIES + FLOWS + HEAVY,
                         ids=lambda f: f.name + ("-t" if getattr(f, "tail_df", None) else ""))
def test_sample_and_log_prob_agrees_with_sample_and_log_prob(family, x64):
    """The shortcut (log q from eps, no solve; a flow's forward pass alone) has the same
    draws, values and gradients as sample + log_prob: total gradients for reparam, path-only
    gradients for STL. A flow's couplings are perturbed less: at 0.5 a spline's log-det
    reached -50 and its numerical inverse (what log_prob uses) was off by up to 2.9 in eps."""
    is_flow = family in FLOWS
    params = random_params(family, jax.random.key(4), 0.1 if is_flow else 0.5)
    key = jax.random.key(5)
    z, log_q = family.sample_and_log_prob(params, key, 6)
    # A flow's forward pass with its log-det rounds differently from the plain forward pass.
    rtol = 1e-9 if is_flow else 1e-12
    np.testing.assert_allclose(z, family.sample(params, key, 6), rtol=rtol)
    np.testing.assert_allclose(log_q, family.batch_log_prob(params, z), rtol=rtol * 100)

    def slow(p, path_only):
        q_params = jax.tree.map(jax.lax.stop_gradient, p) if path_only else p
        zz = family.sample(p, key, 6)
        return jnp.sum(jnp.sin(zz)) + jnp.sum(family.batch_log_prob(q_params, zz))

    def fast(p, path_only):
        zz, lq = family.sample_and_log_prob(p, key, 6, path_only=path_only)
        return jnp.sum(jnp.sin(zz)) + jnp.sum(lq)

    for path_only in (False, True):
        g_fast = jax.grad(fast)(params, path_only)
        g_slow = jax.grad(slow)(params, path_only)
        for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_slow)):
            np.testing.assert_allclose(a, b, rtol=1e-9 if not is_flow else 1e-7,
                                       atol=1e-12 if not is_flow else 1e-10)


def _tukey_h(e, h):
    return e * np.exp(0.5 * h * e * e)


def test_heavytail_draws_have_the_quantiles_and_density_of_the_tukey_h_transform(x64):
    """Coordinate i of loc + diag(s) x is loc_i + s_i x_i with x_i = e exp(h_i e^2 / 2), a
    monotone map of e ~ N(0, 1): its p-quantile is loc_i + s_i x(Phi^-1(p)). Empirical CDFs of
    200,000 draws at those quantiles must be within z_bound(1e-3) binomial standard errors of
    p; and log q, which inverts the map with Lambert's W, must integrate to 1 (quadrature) and
    equal the change of variables written with SciPy's lambertw."""
    from scipy import integrate, special

    fam = vifit.HeavyTail()
    h = np.array([1e-9, 0.05, 0.3, 0.9])  # from Gaussian to nearly Cauchy tails
    loc, log_s = np.array([1.0, -2.0, 0.0, 3.0]), np.log([0.5, 1.0, 2.0, 0.1])
    params = {"loc": jnp.asarray(loc), "chol": jnp.diag(jnp.asarray(log_s)),
              "h_raw": jnp.log(jnp.asarray(h) / (1.0 - h))}
    n, probs = 200_000, np.array([0.001, 0.05, 0.3, 0.5, 0.8, 0.99, 0.9995])
    z = np.asarray(fam.sample(params, jax.random.key(0), n))
    quant = loc + np.exp(log_s) * _tukey_h(stats.norm.ppf(probs)[:, None], h)
    ecdf = (z[None, :, :] <= quant[:, None, :]).mean(1)
    se = np.sqrt(probs * (1 - probs) / n)[:, None]
    assert np.all(np.abs(ecdf - probs[:, None]) < z_bound(1e-3, ecdf.size) * se)

    def reference(zz):  # log q by the change of variables, e from SciPy's Lambert W
        x = (zz - loc) / np.exp(log_s)
        y = h * x * x
        e2 = np.where(y > 0, special.lambertw(y).real / np.maximum(h, 1e-300), x * x)
        return np.sum(stats.norm.logpdf(np.sqrt(e2)) - 0.5 * h * e2 - np.log1p(h * e2) - log_s)

    for zz in z[:5]:
        np.testing.assert_allclose(fam.log_prob(params, jnp.asarray(zz)), reference(zz),
                                   rtol=1e-9)
    one = {"loc": params["loc"][2:3], "chol": params["chol"][2:3, 2:3],
           "h_raw": params["h_raw"][2:3]}
    dens = jax.jit(lambda t: jnp.exp(fam.log_prob(one, jnp.reshape(t, (1,)))))
    mass = integrate.quad(lambda t: float(dens(t)), -np.inf, np.inf, limit=200)[0]
    assert abs(mass - 1.0) < 1e-6


def test_heavytail_radial_has_the_radius_quantiles_and_density_it_claims(x64):
    """tails="radial" with L = I: |z| = f(|e|), f(r) = r exp(h_r (r^2 - d) / 2), |e|^2 ~
    chi-square(d). The empirical CDF of |z| at f(sqrt(chi2 quantile p)) must be within
    z_bound(1e-3) binomial standard errors of p (h_r = 0.3: tails like a t's with 3.3 degrees
    of freedom), and in d = 2 q must integrate to 1 over the plane (polar quadrature)."""
    from scipy import integrate

    fam, hr = vifit.HeavyTail(tails="radial"), 0.3

    def params(d):
        return {"loc": jnp.zeros(d), "chol": jnp.zeros((d, d)),
                "r_raw": jnp.log(jnp.asarray(hr / (1 - hr)))}

    n, probs = 200_000, np.array([0.001, 0.1, 0.5, 0.9, 0.999])
    for d in (2, 7):
        radius = np.linalg.norm(np.asarray(fam.sample(params(d), jax.random.key(d), n)), axis=1)
        r = np.sqrt(stats.chi2.ppf(probs, d))
        ecdf = (radius[None, :] <= (r * np.exp(0.5 * hr * (r * r - d)))[:, None]).mean(1)
        se = np.sqrt(probs * (1 - probs) / n)
        assert np.all(np.abs(ecdf - probs) < z_bound(1e-3, 2 * probs.size) * se)
    dens = jax.jit(lambda t: jnp.exp(fam.log_prob(params(2), jnp.stack([t, 0.0 * t]))))
    mass = integrate.quad(lambda t: 2 * np.pi * t * float(dens(t)), 0, np.inf, limit=200)[0]
    assert abs(mass - 1.0) < 1e-6


def test_heavytail_from_gaussian_has_the_gaussians_mean_and_covariance(x64):
    """Both forms started from N(m, S) have mean m and covariance S (their covariances are
    finite at the starting indices, 0.2 and 0.1; fourth moments are infinite from an index of
    1/4, so compare medians of ten batch covariances: each batch's error is skewed, the median
    of ten is not far)."""
    cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    for fam in (vifit.HeavyTail(init_h=0.2), vifit.HeavyTail(tails="radial", init_radial=0.1)):
        params = fam.from_gaussian(jnp.asarray([1.0, -1.0]), jnp.asarray(cov))
        z = np.asarray(fam.sample(params, jax.random.key(1), 400_000))
        covs = np.median([np.cov(b.T) for b in z.reshape(10, -1, 2)], axis=0)
        assert np.allclose(np.median(z, 0), [1.0, -1.0], atol=0.01)
        np.testing.assert_allclose(covs, cov, rtol=0.1, atol=0.05)
    for bad in ("init_h=0.6", "tails=diagonal"):
        with pytest.raises(vifit.ConfigError, match=bad.split("=")[0]):
            vifit.get_family(f"heavytail:{bad}")


@pytest.mark.parametrize("name", ["realnvp", "spline"])
def test_a_coupling_flow_in_one_dimension_is_a_config_error(name):
    target = vifit.Target(lambda z: -0.5 * jnp.sum(z**2), dim=1)
    with pytest.raises(vifit.ConfigError, match="d >= 2"):
        vifit.fit(target, name, seed=0, steps=10, progress=False)
