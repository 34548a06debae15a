"""from_numpyro: NumPyro's own potential energy, constraint transforms and site names."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from jax.flatten_util import ravel_pytree
from numpyro.infer import init_to_uniform
from numpyro.infer.util import potential_energy

import vifit
from vifit.catalog import eight_schools_centered, gp_poisson
from vifit.examples import eight_schools


def constrained_zoo(y):
    """One site per kind of support: real, positive, interval, simplex, a matrix of reals,
    and a deterministic."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    s = numpyro.sample("s", dist.LogNormal(0.0, 0.5))
    r = numpyro.sample("r", dist.Beta(2.0, 3.0))
    w = numpyro.sample("w", dist.Dirichlet(jnp.ones(3)))
    m = numpyro.sample("m", dist.Normal(0.0, 1.0).expand([2, 2]).to_event(2))
    numpyro.deterministic("scaled", s * w)
    loc = mu + r * jnp.sum(m) + w @ jnp.arange(3.0)
    numpyro.sample("y", dist.Normal(loc, s), obs=y)


ZOO_Y = jnp.array([0.3, -0.2, 1.1])


def noncentered(sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", sigma.shape[0]):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu + tau * theta_tilde, sigma), obs=y)


def check_potential(target, model, args, kwargs, seed):
    """log_density(z) = -potential_energy(z) at random z: NumPyro's public function, called
    directly, in float64, so the two agree to rounding."""
    _, unravel = ravel_pytree({k: jnp.zeros(s) for k, s in target.site_shapes.items()})
    zs = 1.5 * jax.random.normal(jax.random.key(seed), (5, target.dim))
    expected = jax.jit(jax.vmap(lambda z: -potential_energy(model, args, kwargs, unravel(z))))(zs)
    np.testing.assert_allclose(target.batch_log_density(zs), expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["eight_schools_centered", "gp_poisson"])
def test_log_density_is_minus_numpyros_potential_energy(name, x64):
    model, args, kwargs = {
        "eight_schools_centered": (eight_schools_centered.model, (eight_schools_centered.SIGMA,),
                                   {"y": eight_schools_centered.Y}),
        "gp_poisson": (gp_poisson.model, (gp_poisson.X,), {"k": gp_poisson.K}),
    }[name]
    target = vifit.from_numpyro(model, *args, **kwargs)
    check_potential(target, model, args, kwargs, seed=1)


def test_constrained_sites_names_and_round_trip(x64):
    # init_to_uniform: the adapter takes any NumPyro strategy (and this one compiles no prior
    # samplers, which keeps the test cheap).
    target = vifit.from_numpyro(constrained_zoo, ZOO_Y, init_strategy=init_to_uniform)
    check_potential(target, constrained_zoo, (ZOO_Y,), {}, seed=2)
    # Unconstrained shapes: a 3-simplex has 2 free coordinates; sites in sorted name order.
    assert target.site_shapes == {"m": (2, 2), "mu": (), "r": (), "s": (), "w": (2,)}
    assert target.param_names == ("m[0,0]", "m[0,1]", "m[1,0]", "m[1,1]", "mu", "r", "s",
                                  "w[0]", "w[1]")
    assert target.source == "numpyro"
    zs = jax.random.normal(jax.random.key(3), (5, target.dim))
    values = jax.vmap(target.constrain)(zs)
    assert set(values) == {"m", "mu", "r", "s", "w", "scaled"}
    assert values["w"].shape == (5, 3) and values["m"].shape == (5, 2, 2)
    np.testing.assert_allclose(jnp.sum(values["w"], axis=1), 1.0, rtol=1e-12)
    assert np.all((values["r"] > 0) & (values["r"] < 1)) and np.all(values["s"] > 0)
    np.testing.assert_allclose(values["scaled"], values["s"][:, None] * values["w"], rtol=1e-12)
    back = jax.vmap(target.unconstrain)({k: v for k, v in values.items() if k != "scaled"})
    np.testing.assert_allclose(back, zs, rtol=1e-9, atol=1e-9)
    names, _ = target.constrained_names()
    assert names[:4] == ["m[0,0]", "m[0,1]", "m[1,0]", "m[1,1]"] and "w[2]" in names
    assert "scaled[0]" in names


def test_equals_the_hand_written_eight_schools(x64):
    """An independent check of the transform and its Jacobian: the hand-written non-centred
    density works on log tau and adds log tau itself; NumPyro's sites sort as mu, tau,
    theta_tilde, the hand-written order."""
    target = vifit.from_numpyro(noncentered, eight_schools.SIGMA, y=eight_schools.Y)
    assert target.param_names == ("mu", "tau") + tuple(f"theta_tilde[{j}]" for j in range(8))
    zs = 2.0 * jax.random.normal(jax.random.key(4), (5, 10))
    # The example module's data are float32 constants: agreement to float32 rounding of data.
    np.testing.assert_allclose(target.batch_log_density(zs),
                               jax.vmap(eight_schools.log_density)(zs), rtol=1e-6)


def test_discrete_and_param_sites_are_refused():
    def discrete():
        numpyro.sample("k", dist.Poisson(3.0))

    def with_param():
        numpyro.param("p", 1.0)
        numpyro.sample("x", dist.Normal())

    with pytest.raises(vifit.TargetError, match="discrete latent sites \\['k'\\]"):
        vifit.from_numpyro(discrete)
    with pytest.raises(vifit.TargetError, match="numpyro.param sites \\['p'\\]"):
        vifit.from_numpyro(with_param)
    with pytest.raises(vifit.TargetError, match="running the NumPyro model"):
        vifit.from_numpyro(noncentered)  # sigma missing
