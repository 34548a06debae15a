"""The stochastic fitting loop: one compiled step, scanned in chunks; Python only between chunks.

Stopping rule (documented for users in the README): the trace is cut into windows of
``window`` steps (one window per compiled chunk). After each window the mean objective of the
window is compared with the best window mean so far ("best" is the largest for a maximized
objective, the smallest for a minimized one such as CUBO: ``direction``); a window that does not
beat the best by more than ``tol`` nats is "stale". The fit has converged after ``patience`` stale windows in a
row. It also stops at ``max_steps``, or when every step of a window was rejected as non-finite.
On convergence the returned parameters are the average of the last window's iterates
(Polyak-Ruppert averaging), which removes most of the optimizer's jitter at no cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vifit.estimators.base import Estimator, LogDensity
from vifit.families.base import Family, Params
from vifit.objectives.base import Array, Objective


class State(NamedTuple):
    params: Params  # pytree of float arrays: the variational parameters
    opt_state: optax.OptState
    key: Array  # PRNG key for the next step
    rejected: Array  # () int32: steps skipped because something was not finite


class StepInfo(NamedTuple):
    objective: Array  # () float: the objective at this step's draws (nan when not taken)
    accepted: Array  # () bool


class LoopConfig(NamedTuple):
    max_steps: int = 10_000
    draws: int = 16
    window: int = 100
    patience: int = 3
    tol: float = 1e-3
    direction: int = 1  # +1: the objective is maximized; -1: minimized (upper bounds)


class LoopResult(NamedTuple):
    params: Params
    trace: np.ndarray  # (steps,) objective per step; nan where the step was rejected
    steps: int
    rejected: int
    stop_reason: str  # "converged" | "max_steps" | "non-finite"
    seconds: float


def _all_finite(tree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves))


def _where(cond: Array, a, b):
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def make_step(objective: Objective, estimator: Estimator, family: Family,
              log_density: LogDensity, optimizer: optax.GradientTransformation, draws: int
              ) -> Callable[[State], tuple[State, StepInfo]]:
    """One optimizer step with the non-finite guard: a step whose objective, gradient or new
    parameters are not all finite is not taken, and the state stays at its last good value."""

    def step(state: State) -> tuple[State, StepInfo]:
        key, sub = jax.random.split(state.key)
        grads, aux = estimator.loss_grad(objective, log_density, family, state.params, sub, draws)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(aux.objective) & _all_finite(grads) & _all_finite(params)
        new = State(
            params=_where(ok, params, state.params),
            opt_state=_where(ok, opt_state, state.opt_state),
            key=key,
            rejected=state.rejected + (~ok).astype(jnp.int32),
        )
        return new, StepInfo(jnp.where(ok, aux.objective, jnp.nan), ok)

    return step


def make_chunk(step: Callable[[State], tuple[State, StepInfo]], length: int):
    """``(state, n_active) -> (state, mean params over the active steps, infos)``, jitted.

    The chunk always has ``length`` steps so it compiles once; steps past ``n_active`` are
    skipped with ``lax.cond`` (only the last chunk of a fit has any).
    """

    def chunk(state: State, n_active: Array):
        def body(carry, i):
            st, psum = carry
            active = i < n_active
            st, info = jax.lax.cond(
                active, step,
                lambda s: (s, StepInfo(jnp.asarray(jnp.nan, dtype=info_dtype), jnp.array(False))),
                st,
            )
            psum = jax.tree.map(lambda a, p: a + jnp.where(active, p, 0), psum, st.params)
            return (st, psum), info

        info_dtype = jax.tree.leaves(state.params)[0].dtype
        zeros = jax.tree.map(jnp.zeros_like, state.params)
        (state, psum), infos = jax.lax.scan(body, (state, zeros), jnp.arange(length))
        mean_params = jax.tree.map(lambda s: s / jnp.maximum(n_active, 1), psum)
        return state, mean_params, infos

    return jax.jit(chunk)


def run_loop(state: State, step, config: LoopConfig,
             on_window: Callable[[int, float, float], None] | None = None) -> LoopResult:
    """Run ``step`` until the stopping rule fires. ``on_window(steps_done, window_mean,
    steps_per_second)`` is called between chunks (for progress bars)."""
    chunk = make_chunk(step, config.window)
    t0 = time.perf_counter()
    trace: list[np.ndarray] = []
    done, stale, best = 0, 0, -np.inf
    stop_reason = "max_steps"
    mean_params = state.params
    while done < config.max_steps:
        n_active = min(config.window, config.max_steps - done)
        t_chunk = time.perf_counter()
        state, mean_params, infos = chunk(state, jnp.asarray(n_active))
        values = np.asarray(infos.objective)[:n_active]
        rate = n_active / max(time.perf_counter() - t_chunk, 1e-9)
        trace.append(values)
        done += n_active
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            stop_reason = "non-finite"
            break
        window_mean = float(finite.mean())
        if on_window is not None:
            on_window(done, window_mean, rate)
        if config.direction * window_mean > best + config.tol:
            best, stale = config.direction * window_mean, 0
        else:
            stale += 1
            if stale >= config.patience:
                stop_reason = "converged"
                break
    params = mean_params if stop_reason == "converged" else state.params
    return LoopResult(
        params=params,
        trace=np.concatenate(trace) if trace else np.zeros(0),
        steps=done,
        rejected=int(state.rejected),
        stop_reason=stop_reason,
        seconds=time.perf_counter() - t0,
    )
