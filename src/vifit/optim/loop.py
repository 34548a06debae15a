"""The stochastic fitting loop: one compiled step, scanned in chunks; Python only between chunks.

Stopping rule (documented for users in the README): the trace is cut into windows of
``window`` steps (one window per compiled chunk). After each window the mean objective of the
window is compared with the best window mean so far ("best" is the largest for a maximized
objective, the smallest for a minimized one such as CUBO: ``direction``); a window that does not
beat the best by more than ``tol`` nats is "stale". The fit has converged after ``patience`` stale windows in a
row, unless the last ``TREND_WINDOWS`` window means still rise significantly (``still_improving``:
a least-squares slope above ``tol`` per window and ``TREND_Z`` standard errors), in which case
it goes on. It also stops at ``max_steps``, or when every step of a window was rejected as
non-finite.
On convergence the returned parameters are the average of the last window's iterates
(Polyak-Ruppert averaging), which removes most of the optimizer's jitter at no cost.

Divergence: after each window a probe of 32 draws from q (inside the compiled chunk, from a key
folded off the loop's, so it changes nothing else) measures q's extent, ``max |z|`` per
coordinate. The fit stops with ``stop_reason="diverged"`` when that extent exceeds
``DIVERGED_SPREAD`` times (one plus) its size at the start, when a whole window is rejected as
non-finite after q had already grown ``OVERFLOW_SPREAD`` times, or when the window mean
objective improves on the first step's by more than ``OBJECTIVE_JUMP`` times (one plus) its
magnitude: a normalizable
density does not let q run off like that, an improper one (or one badly scaled for float32)
does, and its ELBO then grows without bound or drowns in noise, so that the plateau rule alone
would call it "converged".

Ctrl-C between or inside chunks stops the loop with ``stop_reason="interrupted"`` and the last
good state. With a checkpoint (``vifit.optim.resume``) the state is saved between chunks and the
loop resumes from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vifit.ahead import ready
from vifit.arrays import on_device
from vifit.estimators.base import Estimator, LogDensity
from vifit.freshness import kept_dict
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
    stop_reason: str  # "converged" | "max_steps" | "non-finite" | "diverged" | "interrupted"
    seconds: float
    message: str = ""  # why it stopped, when that needs saying (divergence)
    spread: np.ndarray | None = None  # (dim,) max |z| of the last probe's draws, per coordinate
    window_se: float = float("nan")  # standard error of the last window means (nats): noise


# A normalizable density keeps q within its own scale; growing 1e8 times past the extent q had
# at the start is beyond any posterior a float32 fit can represent faithfully (7
# significant digits), and is what an improper density does within a few thousand steps.
DIVERGED_SPREAD = 1e8
# A window of only non-finite steps after q grew this much is overflow, not a bad region.
OVERFLOW_SPREAD = 1e4
# An objective that improves on its starting value by this many times (1 + |start|) nats: the
# ELBO of an improper density (a flow's log q can fall without limit), or a log density whose
# scale float32 cannot resolve.
OBJECTIVE_JUMP = 1e8
PROBE_DRAWS = 32
_PROBE_SALT = 0x5EED


# What ``reused`` built, least recently used first (dropped by ``vifit.freshness.forget_all``).
_REUSED = kept_dict()
_REUSED_MAX = 32


def reused(build: Callable[..., Any], *args: Any, keep: bool = True) -> Any:
    """``build(*args)``, the same object again for equal hashable ``args`` (the last 32): a
    step, probe or chunk made again for a second fit of the same target and settings (auto's
    retry from Pathfinder's start, a refit with another seed) is then the same jitted function,
    and JAX's in-process cache skips tracing and compiling it. The least recently used goes
    first: evicting the oldest built dropped an optimizer a fit had just found (built by an
    earlier fit of the same settings) while the fit built its step, so a refit made a new
    optimizer, step and loop and compiled them again. ``vifit.freshness`` drops them
    all when the target's density now traces to another program (a global it reads was
    rebound). With ``keep=False`` (a minibatch fit, whose step holds its data: the store would
    keep them alive) or unhashable arguments (a callable module holding arrays) it builds
    afresh."""
    if not keep:
        return build(*args)
    key = (build, *args)
    try:
        hash(key)
    except TypeError:
        return build(*args)
    if key in _REUSED:
        _REUSED[key] = _REUSED.pop(key)  # now the most recently used
        return _REUSED[key]
    while len(_REUSED) >= _REUSED_MAX:
        _REUSED.pop(next(iter(_REUSED)))
    _REUSED[key] = build(*args)
    return _REUSED[key]


def make_probe(family: Family) -> Callable[[Params, Array], Array]:
    """``(params, key) -> (dim,)``: the largest |z| per coordinate among ``PROBE_DRAWS`` draws
    of q (inf where a draw is not finite)."""

    def probe(params: Params, key: Array) -> Array:
        z = family.sample(params, key, PROBE_DRAWS)
        return jnp.max(jnp.where(jnp.isfinite(z), jnp.abs(z), jnp.inf), axis=0)

    return probe


def no_rejections() -> Array:
    """A ``State.rejected`` of zero, placed without compiling (``jnp.zeros`` compiled a program
    of its own on a first run)."""
    return on_device(0, np.int32)


def _all_finite(tree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves))


def _where(cond: Array, a, b):
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def make_step(objective: Objective, estimator: Estimator, family: Family,
              log_density: LogDensity, optimizer: optax.GradientTransformation, draws: int
              ) -> Callable[..., tuple[State, StepInfo]]:
    """One optimizer step with the non-finite guard: a step whose objective, gradient or new
    parameters are not all finite is not taken, and the state stays at its last good value.

    ``log_density`` is a function of z, or an object whose ``at(x, shared)`` gives the step's
    density from the step's input ``x`` and what all steps share (``vifit.data.minibatch``:
    the minibatch and the data); the step is then ``step(state, x, shared)``."""

    batched = hasattr(log_density, "at")

    def step(state: State, x=None, shared=None) -> tuple[State, StepInfo]:
        key, sub = jax.random.split(state.key)
        density = log_density.at(x, shared) if batched else log_density
        grads, aux = estimator.loss_grad(objective, density, family, state.params, sub, draws)
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


def make_chunk(step: Callable[..., tuple[State, StepInfo]], length: int,
               probe: Callable[[Params, Array], Array] | None = None):
    """``(state, n_active, xs, shared) -> (state, mean params over the active steps, infos,
    spread)``, jitted; ``spread`` is ``(2, dim)``: ``probe(params, key)`` at the chunk's start
    and end (NaN without a probe). ``xs`` (leading axis ``length``) and ``shared`` are the
    steps' inputs for a batched step (see ``make_step``), None otherwise.

    The chunk always has ``length`` steps so it compiles once; steps past ``n_active`` are
    skipped with ``lax.cond`` (only the last chunk of a fit has any).
    """

    def chunk(state: State, n_active: Array, xs=None, shared=None):
        def body(carry, scanned):
            st, psum = carry
            i, x = scanned
            active = i < n_active
            st, info = jax.lax.cond(
                active,
                (lambda s: step(s, x, shared)) if xs is not None else step,
                lambda s: (s, StepInfo(jnp.asarray(jnp.nan, dtype=info_dtype), jnp.array(False))),
                st,
            )
            psum = jax.tree.map(lambda a, p: a + jnp.where(active, p, 0), psum, st.params)
            return (st, psum), info

        start = state
        info_dtype = jax.tree.leaves(state.params)[0].dtype
        zeros = jax.tree.map(jnp.zeros_like, state.params)
        (state, psum), infos = jax.lax.scan(body, (state, zeros), (jnp.arange(length), xs))
        mean_params = jax.tree.map(lambda s: s / jnp.maximum(n_active, 1), psum)
        if probe is None:
            spread = jnp.full((2, 1), jnp.nan)
        else:  # q's extent where the chunk started and where it ended
            pkey = jax.random.fold_in(start.key, _PROBE_SALT)
            spread = jnp.stack([probe(start.params, pkey), probe(state.params, pkey)])
        return state, mean_params, infos, spread

    return jax.jit(chunk)


def loop_chunk(step, window: int, probe=None, keep: bool = True):
    """The jitted chunk ``run_loop`` runs ``step`` in: ``make_chunk`` of ``window`` steps,
    ``reused``."""
    return reused(make_chunk, step, window, probe, keep=keep)


def first_chunk(step, state: State, config: LoopConfig, probe=None) -> tuple:
    """``(chunk, args)`` of the first call ``run_loop(state, step, config, probe=probe)``
    makes (without a feed), for ``vifit.ahead.compile_ahead``."""
    n_active = min(config.window, config.max_steps)
    return loop_chunk(step, config.window, probe), (state, jnp.asarray(n_active))


def run_loop(state: State, step, config: LoopConfig,
             on_window: Callable[[int, float, float], None] | None = None, *,
             probe: Callable[[Params, Array], Array] | None = None,
             checkpoint=None, feed=None, family: Family | None = None) -> LoopResult:
    """Run ``step`` until the stopping rule fires. ``on_window(steps_done, window_mean,
    steps_per_second)`` is called between chunks (for progress bars). ``probe`` (see
    ``make_probe``) enables divergence detection; ``checkpoint`` (a
    ``vifit.optim.resume.FitCheckpoint``) saves the state between chunks and resumes from it.
    ``feed`` (a ``vifit.data.minibatch.Minibatch``, with the ``family``) gives a batched step
    its inputs, chunk by chunk, and may refresh what the steps share between chunks."""
    chunk = loop_chunk(step, config.window, probe, keep=feed is None)
    t0 = time.perf_counter()
    trace: list[np.ndarray] = []
    done, stale, best, spread0, prior_seconds = 0, 0, -np.inf, None, 0.0
    stop_reason, message = "max_steps", ""
    mean_params = state.params
    spread = None
    means: list[float] = []  # window means, signed so that larger is better
    ses: list[float] = []  # their standard errors, from the scatter of the window's steps
    first = None  # the objective at the first finite step: where the fit started
    if checkpoint is not None:
        saved = checkpoint.load(state)
        if saved is not None:
            meta = saved.meta
            if meta.get("finished"):
                return LoopResult(params=saved.params, trace=saved.trace, steps=meta["done"],
                                  rejected=meta["rejected"], stop_reason=meta["stop_reason"],
                                  seconds=meta["seconds"], message=meta.get("message", ""),
                                  spread=_maybe_array(meta.get("spread")))
            state, mean_params = saved.state, saved.params
            trace = [saved.trace]
            done, stale, best = meta["done"], meta["stale"], meta["best"]
            means = list(meta.get("means", []))
            ses = list(meta.get("ses", [0.0] * len(means)))
            spread0, prior_seconds = meta.get("spread0"), meta["seconds"]
            first = meta.get("first")
            spread0 = None if spread0 is None else float(spread0)
    last_save = time.perf_counter()
    if feed is not None:
        state = feed.prepare(state)

    def save(finished: bool, params) -> None:
        if checkpoint is None:
            return
        meta = {"done": done, "stale": stale, "best": best, "spread0": spread0, "means": means,
                "ses": ses,
                "first": first,
                "seconds": prior_seconds + time.perf_counter() - t0, "finished": finished,
                "stop_reason": stop_reason, "rejected": int(state.rejected),
                "message": message,
                "spread": None if spread is None else [float(v) for v in spread]}
        checkpoint.save(state, params, np.concatenate(trace) if trace else np.zeros(0), meta)

    try:
        # Inside the try: Ctrl-C while the worker compiles the chunk is an interrupt of the
        # fit, as it is while this thread compiles it.
        ready(chunk)
        while done < config.max_steps:
            n_active = min(config.window, config.max_steps - done)
            t_chunk = time.perf_counter()
            if feed is None:
                new_state, new_mean, infos, new_spread = chunk(state, jnp.asarray(n_active))
            else:
                feed.before_chunk(family, state.params)
                new_state, new_mean, infos, new_spread = chunk(
                    state, jnp.asarray(n_active), feed.inputs(done, n_active, config.window),
                    feed.aux)
            values = np.asarray(infos.objective)[:n_active]
            # Only now, with the chunk's results in hand, does the loop move on: an interrupt
            # inside the chunk leaves the previous state.
            state, mean_params = new_state, new_mean
            rate = n_active / max(time.perf_counter() - t_chunk, 1e-9)
            trace.append(values)
            done += n_active
            finite = values[np.isfinite(values)]
            extent = None
            if probe is not None:
                both = np.asarray(new_spread, dtype=np.float64)  # indexed here, not by XLA
                spread = both[1]
                extent = float(np.max(spread))
                if spread0 is None:  # q's extent at the very start of the fit
                    spread0 = float(np.max(both[0]))
            if first is None and finite.size:
                first = float(finite[0])
            if finite.size == 0:
                grown = (extent is not None and spread0 is not None
                         and not extent < OVERFLOW_SPREAD * (1.0 + spread0))
                stop_reason = "diverged" if grown else "non-finite"
                if grown:
                    message = _diverged_message(done, extent, spread0, overflow=True)
                break
            window_mean = float(finite.mean())
            if on_window is not None:
                on_window(done, window_mean, rate)
            if (extent is not None and spread0 is not None
                    and not extent < DIVERGED_SPREAD * (1.0 + spread0)):
                stop_reason = "diverged"
                message = _diverged_message(done, extent, spread0, overflow=False)
                break
            gain = config.direction * (window_mean - first)
            if not gain < OBJECTIVE_JUMP * (1.0 + abs(first)):
                stop_reason = "diverged"
                message = _diverged_message(done, extent, spread0, overflow=False,
                                            gain=(first, window_mean))
                break
            means.append(config.direction * window_mean)
            ses.append(float(finite.std(ddof=1) / np.sqrt(finite.size)) if finite.size > 1
                       else 0.0)
            if config.direction * window_mean > best + config.tol:
                best, stale = config.direction * window_mean, 0
            else:
                stale += 1
                if stale >= config.patience and not still_improving(means, config.tol) \
                        and not noisy_rise(means, ses, config.patience, config.tol):
                    stop_reason = "converged"
                    break
            if checkpoint is not None and time.perf_counter() - last_save >= checkpoint.every:
                save(False, mean_params)
                last_save = time.perf_counter()
    except KeyboardInterrupt:
        stop_reason = "interrupted"
        message = f"interrupted by the user after {done} steps; the last good state is kept"
    params = mean_params if stop_reason == "converged" else state.params
    if feed is not None:
        params = feed.local(params)
    if stop_reason == "interrupted":
        save(False, mean_params)  # a rerun resumes from here
    else:
        save(True, params)
    return LoopResult(
        params=params,
        window_se=float(np.median(ses[-config.patience:])) if ses else float("nan"),
        trace=np.concatenate(trace) if trace else np.zeros(0),
        steps=done,
        rejected=int(state.rejected),
        stop_reason=stop_reason,
        seconds=prior_seconds + time.perf_counter() - t0,
        message=message,
        spread=spread,
    )


TREND_WINDOWS = 6  # window means in the trend test
TREND_Z = 2.0  # one-sided t-statistic above which the slope counts as real


def still_improving(means: list[float], tol: float, n: int = TREND_WINDOWS) -> bool:
    """Whether the last ``n`` window means (larger is better) still rise: a least-squares slope
    over them that is both significant (t > ``TREND_Z``, from the scatter about the line) and
    worth more than ``tol`` per window. Noisy window means can fail to set a new best for
    several windows while the objective is still climbing (hard geometry, or a density whose
    ELBO grows without bound); the plateau rule alone would call that converged."""
    if len(means) < n:
        return False
    y = np.asarray(means[-n:], dtype=np.float64)
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    slope = float(x @ (y - y.mean()) / (x @ x))
    resid = y - y.mean() - slope * x
    se = float(np.sqrt(resid @ resid / (n - 2) / (x @ x)))
    return slope > tol and slope > TREND_Z * se


# Window means noisier than this (standard error, nats) make the trend test look further back.
NOISY_SE = 1.0


def noisy_rise(means: list[float], ses: list[float], patience: int, tol: float) -> bool:
    """Whether the window means still rise, judged against their own standard errors (from
    each window's scatter): a weighted least-squares slope over the last ``2 * patience``
    windows, or ``4 * patience`` when they are noisy (standard error above ``NOISY_SE``),
    that exceeds ``tol`` per window and ``TREND_Z`` of its standard error. A noisy fit with
    fewer windows than that is taken as still rising.

    With noisy windows (a minibatch fit without a control variate) the best window so far is
    inflated by noise, so later windows fail to beat it while the objective still climbs; a
    slope over many windows sees a rise that no single window shows."""
    if not means:
        return False
    noisy = np.median(np.asarray(ses[-patience:], dtype=np.float64)) > NOISY_SE
    n = 4 * patience if noisy else 2 * patience
    if len(means) < n:
        # Too few noisy windows to tell a plateau from a slow climb: go on.
        return bool(noisy)
    y = np.asarray(means[-n:], dtype=np.float64)
    var = np.maximum(np.asarray(ses[-n:], dtype=np.float64) ** 2, 1e-300)
    w = 1.0 / var
    x = np.arange(n, dtype=np.float64)
    xm = (w @ x) / w.sum()
    sxx = w @ (x - xm) ** 2
    slope = float(w @ ((x - xm) * (y - (w @ y) / w.sum())) / sxx)
    return slope > tol and slope > TREND_Z * float(np.sqrt(1.0 / sxx))


def _maybe_array(x) -> np.ndarray | None:
    return None if x is None else np.asarray(x, dtype=np.float64)


def _diverged_message(done: int, extent: float | None, spread0: float | None, overflow: bool,
                      gain: tuple[float, float] | None = None) -> str:
    if gain is not None:
        what = f"the objective went from {gain[0]:.4g} to {gain[1]:.4g} nats"
    elif overflow:
        what = (f"q's draws overflowed (every step non-finite) after growing to "
                f"|z| = {extent:.3g} from {spread0:.3g} at the start")
    else:
        what = f"q's draws reached |z| = {extent:.3g}, from {spread0:.3g} at the start"
    return (f"the fit diverged: {what} in {done} steps. The density looks improper (not normalizable: it does not fall off in "
            "some direction) or badly scaled. Check for a missing prior on a parameter, a "
            "missing log-Jacobian of a transform, a sign error (log p must decrease away from "
            "the posterior), or rescale the parameters to order 1.")
