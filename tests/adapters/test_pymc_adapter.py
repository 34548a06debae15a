"""from_pymc: PyMC's own JAX log density, agreeing with the NumPyro form of the same model."""

import sys

import jax
import numpy as np
import pytest

import vifit
from vifit.catalog import eight_schools_centered


def pymc_eight_schools(pm):
    """The centred eight schools as PyMC's documentation writes it, with a Deterministic."""
    with pm.Model(coords={"school": list("ABCDEFGH")}) as model:
        mu = pm.Normal("mu", mu=0.0, sigma=5.0)
        tau = pm.HalfCauchy("tau", beta=5.0)
        theta = pm.Normal("theta", mu=mu, sigma=tau, dims="school")
        pm.Deterministic("shrinkage", tau / (tau + 10.0))
        pm.Normal("y", mu=theta, sigma=np.asarray(eight_schools_centered.SIGMA),
                  observed=np.asarray(eight_schools_centered.Y), dims="school")
    return model


def test_pymc_and_numpyro_agree_up_to_a_constant(x64):
    pm = pytest.importorskip("pymc")
    target = vifit.from_pymc(pymc_eight_schools(pm))
    other = vifit.from_numpyro(eight_schools_centered.model, eight_schools_centered.SIGMA,
                               y=eight_schools_centered.Y)
    assert target.source == "pymc" and target.dim == other.dim == 10
    assert target.param_names == ("mu", "tau") + tuple(f"theta[{j}]" for j in range(8))
    zs = 1.5 * jax.random.normal(jax.random.key(0), (6, 10))
    # Map each point through the constrained values, so the check does not rely on the two
    # libraries ordering the coordinates alike. Both map tau > 0 by log, so the log densities
    # (Jacobians included) must differ by one constant.
    values = jax.vmap(other.constrain)(zs)
    z_pymc = jax.vmap(target.unconstrain)(values)
    diff = np.asarray(target.batch_log_density(z_pymc) - other.batch_log_density(zs))
    assert np.ptp(diff) < 1e-9, diff


def test_pymc_names_constrain_and_round_trip(x64):
    pm = pytest.importorskip("pymc")
    target = vifit.from_pymc(pymc_eight_schools(pm), target_name="schools")
    assert target.name == "schools"
    zs = jax.random.normal(jax.random.key(1), (4, target.dim))
    values = jax.vmap(target.constrain)(zs)
    assert set(values) == {"mu", "tau", "theta", "shrinkage"}
    np.testing.assert_allclose(values["tau"], np.exp(zs[:, 1]), rtol=1e-12)
    np.testing.assert_allclose(values["shrinkage"], values["tau"] / (values["tau"] + 10.0))
    back = jax.vmap(target.unconstrain)({k: values[k] for k in ("mu", "tau", "theta")})
    np.testing.assert_allclose(back, zs, rtol=1e-10, atol=1e-10)
    names, _ = target.constrained_names()
    # Dicts flatten in sorted key order (JAX pytrees).
    assert names == ["mu", "shrinkage", "tau"] + [f"theta[{j}]" for j in range(8)]


def test_without_pymc_the_message_says_how_to_install(monkeypatch):
    from vifit.adapters import pymc as adapter

    monkeypatch.setitem(sys.modules, "pymc", None)  # import pymc now raises ImportError
    with pytest.raises(vifit.ConfigError, match=r'pip install "vifit\[pymc\]"'):
        adapter.from_pymc(object())
