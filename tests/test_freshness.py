"""Programs kept from fit to fit (vifit.freshness): a refit compiles no loop again, and a
density whose globals were rebound is never fitted with the old values."""

import math

import jax.monitoring
import jax.numpy as jnp
import numpy as np

import vifit
from conftest import z_bound
from vifit import ahead

_COMPILED: list[str] = []


def _listen(event, duration, **kwargs):
    if event.endswith("backend_compile_duration"):
        _COMPILED.append(str(kwargs.get("fun_name")))


jax.monitoring.register_event_duration_secs_listener(_listen)

mu = np.array([1.0, 2.0])


def log_density(z):  # reads the module's `mu` when traced
    return -0.5 * jnp.sum((z - mu) ** 2)


def test_a_full_store_keeps_what_the_fit_in_progress_found():
    # An earlier fit with the same optimizer settings leaves that optimizer in the store;
    # filled up by other fits since, the store must evict something else than the optimizer
    # this fit has just taken from it (it evicted the oldest: the refit below compiled its
    # optimizer's init and its loop again, seen in CI).
    from vifit.optim.loop import _REUSED, _REUSED_MAX, reused

    vifit.fit(vifit.Target(lambda z: -0.5 * jnp.sum((z - 3.0) ** 2), dim=2), "fullrank",
              seed=0, progress=False)
    filler = 0
    while len(_REUSED) < _REUSED_MAX:
        reused(lambda x: x, ("filler", filler))
        filler += 1
    target = vifit.Target(log_density, dim=2)
    vifit.fit(target, "fullrank", seed=0, progress=False)
    ahead.shutdown()  # nothing compiled ahead by an earlier fit lands in the count below
    _COMPILED.clear()
    vifit.fit(target, "fullrank", seed=1, progress=False)
    assert "jit(chunk)" not in _COMPILED and "jit(init_fn)" not in _COMPILED


def test_a_refit_reuses_the_loop_and_a_rebound_global_is_seen():
    global mu
    target = vifit.Target(log_density, dim=2)
    first = vifit.fit(target, "fullrank", seed=0, progress=False)
    ahead.shutdown()
    _COMPILED.clear()
    again = vifit.fit(target, "fullrank", seed=1, progress=False)
    assert "jit(chunk)" not in _COMPILED  # the same loop, compiled once
    assert np.allclose(first.mean(), [1.0, 2.0], atol=0.1)
    assert np.allclose(again.mean(), [1.0, 2.0], atol=0.1)

    mu = np.array([10.0, 20.0])  # the user rebinds the data between two fits
    try:
        moved = vifit.fit(target, "fullrank", seed=1, progress=False)
    finally:
        mu = np.array([1.0, 2.0])
    # kept programs would have fitted (and scored) the old density: mean (1, 2)
    assert np.allclose(moved.mean(), [10.0, 20.0], atol=0.1)
    log_z = math.log(2 * math.pi)  # N(mu, I) in d = 2, unnormalized by (2 pi)^-1
    assert abs(moved.log_z - log_z) < z_bound(1e-3) * moved.log_z_se + 1e-4
    assert moved.elbo < log_z + z_bound(1e-3) * moved.elbo_se
