"""auto on minibatches still looks for separated modes: a data posterior with two modes far
apart on q's scale (y ~ N(z^2, 1): z and -z fit alike) is not called good."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import vifit


def test_two_mirror_modes_of_a_data_posterior_are_found():
    rng = np.random.default_rng(0)
    y = (1.0 + rng.normal(size=50_000)).astype(np.float32)
    target = vifit.DataTarget(lambda z: -0.5 * jnp.sum(z**2),
                              lambda z, b: -0.5 * (b["y"] - z[0] ** 2) ** 2, {"y": y}, dim=1)
    res = vifit.fit(target, "auto", progress=False)
    assert res.info["minibatch"]["batch_size"] == 1024
    modes = res.info["modes"]
    # the modes at +-1 are ~900 of q's sds apart; q covers one, half the mass is missed
    assert modes["found"] == 2 and modes["covered_by_q"] == 1
    assert abs(modes["missed_mass_fraction"] - 0.5) < 0.01
    assert res.verdict.label == "not reliable"


def test_one_mode_data_posterior_stays_good():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30_000, 2)).astype(np.float32)
    y = (x @ np.array([1.0, -1.0]) + rng.normal(size=30_000)).astype(np.float32)
    target = vifit.DataTarget(lambda z: -0.5 * jnp.sum(z**2),
                              lambda z, b: -0.5 * (b["y"] - b["x"] @ z) ** 2,
                              {"x": x, "y": y}, dim=2)
    res = vifit.fit(target, "auto", progress=False)
    assert res.info["modes"]["found"] == 1
    assert res.verdict.label == "good"
