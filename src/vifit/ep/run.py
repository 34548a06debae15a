"""The EP driver: compiled sweeps, Python between sweeps for convergence and oscillation.

Stopping rule. After each sweep, the largest relative change any valid site asked for,
max_i max(|tau_i' - tau_i| / (1 + |tau_i|), |nu_i' - nu_i| / (1 + |nu_i|)), measured on the
proposal before damping (so damping does not fake convergence), is compared with ``tol``: at
or below it, EP has converged. It also stops after ``max_sweeps``: it never hangs.

Oscillation. If ``patience`` sweeps in a row fail to bring that change below its best value
so far, EP is oscillating (or creeping): the step 1 - damping is halved, damping thereby
raised, and a warning says so; at most until damping reaches ``max_damping``.
"""

from __future__ import annotations

import time
import warnings
from functools import partial

import jax
import numpy as np

from vifit.ep.core import EPState, Problem, init_state, parallel_sweep, sequential_sweep
from vifit.ep.model import Factorized
from vifit.ep.result import EPResult
from vifit.errors import ConfigError

_SWEEPS = {"sequential": sequential_sweep, "parallel": parallel_sweep}


class EPWarning(UserWarning):
    """EP oscillated, did not converge, or ended with an improper cavity."""


def _compiled(model: Factorized, schedule: str, clip: bool):
    """The jitted ``sweep(state, step)`` for this model, cached on it so a second fit of the
    same model does not compile again. One program per fit: the sweep also returns log Z_EP
    of the state it started from, and a sweep with step 0 gives the final log Z."""
    cache = model.__dict__.setdefault("_ep_compiled", {})
    key = (schedule, clip, jax.config.jax_enable_x64)
    if key not in cache:
        problem = Problem(model.proj, model.offset, model.data)
        cache[key] = (problem, jax.jit(partial(_SWEEPS[schedule], model.term, problem, clip=clip)))
    return cache[key]


def fit(model: Factorized, *, schedule: str = "sequential", damping: float = 0.0,
        tol: float = 1e-4, max_sweeps: int = 200, patience: int = 5, max_damping: float = 0.99,
        negative: str = "allow", init: EPState | None = None) -> EPResult:
    """Expectation propagation on a factorized model: a Gaussian q(z) whose sites match the
    moments of each tilted distribution, and the EP estimate of log Z.

    Args:
      model: a ``vifit.ep.Factorized``.
      schedule: ``"sequential"`` (one site at a time, rank-one updates; the robust default) or
        ``"parallel"`` (all sites against the same q; one Cholesky per sweep).
      damping: in [0, 1): each sweep moves the sites ``1 - damping`` of the way to the
        proposal. Raised automatically when EP oscillates.
      tol: convergence tolerance on the relative site change (see the module docstring).
        1e-4 suits float32; use 1e-8 or less in float64.
      max_sweeps: the most sweeps.
      patience: sweeps without progress before damping is raised.
      max_damping: damping is not raised beyond this.
      negative: ``"allow"`` (default) keeps negative site precisions, which non-log-concave
        terms (Student-t) need, with the safeguards of vifit.ep.core; ``"clip"`` sets them to 0
        and keeps the tilted mean.
      init: start from these sites (e.g. a previous result's ``state``) instead of flat sites.

    Returns an EPResult: ``log_z``, ``mean``, ``cov``, ``sweeps``, ``converged``, the sites,
    and ``to_fit_result()`` for the FitResult tools (summary, draws, importance-sampling log Z).
    """
    if not isinstance(model, Factorized):
        raise ConfigError("vifit.ep.fit takes a vifit.ep.Factorized model; build one with "
                          "vifit.ep.Factorized(term, data, design, prior_sd=...).")
    if schedule not in _SWEEPS:
        raise ConfigError(f"unknown EP schedule {schedule!r}; choose sequential or parallel.")
    if negative not in ("allow", "clip"):
        raise ConfigError(f"negative must be 'allow' or 'clip', got {negative!r}.")
    if not 0.0 <= damping < 1.0 or not damping <= max_damping < 1.0:
        raise ConfigError("damping must lie in [0, 1) and not above max_damping (< 1).")
    if max_sweeps < 1 or patience < 1 or not tol > 0:
        raise ConfigError("max_sweeps and patience must be positive integers, tol positive.")

    problem, sweep = _compiled(model, schedule, negative == "clip")
    state = init_state(problem) if init is None else init
    step, min_step = 1.0 - damping, 1.0 - max_damping
    history, trace, raised = [], [], []
    best, stale, skipped = np.inf, 0, 0
    status = "max_sweeps"
    t0 = time.perf_counter()
    for k in range(1, max_sweeps + 1):
        state, info = sweep(state, step)
        change = float(info.change)
        skipped += int(info.skipped)
        history.append(change)
        trace.append(float(info.log_z))  # log Z_EP before this sweep
        if int(info.skipped) == problem.proj.shape[0]:
            status = "stuck"
            break
        if change <= tol:
            status = "converged"
            break
        if change < best:
            best, stale = change, 0
            continue
        stale += 1
        if stale >= patience and step > min_step:
            step = max(0.5 * step, min_step)
            raised.append(k)
            best, stale = change, 0
            warnings.warn(
                f"EP is oscillating: the site change has not improved for {patience} sweeps "
                f"(now {change:.3g}); damping raised to {1.0 - step:.3g} after sweep {k}.",
                EPWarning, stacklevel=2)
    _, final = sweep(state, 0.0)  # step 0: sites unchanged; log Z_EP of the final state
    log_z, bad = float(final.log_z), int(final.improper)
    trace.append(log_z)
    seconds = time.perf_counter() - t0
    if status != "converged":
        warnings.warn(
            f"EP did not converge in {len(history)} sweeps ({status}; last site change "
            f"{history[-1]:.3g} > tol {tol:g}); the result is the last iterate. Try more "
            "damping (damping=0.5) or the sequential schedule.", EPWarning, stacklevel=2)
    if bad:
        warnings.warn(f"{bad} site(s) have an improper cavity at the end; log Z is NaN.",
                      EPWarning, stacklevel=2)
    return EPResult(
        model=model, state=state, log_z=log_z, sweeps=len(history),
        converged=status == "converged", status=status, history=np.asarray(history),
        log_z_trace=np.asarray(trace), damping=1.0 - step, damping_raised_at=tuple(raised),
        skipped=skipped, seconds=seconds, schedule=schedule, tol=float(tol),
    )
