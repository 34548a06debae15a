"""Normalizing-flow families: change of variables checked against jax.jacobian, identity start,
and the family contract (jit, vmap, registry settings)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vifit
from vifit.families import RealNVP, SplineFlow, get_family

D = 3
FLOWS = [RealNVP(layers=2, width=8), SplineFlow(layers=2, width=8, knots=5)]


def perturbed(family, key):
    """Flow parameters away from the identity start, so every coupling does something."""
    params = family.init(key, D)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    leaves = [x + 0.3 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    return jax.tree.unflatten(tree, leaves)


@pytest.mark.parametrize("family", FLOWS, ids=lambda f: f.name)
def test_each_coupling_log_det_matches_the_jacobian(family, x64):
    params = perturbed(family, jax.random.key(0))
    layers = family.bijection(params).bijection  # Scan over Chain([Coupling, Permute])
    x = jax.random.normal(jax.random.key(1), (4, D))

    @jax.jit
    def check(i, point):
        layer = jax.tree.map(lambda a: a[i] if isinstance(a, jax.Array) and a.ndim else a,
                             layers)
        y, log_det = layer.transform_and_log_det(point)
        jac = jax.jacobian(lambda u: layer.transform(u))(point)
        back, inv_log_det = layer.inverse_and_log_det(y)
        return log_det, jnp.linalg.slogdet(jac)[1], back, inv_log_det

    for i in range(family.layers):
        log_det, ref, back, inv_log_det = jax.vmap(check, in_axes=(None, 0))(i, x)
        np.testing.assert_allclose(log_det, ref, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(back, x, atol=1e-9)
        np.testing.assert_allclose(inv_log_det, -log_det, atol=1e-9)


@pytest.mark.parametrize("family", FLOWS, ids=lambda f: f.name)
def test_log_prob_is_the_change_of_variables_of_sample(family, x64):
    """log q(T(eps)) = log N(eps) - log|det dT/deps| with T the whole sampling map (couplings
    and the final affine layer), its Jacobian from jax.jacobian."""
    params = perturbed(family, jax.random.key(2))

    def sample_map(eps):
        bij = family.bijection(params)
        chol = jnp.tril(params["chol"], -1) + jnp.diag(jnp.exp(jnp.diag(params["chol"])))
        return params["loc"] + chol @ bij.transform(eps)

    @jax.jit
    @jax.vmap
    def check(e):
        z = sample_map(e)
        logdet = jnp.linalg.slogdet(jax.jacobian(sample_map)(e))[1]
        return family.log_prob(params, z), -0.5 * e @ e - 0.5 * D * jnp.log(2 * jnp.pi) - logdet

    got, expected = check(jax.random.normal(jax.random.key(3), (5, D)))
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    # sample() is that same map applied to standard-normal draws
    key = jax.random.key(4)
    drawn = family.sample(params, key, 5)
    eps_used = jax.random.normal(key, (5, D))
    np.testing.assert_allclose(drawn, jax.vmap(sample_map)(eps_used), atol=1e-9)


@pytest.mark.parametrize("family", FLOWS, ids=lambda f: f.name)
def test_a_new_flow_is_exactly_its_gaussian(family, x64):
    mean = jnp.array([1.0, -2.0, 0.5])
    a = jnp.array([[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [-0.3, 0.2, 0.7]])
    cov = a @ a.T
    params = family.from_gaussian(mean, cov)
    gauss = vifit.FullRank()
    gparams = gauss.from_gaussian(mean, cov)
    z = gauss.sample(gparams, jax.random.key(5), 50)
    np.testing.assert_allclose(family.batch_log_prob(params, z), gauss.batch_log_prob(gparams, z),
                               rtol=1e-10)


def test_flows_jit_and_vmap_over_params():
    family = FLOWS[1]  # the machinery (skeleton, partition) is shared by both flows
    keys = jax.random.split(jax.random.key(6), 3)
    batch = jax.tree.map(lambda *a: jnp.stack(a), *[perturbed(family, k) for k in keys])
    draws = jax.jit(jax.vmap(lambda p, k: family.sample(p, k, 7)))(batch, keys)
    lp = jax.jit(jax.vmap(family.batch_log_prob))(batch, draws)
    assert draws.shape == (3, 7, D) and lp.shape == (3, 7) and np.all(np.isfinite(lp))


def test_flow_settings_by_name():
    fam = get_family("spline:layers=6,width=16,knots=4,interval=3.5")
    assert isinstance(fam, SplineFlow) and (fam.layers, fam.width, fam.knots) == (6, 16, 4)
    assert fam.interval == 3.5
    with pytest.raises(vifit.ConfigError, match="has no setting colour"):
        get_family("realnvp:colour=blue")
    with pytest.raises(vifit.ConfigError, match="not key=value"):
        get_family("realnvp:layers")


@pytest.mark.parametrize("family", [RealNVP(), SplineFlow(knots=5), RealNVP(layers=3, depth=2)],
                         ids=["realnvp", "spline", "realnvp-deep"])
def test_the_shape_built_skeleton_is_flowjax_s_flow(family):
    """The skeleton made from shapes only (no XLA) has flowjax's structure, valid permutations,
    and, given the same arrays, computes what flowjax's own eager build computes."""
    import equinox as eqx

    from vifit.families.flows import _skeleton

    dim = 6
    skel, eager = _skeleton(family, dim), family._build(jax.random.key(5), dim)
    arrays = lambda t: jax.tree.leaves(eqx.filter(t, eqx.is_array))
    assert jax.tree.structure(skel) == jax.tree.structure(eager)
    assert [(a.shape, a.dtype) for a in arrays(skel)] == [(a.shape, a.dtype) for a in arrays(eager)]
    ints = [np.asarray(a) for a in arrays(skel) if jnp.issubdtype(a.dtype, jnp.integer)]
    assert ints, "the coupling flow has permutations"
    for perm, inv in zip(ints[::2], ints[1::2]):
        for p, q in zip(perm.reshape(-1, dim), inv.reshape(-1, dim)):
            assert sorted(p) == list(range(dim)) and np.array_equal(p[q], np.arange(dim))
    mixed = eqx.combine(eqx.filter(eager, eqx.is_array), eqx.partition(skel, eqx.is_array)[1])
    x = 0.7 * jax.random.normal(jax.random.key(2), (dim,))
    for a, b in zip(mixed.transform_and_log_det(x), eager.transform_and_log_det(x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(mixed.inverse_and_log_det(x), eager.inverse_and_log_det(x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
