import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vifit
from vifit.errors import TargetError


def good(z):
    return -0.5 * jnp.sum(z**2)


def test_dim_or_init_define_the_start():
    assert vifit.Target(good, dim=3).init.shape == (3,)
    t = vifit.Target(good, init=[1.0, 2.0], param_names=["a", "b"])
    assert t.dim == 2 and t.param_names == ("a", "b")
    np.testing.assert_allclose(t.init, [1.0, 2.0])
    assert t.constrain(jnp.array([3.0, 4.0])) == {"a": 3.0, "b": 4.0}


@pytest.mark.parametrize(
    "kwargs, fn, message",
    [
        ({}, good, "either dim"),
        ({"dim": 0}, good, "positive integer"),
        ({"init": np.zeros((2, 2))}, good, "flat vector"),
        ({"dim": 3, "init": np.zeros(2)}, good, "make them agree"),
        ({"dim": 2, "param_names": ["a"]}, good, "one name per coordinate"),
        ({"dim": 2}, lambda z: z**2, "must return a scalar"),
        ({"dim": 2}, lambda z: jnp.log(z[0]), "must be finite"),
        ({"dim": 2}, lambda z: jnp.sum(jnp.sqrt(jnp.abs(z))), "gradient of log_density is not finite"),
        ({"dim": 2}, lambda z: z[5] + undefined_name, "failed at the initial point"),  # noqa: F821
    ],
)
def test_bad_targets_raise_actionable_errors(kwargs, fn, message):
    with pytest.raises(TargetError, match=message):
        vifit.Target(fn, **kwargs)


def test_non_callable_is_refused():
    with pytest.raises(TargetError, match="must be a function"):
        vifit.Target(3.0, dim=1)


def test_gradient_free_target_skips_the_gradient_check():
    # sqrt(|z|) has an infinite gradient at 0; declared non-differentiable it is accepted.
    t = vifit.Target(lambda z: -jnp.sum(jnp.sqrt(jnp.abs(z))), dim=2, differentiable=False)
    assert t.dim == 2


def test_fit_refuses_pathwise_estimators_on_gradient_free_targets():
    t = vifit.Target(lambda z: -jnp.sum(jnp.abs(z)), dim=2, differentiable=False)
    with pytest.raises(vifit.ConfigError, match="estimator='score'"):
        vifit.fit(t, estimator="reparam", steps=10, progress=False)


def test_python_control_flow_on_z_is_caught_before_fitting():
    def branchy(z):
        return -jnp.sum(z**2) if float(z[0]) > 0 else -jnp.sum(z**2) - 1.0

    with pytest.raises(TargetError, match="jax.vmap"):
        vifit.Target(branchy, dim=2)


def test_batch_constrain_keeps_the_models_order_and_values():
    """The constrained parameters come out in the model's own order (not JAX's sorted dict
    keys: 'z10' before 'z2'), and the jitted batch helpers agree with constrain row by row."""
    def constrain(z):
        return {"z2": z[0], "sigma": jnp.exp(z[1]), "z10": z[2:4]}

    target = vifit.Target(lambda z: -0.5 * jnp.sum(z**2), dim=4, constrain=constrain)
    assert target.constrained_keys() == ["z2", "sigma", "z10"]
    names, flat = target.constrained_names()
    assert names == ["z2", "sigma", "z10[0]", "z10[1]"]
    z = jax.random.normal(jax.random.key(0), (5, 4))
    batch = target.batch_constrain(z)
    for i in range(5):
        row = constrain(z[i])
        for k in row:
            np.testing.assert_allclose(batch[k][i], row[k], rtol=1e-6)
        np.testing.assert_allclose(target.batch_flat(z)[i], flat(z[i]), rtol=1e-6)
    result = vifit.fit(target, "meanfield", steps=200, progress=False)
    assert list(result.summary().index) == names
    assert list(result.sample(0, 10)) == ["z2", "sigma", "z10"]
