"""The stopping rule when window means are noisy (a minibatch fit without a control variate):
it must not stop while the objective still climbs, nor run on once it is flat."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vifit.optim import loop as L


def _run(seed: int, rise_per_window: float, noise: float, rise_until: int):
    """The loop on a synthetic objective: linear climb of ``rise_per_window`` nats per
    100-step window until step ``rise_until``, flat after, plus N(0, noise^2) per step."""
    def step(state):
        key, sub = jax.random.split(state.key)
        t = state.opt_state  # the step counter
        value = (rise_per_window / 100 * jnp.minimum(t, rise_until)
                 + noise * jax.random.normal(sub))
        return L.State(state.params, t + 1.0, key, state.rejected), L.StepInfo(value,
                                                                              jnp.array(True))

    state = L.State({"a": jnp.zeros(1)}, jnp.zeros(()), jax.random.key(seed),
                    jnp.zeros((), jnp.int32))
    return L.run_loop(state, step, L.LoopConfig(max_steps=50_000, window=100, patience=3,
                                                tol=1e-3))


def test_noisy_climb_is_not_taken_for_a_plateau():
    # 15 nats per window under a window standard error of 30: single windows often fail to
    # beat the (noise-inflated) best three times running, which stopped the old rule after
    # 500-5000 steps; the slope over 12 windows is 6 of its standard errors.
    steps = np.array([_run(seed, 15.0, 300.0, 6000).steps for seed in range(8)])
    assert np.all(steps > 6000), steps
    # ...and once flat it stops: the 12-window slope needs ~12 windows to forget the climb.
    assert np.all(steps < 12_000), steps


def test_noisy_flat_objective_stops():
    res = _run(0, 0.0, 300.0, 0)
    assert res.stop_reason == "converged" and res.steps < 5000
    assert res.window_se > 10  # the loop reports how noisy its windows were
