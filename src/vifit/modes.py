"""Mode search: are there separated modes that a fitted Gaussian q does not cover?

From a reference Gaussian N(c, L L^T) (a fit's mean and covariance), ``starts`` points are drawn
``c + s L eps`` with s cycling through ``SCALES`` (1, q itself, then 2 to 16 of q's standard
deviations: over-dispersed), and every one climbs log p by Adam in q's whitened coordinates
``u`` (z = c + L u, where the posterior near q has unit scale), all together in one compiled
``vmap`` over a ``fori_loop`` whose count of steps is an argument (one program for the 400-step
climbs and the 20-step screening). In d <= ``SCREEN_MAX_DIM`` each
over-dispersed start is chosen from ``SCREEN`` candidates by short climbs (``_screen``): the
best end of every basin the short climbs reach goes on, so a basin that one candidate in
thousands lands in is still climbed. ``FAR_STARTS`` more climbs start 100 times farther out
and refine through wider frames of q (``_far_starts``), for a mode hundreds of q's sds away.
An end point has *converged* when the
gradient there, in whitened units, is below ``GTOL``. Converged ends, best first, found the
modes: an end joins a mode when it lies within one whitened unit of it or when log p along the
segment between them never dips more than ``BARRIER`` nats below the end (no barrier: the same
basin), else it is a new mode. Ends that have not converged are only counted. Each mode gets a
Laplace estimate of its mass, log p(m) + d/2 log 2 pi - 1/2 log det(-H) with H the Hessian of
log p at m; a mode where -H is not positive definite is a ridge or a plateau, counted but given
no mass. A mode is *covered* by q when a start drawn from q itself (scale 1) ended there, or
its Mahalanobis distance under q is below ``COVERED``.

Far from every mode the widest component of p dominates log p, so climbs from around q fall
into wide basins and a narrow mode beside a wide one is missed. Hence up to ``rounds`` rounds:
each mode first found in a round seeds ``per_mode`` over-dispersed starts (2 to 16 sds) in its
own Laplace frame, and, once there are several, the moment-matched Gaussian of the modes found
seeds as many; the rounds stop when one finds nothing new (``saturated``), or after ``rounds``
with modes still turning up, which the verdicts treat as a sign of more modes than were found.
All ends are grouped together. In d <= ``DENSE_MAX_DIM`` every round also weighs up to
``DENSE_MAX`` draws of its frames at 1 to 4 sds by p over what the modes searched so far
explain (q in the first round) and climbs from the ``DENSE_KEEP`` heaviest (``_dense_frames``):
a narrower mode whose basin the over-dispersed starts miss holds a few of those draws, and p
over q is far larger there than anywhere near q.

What it costs: ``starts`` x ``steps`` gradients of log p (default 256 x 400) per round from q,
``per_mode`` x ``steps`` per new mode (at most ``MAX_NEW`` per round), ``SCREEN`` x
``SCREEN_STEPS`` (16 x 20) more per over-dispersed start, ``FAR_STARTS`` x ``steps`` x
(len(``FAR``) + 1) for the far climbs, up to ``DENSE_MAX`` evaluations of log p (within
``DENSE_FLOPS``) and ``DENSE_KEEP`` climbs per round for the weighed draws, plus one Hessian
per mode; the climb is compiled once per target and reused by every round and every later
search.
What it can miss: a mode whose basin none of the over-dispersed starts falls into (beyond about
1,600 sds of q, or beyond 16 sds of q and of every mode found with a basin that does not reach
toward them, or a tiny basin); in high dimension the chance of a start landing in a given
basin falls quickly (measured in docs/evidence.md: from d = 5 on the search misses narrow modes
6 to 10 sds away), and the verdicts say so; the Laplace masses are rough for non-Gaussian modes
(order of magnitude, not a log Z estimate). It is a check that can raise an alarm, never a
proof that there is one mode. In d <= ``GRID_DIM`` the first round also scans log p on grids
out to 1,600 of q's sds and climbs from their local maxima (``_grid_frames``): there a mode is
missed only beyond that, or where its basin is narrower than the grid's spacing.
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np
import optax
import scipy.linalg
import scipy.special

from vifit.ahead import ready
from vifit.arrays import on_device
from vifit.blocks import in_blocks
from vifit.freshness import kept
from vifit.rng import standard_normal
from vifit.target import Target

SCALES = (1.0, 2.0, 4.0, 8.0, 16.0)
GTOL = 0.05  # whitened gradient norm below which an end point has converged
BARRIER = 1.0  # nats
COVERED = 4.0  # Mahalanobis distance under q below which a mode counts as covered
SEGMENT_POINTS = 9
# FAR_STARTS more climbs begin in q's frame widened by FAR[0], and climb in it, then in each
# narrower frame of FAR, then in q's own (``_far_starts``): they reach FAR[0] * 16 of q's sds.
FAR = (100.0, 10.0)
FAR_STARTS = 64
# Each over-dispersed start of a search stands for SCREEN candidates, each climbed
# SCREEN_STEPS steps first; the best end of every basin they reach goes on to the full climb
# (``_screen``).
SCREEN = 16
SCREEN_STEPS = 20
# ... in at most this many dimensions. A narrow mode (a quarter of the sd) 8 sds beside a wide
# one was found by 10, 9, 5, 2 and 0 of 10 searches in d = 3, 4, 5, 6, 8 with screening (7, 2,
# 0 in d = 3, 4, 5 without); beyond, its basin is out of reach either way, and on d = 10-20
# test mixtures the screening found no mode more, while it doubled the search's gradients.
SCREEN_MAX_DIM = 8
MAX_DIM = 200  # dense Hessians beyond this cost too much; the search is skipped
# The search's budget, in floating-point operations of log p's gradients (``gradient_flops``
# times ``search_cost``): 6-11 s on this 2-core machine, where the full search on diamonds
# (d = 26, 5,000 rows: 1.2e11) took 4.5 s and on a 20,000-row logistic regression in d = 5
# (5.4e11) 41 s beside a 5 s fit. A log p that costs more gets the fullest search of ``_plan``
# that fits, or the smallest: screening goes first, then the far climbs, then starts. The
# verdicts say when it was cut.
SEARCH_FLOPS = 1.5e11
# A transcendental (exp, log, ...) counts as this many flops: on the two targets above one
# gradient took 22 us (5.8e5 flops, no transcendentals) and 140 us (7.2e5 flops and 6e4
# transcendentals), about 2 ns, or 20 flops at diamonds' rate, per transcendental.
TRANSCENDENTAL_FLOPS = 20.0
# When even the smallest search would cost more than this many times the budget (a plain
# target over hundreds of thousands of rows: a minute or more), none runs, and the verdicts
# say so as for any fit without a search.
SKIP_FACTOR = 4.0


class Mode(NamedTuple):
    location: np.ndarray  # (d,) the best end point of the cluster, unconstrained z
    log_p: float  # log p there, nats
    log_mass: float  # Laplace log mass (nan when -H is not positive definite)
    cov: np.ndarray | None  # (d, d) the Laplace covariance (-H)^-1, None when not PD
    distance: float  # Mahalanobis distance from q's mean under q's covariance
    starts: int  # how many starts ended here
    covered: bool  # a start drawn from q itself ended here, or it is close to q's mean


class ModeSearch(NamedTuple):
    modes: list[Mode]  # proper modes (negative-definite Hessian), largest mass first
    ridges: int  # clusters where -H was not positive definite (flat or improper directions)
    unconverged: int  # starts whose climb had not converged after ``steps``
    starts: int
    steps: int
    seconds: float
    rounds: int = 1  # rounds of climbs run (the first from q, then from the modes found)
    # the last round found no new mode: more rounds would not have found more this way
    saturated: bool = True
    screened: int = 0  # candidates climbed ``SCREEN_STEPS`` steps to choose the starts
    # the search was cut to stay within ``SEARCH_FLOPS`` (log p's gradient costs this many)
    reduced: bool = False
    gradient_flops: float = 0.0
    dense: int = 0  # draws weighed by p in each round for its starts (``_dense_frames``)
    grid: int = 0  # points of log p scanned on grids in the first round (``_grid_frames``)
    # half-width in q's sds of the grid's box on the scale of z itself (``grid_boxes``; 0: none)
    grid_reach: float = 0.0
    # at the highest ridge (or, where no climb converged, the highest end): the least and the
    # largest eigenvalue of -H there, and the machine epsilon (``unresolved_curvature``)
    ridge_curvature: tuple[float, float, float] | None = None
    # modes whose -H the target's dtype did not resolve, refined in float64 (``_refined_mode``),
    # and the least and largest eigenvalue of -H in that dtype and its epsilon at the first
    refined: int = 0
    refined_curvature: tuple[float, float, float] | None = None

    @property
    def covered(self) -> list[Mode]:
        return [m for m in self.modes if m.covered]

    @property
    def missed_fraction(self) -> float:
        """Laplace mass of the modes q does not cover, as a fraction of all modes' mass."""
        masses = np.array([m.log_mass for m in self.modes])
        if masses.size == 0:
            return 0.0
        total = log_sum_exp(masses)
        missed = [m.log_mass for m in self.modes if not m.covered]
        return float(np.exp(log_sum_exp(np.array(missed)) - total)) if missed else 0.0

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record for ``FitResult.info["modes"]``."""
        masses = np.array([m.log_mass for m in self.modes])
        total = log_sum_exp(masses) if masses.size else 0.0
        return {
            "found": len(self.modes), "covered_by_q": len(self.covered),
            "missed_mass_fraction": self.missed_fraction, "ridges": self.ridges,
            "unconverged": self.unconverged,
            "starts": self.starts, "steps": self.steps, "screened": self.screened,
            "seconds": self.seconds,
            "rounds": self.rounds, "saturated": self.saturated,
            "reduced": self.reduced, "gradient_flops": self.gradient_flops,
            "dense": self.dense, "grid": self.grid, "grid_reach": self.grid_reach,
            "ridge_curvature": (None if self.ridge_curvature is None
                                else list(self.ridge_curvature)),
            "refined": self.refined,
            "refined_curvature": (None if self.refined_curvature is None
                                  else list(self.refined_curvature)),
            "modes": [{"log_p": m.log_p, "laplace_log_mass": m.log_mass,
                       "mass_fraction": float(np.exp(m.log_mass - total)),
                       "distance_from_q": m.distance, "starts": m.starts,
                       "covered_by_q": m.covered,
                       "location": m.location[:10].tolist()} for m in self.modes],
        }


def log_sum_exp(x: np.ndarray) -> float:
    """log(sum(exp(x))) of a non-empty float array, without overflow."""
    m = float(np.max(x))
    return m + float(np.log(np.sum(np.exp(x - m))))


def search_modes(target: Target, mean: Any, cov: Any, *, key: jax.Array, starts: int = 256,
                 steps: int = 400, lr: float = 0.3, rounds: int = 6,
                 per_mode: int = 64, budget: float | None = None) -> ModeSearch | None:
    """Look for modes of ``target`` from over-dispersed starts around N(mean, cov) (see the
    module docstring), then, for up to ``rounds - 1`` more rounds, from over-dispersed starts
    around each mode found in the round before (``per_mode`` starts in its Laplace frame) and
    around the moment-matched Gaussian of all modes found: a narrow mode next to a wide one is
    out of reach from q, whose climbs fall into the wide basin, but often within reach of a
    neighbour. ``budget``: floating-point operations the search may spend (None:
    ``SEARCH_FLOPS``; ``math.inf``: no limit). None when the target is not differentiable or
    d > ``MAX_DIM``."""
    if not target.differentiable or target.dim > MAX_DIM:
        return None
    t0 = time.perf_counter()
    c, chol = _frame(target, mean, cov)
    d, dtype = target.dim, c.dtype
    plan, flops = _budgeted_plan(target, budget, starts, steps, per_mode)
    if plan is None:
        return None  # even the smallest search would overrun its budget many times over
    starts, per_mode, factor, far = plan.starts, plan.per_mode, plan.factor, plan.far
    climb = _climber(target.log_density, steps, lr)
    short = _climber(target.log_density, SCREEN_STEPS, lr)
    c_np, chol_np = np.asarray(c), np.asarray(chol)
    # q's own draws climb as they are (they tell which modes q covers); the over-dispersed
    # starts are screened
    own = int(np.sum(np.resize(np.asarray(SCALES), starts) <= 1.0))
    key, k_own, k_wide = jax.random.split(key, 3)
    u_own = standard_normal(k_own, (own, d), np.float64)
    wide_scales = np.resize(np.asarray(SCALES[1:]), factor * (starts - own))
    u_wide = wide_scales[:, None] * standard_normal(k_wide, (wide_scales.size, d), np.float64)
    frames = (np.broadcast_to(c_np, (wide_scales.size, d)),
              np.broadcast_to(chol_np, (wide_scales.size, d, d)))
    u_chosen = _screen(short, *frames, u_wide.astype(dtype), starts - own, c_np, chol_np,
                       factor)[2]
    key, k_far, k_dense = jax.random.split(key, 3)
    u_far = _far_starts(climb, c_np, chol_np, k_far, dtype) if far else u_own[:0].astype(dtype)
    dense = _dense_count(d, flops) if not plan.reduced else 0
    dense_frames = _dense_frames(target, [(c_np, chol_np)], [(c_np, chol_np, 0.0)], k_dense,
                                 dense, dtype, c_np, chol_np)
    boxes = grid_boxes(c_np, chol_np)
    side = _grid_side(d, flops, len(boxes)) if not plan.reduced else 0
    grid_frames = _grid_frames(target, c_np, chol_np, side, np.dtype(dtype), flops, short, boxes)
    dense_frames = tuple(np.concatenate([a, b]) for a, b in zip(dense_frames, grid_frames))
    if dense_frames[0].shape[0]:  # in place of the last screened starts: as many climbs
        u_chosen = u_chosen[:max(u_chosen.shape[0] - dense_frames[0].shape[0], 0)]
    # every other start of this round is in q's frame
    u0 = np.concatenate([u_own.astype(dtype), u_chosen, u_far])
    found = [_climb_one_frame(climb, c_np, chol_np, u0), _climb_frames(climb, *dense_frames)]
    from_q = [np.arange(u0.shape[0]) < own, np.zeros(dense_frames[0].shape[0], bool)]
    screened = wide_scales.size
    searched: set[int] = set()  # ends whose modes' neighbourhoods were searched already
    explained: list[tuple[np.ndarray, np.ndarray, float]] = []  # their Laplace Gaussians
    saturated = False
    for r in range(rounds):
        ends, logp, gnorm = (np.concatenate(x) for x in zip(*found))
        reps, members = _assign(target, ends, logp, _converged(ends, logp, gnorm),
                                _finite(ends, logp), np.asarray(chol, np.float64))
        fresh = [i for i, who in zip(reps, members) if not searched.intersection(who.tolist())]
        if not fresh:
            saturated = True
            break
        if r == rounds - 1:
            break  # the budget is spent while modes are still turning up: not saturated
        searched.update(fresh[:MAX_NEW])
        laplace = [(ends[i], _laplace_chol(target, ends[i]), logp[i]) for i in fresh[:MAX_NEW]]
        laplace = [(loc, lc, lp) for loc, lc, lp in laplace if lc is not None]
        # near a mode m, p(z) ~ p(m) exp(-|lc^-1 (z - m)|^2 / 2): its Laplace Gaussian, weighed
        explained += [(loc, lc, lp + float(np.sum(np.log(np.diag(lc)))))
                      for loc, lc, lp in laplace]
        frames = [(loc, lc) for loc, lc, _ in laplace]
        if len(reps) > 1:  # the moment-matched Gaussian of every mode found so far
            frames.append(_moment_frame(target, ends[reps]))
        if not frames:
            saturated = True
            break
        n = factor * per_mode
        mode_scales = np.resize(np.asarray(SCALES[1:]), n)
        cs = np.repeat(np.stack([f[0] for f in frames]), n, 0).astype(dtype)
        chols = np.repeat(np.stack([f[1] for f in frames]), n, 0).astype(dtype)
        key, sub = jax.random.split(key)
        u = (np.tile(mode_scales, len(frames))[:, None]
             * standard_normal(sub, (cs.shape[0], d), np.float64)).astype(dtype)
        chosen = _screen(short, cs, chols, u, per_mode * len(frames), c_np, chol_np, factor)
        key, sub = jax.random.split(key)
        # (q itself while every mode found is a ridge)
        heaviest = (sorted(explained, key=lambda g: -g[2])[:DENSE_EXPLAINED]
                    or [(c_np, chol_np, 0.0)])
        weighed = _dense_frames(target, frames, heaviest, sub, dense, dtype, c_np, chol_np)
        chosen = tuple(np.concatenate([a, b.astype(a.dtype)]) for a, b in zip(chosen, weighed))
        found.append(_climb_frames(climb, *chosen))
        from_q.append(np.zeros(chosen[2].shape[0], bool))
        screened += cs.shape[0]
    rounds_run = len(found) - 1
    # every exit from the loop comes right after an assignment of all the ends found
    finished = _finish(target, ends, logp, members, flops)
    if finished is not None:
        found.append(finished)
        from_q.append(np.zeros(finished[0].shape[0], bool))
        ends, logp, gnorm = (np.concatenate(x) for x in zip(*found))
        reps, members = _assign(target, ends, logp, _converged(ends, logp, gnorm),
                                _finite(ends, logp), np.asarray(chol, np.float64))
    res = _group(target, c, chol, ends, logp, (reps, members), np.concatenate(from_q), steps,
                 t0)
    return res._replace(rounds=rounds_run, saturated=saturated,
                        screened=screened if factor > 1 else 0, reduced=plan.reduced,
                        gradient_flops=flops, dense=dense,
                        grid=side ** d * len(boxes) if side else 0,
                        grid_reach=boxes[-1] if side and len(boxes) > len(GRID_BOXES) else 0.0)


def too_costly(target: Target) -> bool:
    """Whether ``search_modes`` (with its defaults) skips ``target``: its smallest search
    would cost more than ``SKIP_FACTOR`` times ``SEARCH_FLOPS``."""
    return _budgeted_plan(target, None, 256, 400, 64)[0] is None


def _budgeted_plan(target: Target, budget: float | None, starts: int, steps: int,
                   per_mode: int) -> tuple[_Plan | None, float]:
    """``(plan, flops)``: the search ``_plan`` fits in ``budget`` (None: ``SEARCH_FLOPS``)
    given one gradient's ``flops``, or None for the plan when even it would cost more than
    ``SKIP_FACTOR`` budgets."""
    budget = SEARCH_FLOPS if budget is None else budget
    d = target.dim
    flops = gradient_flops(target.log_density, d, np.dtype(target.init.dtype).name)
    plan = _plan(d, starts, steps, per_mode, budget / flops)
    cost = search_cost(d, plan.starts, steps, plan.per_mode, plan.factor, plan.far) * flops
    return (None if cost > SKIP_FACTOR * budget else plan), flops


class _Plan(NamedTuple):
    starts: int
    per_mode: int
    factor: int  # screening candidates per start (1: no screening)
    far: bool  # run the far climbs
    reduced: bool  # less than the full search


def _plan(dim: int, starts: int, steps: int, per_mode: int, gradients: float) -> _Plan:
    """The fullest search whose ``search_cost`` fits in ``gradients``, or, when none does, the
    smallest: without screening, without far climbs, and with ``starts`` and ``per_mode``
    halved down to one block each."""
    screen = SCREEN if dim <= SCREEN_MAX_DIM else 1
    plans = [_Plan(starts, per_mode, screen, True, False)]
    if screen > 1:
        plans.append(_Plan(starts, per_mode, 1, True, True))
    plans.append(_Plan(starts, per_mode, 1, False, True))
    while starts > CLIMB_BLOCK or per_mode > CLIMB_BLOCK:
        starts, per_mode = max(CLIMB_BLOCK, starts // 2), max(CLIMB_BLOCK, per_mode // 2)
        plans.append(_Plan(starts, per_mode, 1, False, True))
    return next((p for p in plans if search_cost(dim, p.starts, steps, p.per_mode, p.factor,
                                                 p.far) <= gradients), plans[-1])


@kept(8)
def gradient_flops(log_density, dim: int, dtype: str) -> float:
    """Floating-point operations of one gradient of log p at a point of ``dim`` coordinates
    (a transcendental counted as ``TRANSCENDENTAL_FLOPS``), by ``program_flops`` (no
    compiling: milliseconds)."""
    return max(1.0, program_flops(jax.value_and_grad(log_density),
                                  jax.ShapeDtypeStruct((dim,), np.dtype(dtype))))


def program_flops(fn, *args) -> float:
    """Floating-point operations of ``fn(*args)`` (``args``: arrays or ``ShapeDtypeStruct``s):
    XLA's cost analysis of the lowered program, which counts a loop's body once, plus each
    ``lax.scan``'s remaining ``length - 1`` passes (nested scans multiplied out). Without
    them an ODE solved by 20 Runge-Kutta steps in each of 20 intervals (the catalog's
    lotka_volterra) counted 3.5e3 flops a gradient, 1/100 of its cost. A ``while_loop``'s trip
    count is unknown before it runs and its body stays counted once; a gradient has none
    (JAX cannot differentiate one in reverse mode, and ``fori_loop`` with fixed bounds is a
    scan)."""
    traced = jax.jit(fn).trace(*args)
    return lowered_flops(traced.lower()) + _scan_flops(traced.jaxpr.jaxpr)


def _scan_flops(jaxpr) -> float:
    """The flops XLA's cost analysis leaves out of ``jaxpr``: for each scan, ``length - 1``
    more passes of its body and ``length`` of what the body's own scans leave out; inside
    other sub-programs (a jit, a custom derivative) the same, and for a ``cond`` its costliest
    branch."""
    from jax.extend.core import ClosedJaxpr, Jaxpr, jaxpr_as_fun

    def inner(x) -> float:
        """The flops left out of a sub-program parameter (0 for any other parameter)."""
        if isinstance(x, ClosedJaxpr):
            return _scan_flops(x.jaxpr)
        return _scan_flops(x) if isinstance(x, Jaxpr) else 0.0

    extra = 0.0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            body = eqn.params["jaxpr"]
            once = lowered_flops(jax.jit(jaxpr_as_fun(body)).lower(
                *[jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in body.jaxpr.invars]))
            length = int(eqn.params["length"])
            extra += (length - 1) * once + length * _scan_flops(body.jaxpr)
            continue
        for value in eqn.params.values():
            if isinstance(value, (tuple, list)):  # a cond's branches: one of them runs
                extra += max([inner(x) for x in value] or [0.0])
            else:
                extra += inner(value)
    return extra


def lowered_flops(lowered) -> float:
    """XLA's count of floating-point operations of a lowered program, a transcendental
    counted as ``TRANSCENDENTAL_FLOPS``; 0 where the backend gives no cost analysis (the
    search then counts as cheap). A loop's body is counted once (``program_flops`` adds the
    other passes of a scan)."""
    try:
        cost = lowered.cost_analysis()
    except Exception:
        return 0.0
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    if not isinstance(cost, dict):
        return 0.0
    return (float(cost.get("flops", 0.0))
            + TRANSCENDENTAL_FLOPS * float(cost.get("transcendentals", 0.0)))


def _far_starts(climb, c: np.ndarray, chol: np.ndarray, key, dtype) -> np.ndarray:
    """Whitened starts in q's frame for ``FAR_STARTS`` climbs that began ``FAR[0]`` times
    farther out than the search's own: each climbs in q's frame widened by each factor of
    ``FAR`` in turn (Adam's steps are a fixed fraction of the frame's scale, so a wide frame
    crosses hundreds of q's sds in a few hundred steps and the next one refines), so that a
    mode far beyond 16 of q's sds, whose basin reaches toward q (an equal-width mode's basin
    is the half-space beyond the midpoint), is still reached. The same compiled climb as the
    search's: only the frame changes."""
    scales = np.resize(np.asarray(SCALES), FAR_STARTS)
    u = (scales[:, None] * standard_normal(key, (FAR_STARTS, c.shape[0]), np.float64)
         ).astype(dtype)
    for factor, after in zip(FAR, FAR[1:] + (1.0,)):
        u_end = _climb_one_frame(climb, c, (factor * chol).astype(dtype), u, whitened=True)[3]
        u_end = np.where(np.all(np.isfinite(u_end), axis=1, keepdims=True), u_end, u)
        u = (u_end * (factor / after)).astype(dtype)  # the same points in the next frame
    return u


# A narrow mode *inside* q's typical region has a basin too small for the over-dispersed starts
# (spread 2 to 16 sds wide) to land in: 0.5 N((6, 0), 0.05^2 I) inside 0.5 N(0, 5^2 I) has a
# basin of radius 0.22, hit by about 0.3 of the 4,288 screened candidates, and a full-rank fit
# read "good" with log Z log 2 low. Draws of q itself find it by their weights: in d <=
# DENSE_MAX_DIM, up to DENSE_MAX draws at each of DENSE_SCALES of q's sds (as many as
# DENSE_FLOPS of log p's gradients afford, none below DENSE_MIN) are weighed, and the
# DENSE_KEEP heaviest in distinct places replace as many of the first round's starts: half by p
# over their proposal, half by p over q. The second finds a narrower mode *beside* q too: in
# d = 20, 2/3 N(0, S1) + 1/3 N(mu, S2), S2 rotated apart from S1 and 0.6 its size, mu 6 sds away
# (tests/test_modes.py), the climbs from q missed the second mode with 18 of 18 keys and
# targets; its basin holds a few of 131,072 draws of q at 1.5 to 2 sds, where p over q is far
# above its value near q, and the weighed draws found it with all 18. Each later
# round does the same from the Laplace frames of the modes first found in the round before
# (and the moment-matched Gaussian of all of them), weighing by p over the mixture of the
# Laplace Gaussians of the DENSE_EXPLAINED heaviest modes searched so far: mass that none of
# them explains (DENSE_KEEP more climbs a round). Beyond DENSE_MAX_DIM a basin's share of any
# such cloud of draws is nil.
DENSE_MAX = 2 ** 17
# In d <= DENSE_WIDE_DIM, 8 times as many: there "good" and CUBO's upper bound rest on the
# search alone (evidence.verdict.SEARCH_BLIND_DIM), and a mode of 0.05 of the mass with a
# 200th of its neighbour's sd, 8 of the neighbour's sds away (bench/narrow_mode.py), has a
# basin that holds about 6e-6 of the draws: 131,072 missed it in 1 of 3 seeds, and the verdict
# read "good" 0.05 nats low with CUBO below log Z. The search around the wide mode found it
# with 12 of 20 keys before, 20 of 20 after (18 of 20 with the wider count in the first round
# alone), in 1.2 s instead of 0.8 s.
DENSE_WIDE_DIM = 2
DENSE_MAX_WIDE = 2 ** 20
DENSE_MIN = 4096
DENSE_FLOPS = 7.5e9
DENSE_KEEP = 16
DENSE_BLOCK = 4096
DENSE_SCALES = (1.0, 2.0, 1.5, 3.0, 4.0)
DENSE_MAX_DIM = 32
DENSE_EXPLAINED = 16


def _dense_count(dim: int, flops: float) -> int:
    """Draws of q for ``_dense_frames`` in ``dim`` dimensions at ``flops`` per gradient of log
    p (a whole number of blocks), 0 where none are taken."""
    if dim > DENSE_MAX_DIM:
        return 0
    n = min(DENSE_MAX_WIDE if dim <= DENSE_WIDE_DIM else DENSE_MAX,
            int(DENSE_FLOPS / max(flops, 1.0)))
    return (n // DENSE_BLOCK) * DENSE_BLOCK if n >= DENSE_MIN else 0


@kept(8)
def _dense_program(log_density):
    """Jitted ``(c, chol, u (m, d)) -> log p(c + chol u)`` for a block of whitened points."""
    return jax.jit(lambda c, chol, u: jax.vmap(log_density)(c + u @ chol.T))


def _dense_frames(target: Target, sources: list[tuple[np.ndarray, np.ndarray]],
                  explained: list[tuple[np.ndarray, np.ndarray, float]], key: jax.Array,
                  n: int, dtype, c: np.ndarray, chol: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Climb frames ``(cs (k, d), chols (k, d, d), u0 (k, d) = 0)``, k <= ``DENSE_KEEP``, from
    ``n`` draws spread over the Gaussian frames ``sources`` (``(loc, chol)``) at each of
    ``DENSE_SCALES`` of their sds: the heaviest by p over ``explained``, the mixture of
    Gaussians ``(loc, chol, log_mass)`` that stands for the mass found so far (q; then the
    Laplace approximations of the modes found), that is where p has mass they miss; with one
    source, half of them the heaviest by p over their proposal, as in an importance sample.
    Each is more than one of q's units (``c``, ``chol``) from those kept before, and climbs in
    its own Laplace frame where that is narrower than its source's (``_narrow_frame``): a
    climb in a wider frame would step out of a basin far narrower than it."""
    d = c.shape[0]
    empty = (np.zeros((0, d), dtype), np.zeros((0, d, d), dtype), np.zeros((0, d), dtype))
    per = (n // max(len(sources), 1) // DENSE_BLOCK) * DENSE_BLOCK
    if per == 0:
        return empty
    scales = np.asarray(DENSE_SCALES)
    scale = np.resize(scales, per)
    u = scale[:, None] * standard_normal(key, (len(sources), per, d), np.float64)
    z = np.concatenate([loc + us @ lc.T for (loc, lc), us in zip(sources, u)])
    program = _dense_program(target.log_density)
    ready(program)
    origin, eye = on_device(np.zeros(d), dtype), on_device(np.eye(d), dtype)
    log_p = np.asarray(in_blocks(lambda block: program(origin, eye, block),
                                 (z.astype(dtype),), DENSE_BLOCK)[0], np.float64)
    log_p = np.where(np.isfinite(log_p), log_p, -np.inf)
    log_expl = scipy.special.logsumexp(np.stack([m + _log_normal(z, loc, lc)
                                                 for loc, lc, m in explained], axis=1), axis=1)
    w = scipy.linalg.solve_triangular(chol.astype(np.float64), (z - c).T, lower=True).T
    by_prop = np.zeros(0, int)
    if len(sources) == 1:
        r2 = np.sum(u[0] ** 2, axis=1)
        log_prop = scipy.special.logsumexp(-0.5 * r2[:, None] / scales ** 2 - d * np.log(scales),
                                           axis=1)
        by_prop = _distinct(w, log_p - log_prop, DENSE_KEEP // 2)
    by_q = _distinct(w, log_p - log_expl, DENSE_KEEP - by_prop.size, avoid=w[by_prop])
    idx = np.concatenate([by_prop, by_q])
    if idx.size == 0:
        return empty
    source = np.repeat(np.arange(len(sources)), per)[idx]
    cs = z[idx]
    chols = [_narrow_frame(target, zi, sources[s][1]) for zi, s in zip(cs, source)]
    return cs.astype(dtype), np.asarray(chols).astype(dtype), np.zeros_like(cs, dtype)


# In d <= GRID_DIM the first round also scans log p on grids (``_grid_frames``): in q's
# whitened frame, a square (a segment in d = 1) of each half-width in GRID_BOXES (q's sds) with
# GRID_POINTS points (fewer where log p is costly: GRID_FLOPS of gradients in all), and climbs
# from the GRID_KEEP grid points that are local maxima of log p among their grid neighbours,
# highest p over q first, in distinct places. A mode far narrower than its neighbours and far
# from them has a basin that no cloud of draws reliably lands in: 0.3 N(10 u, (1e-3)^2 I) +
# 0.7 N(0, I) in d = 2 (basin radius about 0.01) and 0.3 N(1000, 0.01^2) + 0.7 N(0, 1) in d = 1
# read "good" with log Z 0.357 nats low (2026-12-07). A grid finds every basin wider than its
# spacing within its box, and only a mode's basin holds a local maximum: p's tails, which
# outweigh q's far out, hold none. The spacings are 2 x half-width / sqrt(points): in d = 2
# 0.004 of q's sd within 4 sds to 1.6 within 1,600; in d = 1, 8e-6 to 3e-3.
GRID_DIM = 2
GRID_BOXES = (4.0, 16.0, 64.0, 256.0, 1600.0)
# One more box, on z's own scale (``grid_boxes``), where it reaches more than GRID_ABS_BEYOND
# times the last of GRID_BOXES; at most GRID_ABS_MAX of q's sds (beyond, float32 cannot tell
# a grid's neighbouring points apart around a mean of order 1).
GRID_ABS = 4.0
GRID_ABS_BEYOND = 1.5
GRID_ABS_MAX = 1e6
GRID_POINTS = {1: 2 ** 20, 2: 2 ** 22}  # per box, by dimension
# (3e10 at first: on a data target in d = 2, tests/data/test_data_modes.py, the grid then
# took 16 s of a 57 s fit)
GRID_FLOPS = 1e10
GRID_KEEP = 8
# Grid maxima screened by short climbs for those GRID_KEEP (``_grid_frames``).
GRID_CANDIDATES = 128
GRID_BLOCK = 2 ** 16
# A block of grid points holds about this many flops of log p at once: a vmapped log p keeps
# its intermediates for every point of the block, and on a data target (a pass over the rows
# per point) 2^16 points at once took 10 GB and the process was killed (2026-12-07).
GRID_BLOCK_FLOPS = 6.4e8
# A grid point climbs in its Laplace frame where that is within q's widened this many times: a
# mode narrow in one direction and as wide as q in another (a spike-and-slab posterior's spike
# in one coordinate beside the slab in the other, whose Laplace sd there was 1.01 of q's)
# climbed in q's frame, whose first step left the spike's basin.
GRID_SLACK = 2.0
# Grid values of log p within this many units in the last place (of |log p|, in log p's
# dtype) of each other count as equal when looking for the grid's local maxima.
ROUNDING_ULPS = 16.0


def grid_boxes(c: np.ndarray, chol: np.ndarray) -> tuple[float, ...]:
    """Half-widths in q's sds (q = N(c, chol chol^T)) of the boxes the grid scans:
    ``GRID_BOXES``, and beyond them, where it reaches farther, one whose square holds every
    point within ``GRID_ABS`` (|c|_max + 1) of c in z's own units. q's sds say nothing of
    how far apart p's modes may lie: with q 0.03 wide around (19, -58), a mode (48, 4) was
    2,659 of its sds away, beyond every other box, and the fit read "good" with log Z 1.08
    nats low; z's own scale is the scale the model's parameters live on."""
    sd_least = float(np.linalg.svd(np.asarray(chol, np.float64), compute_uv=False)[-1])
    reach = GRID_ABS * (float(np.max(np.abs(c), initial=0.0)) + 1.0) / max(sd_least, 1e-300)
    if not np.isfinite(reach) or reach <= GRID_ABS_BEYOND * GRID_BOXES[-1]:
        return GRID_BOXES
    return GRID_BOXES + (float(min(reach, GRID_ABS_MAX)),)


def _grid_side(dim: int, flops: float, boxes: int = len(GRID_BOXES)) -> int:
    """Points per axis of each of ``_grid_frames``' ``boxes`` in ``dim`` dimensions at
    ``flops`` per gradient of log p (0 where no grid is scanned)."""
    if dim > GRID_DIM:
        return 0
    per_box = min(GRID_POINTS[dim], int(GRID_FLOPS / boxes / max(flops, 1.0)))
    side = int(round(per_box ** (1.0 / dim)))
    return side if side >= 64 else 0


def grid_spacings(points: int, dim: int, reach: float = 0.0) -> list[tuple[float, float]]:
    """``(half-width, spacing)`` in q's sds of each box of a scan of ``points`` grid points in
    all (the record's ``grid``) in ``dim`` dimensions, with the box on z's scale of half-width
    ``reach`` (the record's ``grid_reach``; 0: none)."""
    boxes = GRID_BOXES + ((reach,) if reach else ())
    side = round((points / len(boxes)) ** (1.0 / dim))
    return [(half, 2.0 * half / (side - 1)) for half in boxes] if side > 1 else []


def _grid_block(points: int, flops: float) -> int:
    """Grid points per compiled block: a power of two, at most ``GRID_BLOCK``, the grid's own
    size (rounded up) and ``GRID_BLOCK_FLOPS`` of log p, at least 256."""
    cap = min(GRID_BLOCK, max(points, 1), max(256, int(GRID_BLOCK_FLOPS / max(flops, 1.0))))
    return 1 << (int(cap) - 1).bit_length() if cap > 256 else 256


@kept(8)
def _grid_program(log_density, dim: int, side: int, size: int):
    """Jitted ``(c, chol, half, start) -> log p`` at the ``size`` grid points from index
    ``start`` of a ``side``^dim grid over [-half, half]^dim in q's whitened frame (row-major;
    points past the grid's end repeat its last)."""
    last = side ** dim - 1

    def block(c, chol, half, start):
        i = jnp.minimum(start + jnp.arange(size), last)
        digits = jnp.stack([(i // side ** (dim - 1 - k)) % side for k in range(dim)], axis=1)
        u = -half + (2.0 * half / (side - 1)) * digits.astype(c.dtype)
        return jax.vmap(log_density)(c + u @ chol.T)

    return jax.jit(block)


def _grid_frames(target: Target, c: np.ndarray, chol: np.ndarray, side: int, dtype,
                 flops: float, short, boxes: tuple[float, ...] = GRID_BOXES
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Climb frames and whitened starts ``(cs (k, d), chols (k, d, d), u0 (k, d))``: q's
    mean with coordinates set to zero (``_zeroed``), and at most ``GRID_KEEP`` of the local
    maxima of log p on grids of ``side`` points per axis over each of ``boxes`` in
    q's frame (``c``, ``chol``): ``GRID_CANDIDATES`` of them in distinct places (more than
    one of q's units apart; half highest in p over q, half in p), each climbed ``short``
    (``_screen``) in its own Laplace frame where that lies within q's widened ``GRID_SLACK``
    times (``_narrow_frame``), and the best distinct ends go on from where they stopped.
    ``flops`` per gradient of log p bound the points evaluated at once (``_grid_block``)."""
    d = c.shape[0]
    empty = (np.zeros((0, d), dtype), np.zeros((0, d, d), dtype), np.zeros((0, d), dtype))
    if side == 0:
        return empty
    n = side ** d
    size = _grid_block(n, flops)
    program = _grid_program(target.log_density, d, side, size)
    c_dev, chol_dev = on_device(c, dtype), on_device(chol, dtype)
    eps = float(np.finfo(dtype).eps)
    axis_points, scores = [], []
    for half in boxes:
        log_p = np.concatenate([np.asarray(program(c_dev, chol_dev, np.asarray(half, dtype),
                                                   np.int32(start)))
                                for start in range(0, n, size)])[:n]
        log_p = np.where(np.isfinite(log_p), log_p, -np.inf).astype(np.float64)
        grid = log_p.reshape((side,) * d)
        peak = np.isfinite(grid)
        padded = np.pad(grid, 1, constant_values=np.inf)  # an edge is never a peak
        # Values within log p's rounding of each other tie, and a tie goes to the point
        # nearer q's mean. Far out in a tail log p rounds to runs of equal values and to
        # jitter of a few units in the last place; with ">=" every run's end and every
        # jitter was a "peak" (a Student-t's tail at 1,600 sds gave thousands), and ranked
        # by p over q they crowded out a real mode 97 units away in d = 1. A plateau that
        # is a true maximum keeps its point nearest q.
        tol = ROUNDING_ULPS * eps * np.abs(grid)
        radius = _grid_radius(side, d)
        far = np.pad(radius, 1, constant_values=np.inf)
        for shift in np.ndindex(*(3,) * d):
            if shift == (1,) * d:
                continue
            window = tuple(slice(k, k + side) for k in shift)
            with np.errstate(invalid="ignore"):  # -inf beside -inf: nan, never a peak
                gap = grid - padded[window]
            peak &= (gap > tol) | ((gap >= -tol) & (radius < far[window]))
        idx = np.flatnonzero(peak)
        if idx.size == 0:
            continue
        digits = np.stack(np.unravel_index(idx, (side,) * d), axis=1)
        u = -half + (2.0 * half / (side - 1)) * digits
        axis_points.append(u)
        scores.append(log_p[idx])
    zeroed = _zeroed(c)
    cs = [zeroed]
    chols = [np.asarray([_narrow_frame(target, zi, chol, GRID_SLACK) for zi in zeroed])]
    u0 = [np.zeros_like(zeroed)]
    if axis_points:
        u, log_p = np.concatenate(axis_points), np.concatenate(scores)
        # Half by p over q (mass where q puts none), half by p alone: a banana's arms, thin
        # against the spacing far out, are a local maximum at every few grid points with p
        # over q growing along them, and those alone crowded out a narrow mode 30 of q's
        # sds away, 15 nats above them.
        by_ratio = _distinct(u, log_p + 0.5 * np.sum(u ** 2, axis=1), GRID_CANDIDATES // 2)
        by_p = _distinct(u, log_p, GRID_CANDIDATES - by_ratio.size, avoid=u[by_ratio])
        picked = c + u[np.concatenate([by_ratio, by_p])] @ chol.T
        frames = np.asarray([_narrow_frame(target, zi, chol, GRID_SLACK) for zi in picked])
        # Short climbs from every candidate, and the GRID_KEEP best distinct ends climb on:
        # the points along a ridge of q's own mode gather there, and a narrow mode's point
        # reaches its peak, above the wide mode's.
        picked, frames, u_end = _screen(short, picked.astype(dtype), frames.astype(dtype),
                                        np.zeros_like(picked, dtype), GRID_KEEP, c, chol,
                                        factor=2)
        cs, chols, u0 = cs + [picked], chols + [frames], u0 + [u_end]
    return (np.concatenate(cs).astype(dtype), np.concatenate(chols).astype(dtype),
            np.concatenate(u0).astype(dtype))


def _grid_radius(side: int, d: int) -> np.ndarray:
    """The squared distance of each point of a ``side``^``d`` grid from its centre, in grid
    steps (the grid's shape)."""
    axis = (np.arange(side) - 0.5 * (side - 1)) ** 2
    out = axis
    for _ in range(d - 1):
        out = np.add.outer(out, axis)
    return out


def _zeroed(c: np.ndarray) -> np.ndarray:
    """q's mean ``c (d,)`` with each subset of its coordinates set to zero (2^d points, the
    mean itself left out): where a shrinkage prior puts a spike. A continuous spike-and-slab
    prior 0.5 N(0, 1e-8) + 0.5 N(0, 1) per coordinate, after one observation 2.5 of each of
    two coefficients, has 23% of each coordinate's mass in a spike whose basin (4e-4 across) no
    grid spacing in d = 2 reaches (0.0039 of q's sd at best), and the fit read "good" with log
    Z 0.53 nats low; zero is where such spikes are."""
    d = c.shape[0]
    masks = np.array(list(np.ndindex(*(2,) * d)), bool)[1:]  # which coordinates are zeroed
    return np.unique(np.where(masks, 0.0, c), axis=0)


def _log_normal(z: np.ndarray, loc: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """log N(z; loc, chol chol^T) of the rows of ``z (n, d)``, less d/2 log 2 pi."""
    w = scipy.linalg.solve_triangular(np.asarray(chol, np.float64), (z - loc).T, lower=True)
    return -0.5 * np.sum(w ** 2, axis=0) - float(np.sum(np.log(np.abs(np.diag(chol)))))


def _narrow_frame(target: Target, z: np.ndarray, chol: np.ndarray,
                  slack: float = 1.0) -> np.ndarray:
    """The Laplace frame at ``z`` where it lies within q's widened ``slack`` times (every
    direction's Laplace sd at most that: a basin narrower than q), else q's frame ``chol``. On
    a ridge (the catalog banana's arm) -H is nearly singular, and a climb in its frame wandered
    off and stopped where the gradient was small in that frame but no mode was."""
    lc = _laplace_chol(target, z)
    if lc is None or not np.all(np.isfinite(lc)):
        return chol
    inside = np.linalg.norm(np.linalg.solve(chol.astype(np.float64), lc), ord=2) <= slack
    return lc if inside else chol


def _screen(short, cs: np.ndarray, chols: np.ndarray, u0: np.ndarray, keep: int,
            c: np.ndarray, chol: np.ndarray, factor: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cs, chols, u)`` of at most ``keep`` starts for the full climb, chosen by ``short``
    climbs (``SCREEN_STEPS``) from every row of the frames ``cs (n, d)``, ``chols (n, d, d)``
    and whitened starts ``u0 (n, d)``: best log p first, each short end that lies within one
    unit (in q's frame ``c, chol``) of one already chosen is dropped, so every basin the short
    climbs reached, however few of them reached it, sends its best end on, before the
    stragglers still on their way. The full climbs continue from where the short ones stopped.

    A narrow mode beside a wide one has a basin that few over-dispersed starts land in (in
    d = 3, 1 in 200 for a mode of a quarter of the sd 8 sds out; docs/evidence.md): many cheap
    short climbs find it where a few long ones from the same distribution do not, and they
    stop there early, at a log p above the wide mode's. With ``factor`` 1 (no screening) the
    starts are returned as they are."""
    if factor == 1:
        return cs, chols, u0
    z, logp, _, u_end = _climb_frames(short, cs, chols, u0, whitened=True)
    w = np.linalg.solve(chol.astype(np.float64), (z - c).T.astype(np.float64)).T
    ok = np.isfinite(logp) & np.all(np.isfinite(z), axis=1)
    idx = _distinct(w, np.where(ok, logp, -np.inf), keep)
    return cs[idx], chols[idx], u_end[idx].astype(u0.dtype)


def _distinct(w: np.ndarray, score: np.ndarray, keep: int,
              avoid: np.ndarray | None = None) -> np.ndarray:
    """Indices of at most ``keep`` rows of ``w (n, d)`` (q's whitened units), highest finite
    ``score`` first, each more than one unit from every row kept before it and from every
    row of ``avoid (m, d)``. Each pick strikes out its neighbours at once (O(n d) per pick):
    a row-by-row scan took 7 of 11 s of a search over a million draws that crowded one basin."""
    score = np.asarray(score, np.float64)
    top = _DISTINCT_TOP * max(keep, 1)
    if score.size > top:
        # The picks among the highest-scoring rows are the picks among all of them for as
        # long as one of those rows is still unstruck; only when all are does it take the rest.
        idx = np.argpartition(-np.where(np.isfinite(score), score, -np.inf), top)[:top]
        chosen = _distinct_rows(w[idx], score[idx], keep, avoid)
        if chosen.size == keep:
            return idx[chosen]
    return _distinct_rows(w, score, keep, avoid)


# ``_distinct`` first looks among this many rows per pick with the highest scores.
_DISTINCT_TOP = 4096


def _distinct_rows(w: np.ndarray, score: np.ndarray, keep: int,
                   avoid: np.ndarray | None) -> np.ndarray:
    w = np.asarray(w, np.float64)
    alive = np.isfinite(score)
    for a in (np.zeros((0, w.shape[1])) if avoid is None else np.asarray(avoid, np.float64)):
        alive &= np.sum((w - a) ** 2, axis=1) >= 1.0
    masked = np.where(alive, score, -np.inf)
    chosen: list[int] = []
    while len(chosen) < keep:
        i = int(np.argmax(masked))
        if not np.isfinite(masked[i]):
            break
        chosen.append(i)
        masked[np.sum((w - w[i]) ** 2, axis=1) < 1.0] = -np.inf
    return np.asarray(chosen, dtype=int)


def search_programs(target: Target, lr: float = 0.3) -> list[tuple]:
    """The programs ``search_modes`` (with this ``lr``) runs, as ``(jitted,
    args)`` for ``vifit.ahead.compile_ahead``: the climb of a block of starts (for any
    number of steps: the screening's short climbs too), the Hessian, the segment test of
    log p and the Newton climbs that finish lone stragglers. Empty where the search does not
    apply."""
    if not target.differentiable or target.dim > MAX_DIM:
        return []
    d, dtype = target.dim, target.init.dtype
    row = jax.ShapeDtypeStruct((d,), dtype)
    block = [jax.ShapeDtypeStruct((CLIMB_BLOCK, *shape), dtype) for shape in ((d,), (d, d),
                                                                             (d,))]
    steps_arg = jax.ShapeDtypeStruct((), np.int32)
    programs = [(_climb_program(target.log_density, lr), (*block, steps_arg)),
                (_hessian(target.log_density), (row,)),
                (_segment(target.batch_log_density), (row, row))]
    if d <= FINISH_DIM:  # most searches leave a lone straggler (``_finish``)
        programs.append((_newton_program(target.log_density, FINISH_ITERS), (block[0],)))
    return programs


def search_cost(dim: int, starts: int = 256, steps: int = 400, per_mode: int = 64,
                factor: int | None = None, far: bool = True) -> int:
    """Gradients of log p that ``search_modes`` spends in ``dim`` dimensions when it finds one
    mode (the common case): the first round's climbs, far climbs and screening (``factor``
    candidates per start; default as the search), and one more round from that mode. Each
    further mode found costs about the second round again."""
    if factor is None:
        factor = SCREEN if dim <= SCREEN_MAX_DIM else 1
    own = int(np.sum(np.resize(np.asarray(SCALES), starts) <= 1.0))
    screened = (factor > 1) * SCREEN_STEPS * factor
    first = (starts * steps + far * FAR_STARTS * steps * (len(FAR) + 1)
             + screened * (starts - own))
    return int(first + per_mode * steps + screened * per_mode)


# At most this many new modes seed the next round of a search (each costs ``per_mode`` climbs).
MAX_NEW = 8


def climb_from(target: Target, points: Any, mean: Any, cov: Any, *, steps: int = 400,
               lr: float = 0.3) -> ModeSearch | None:
    """The modes that climbs of log p from ``points (n, d)`` (e.g. AIS's final particles)
    reach; covered means within ``COVERED`` of N(mean, cov) (q's moments). None when the target
    is not differentiable or d > ``MAX_DIM``."""
    if not target.differentiable or target.dim > MAX_DIM:
        return None
    t0 = time.perf_counter()
    c, chol = _frame(target, mean, cov)
    pts = jnp.asarray(points, c.dtype)
    u0 = jax.scipy.linalg.solve_triangular(chol, (pts - c).T, lower=True).T
    ends, logp, gnorm = _climb_one_frame(_climber(target.log_density, steps, lr), c, chol, u0)
    assigned = _assign(target, ends, logp, _converged(ends, logp, gnorm), _finite(ends, logp),
                       np.asarray(chol, np.float64))
    return _group(target, c, chol, ends, logp, assigned, np.zeros(pts.shape[0], bool), steps,
                  t0)


def climb_points(target: Target, points: Any, frame_mean: Any, frame_sd: Any, *,
                 steps: int = 400, lr: float = 0.3) -> np.ndarray:
    """The end points ``(n, d)`` of climbs of log p from ``points (n, d)`` by Adam in the
    diagonal frame ``z = frame_mean + frame_sd * u`` (no grouping); the same compiled climb as
    the search's."""
    c = jnp.asarray(frame_mean, target.init.dtype)
    chol = jnp.diag(jnp.asarray(frame_sd, c.dtype))
    u0 = (jnp.asarray(points, c.dtype) - c) / jnp.asarray(frame_sd, c.dtype)
    return _climb_one_frame(_climber(target.log_density, steps, lr), c, chol, u0)[0]


def _frame(target: Target, mean: Any, cov: Any):
    dtype = target.init.dtype
    c = jnp.asarray(mean, dtype=dtype)
    chol = _jittered_cholesky(jnp.asarray(cov, dtype=dtype))
    if not bool(jnp.all(jnp.isfinite(chol))):
        # A covariance beyond the dtype's condition (a float32 one with sds from 1e-3 to 1e3:
        # the search raised on its NaN factor): factor it in float64, its least eigenvalues
        # raised to what the dtype resolves beside its largest.
        a = np.asarray(cov, np.float64)
        w, u = np.linalg.eigh(0.5 * (a + a.T))
        floor = float(np.finfo(dtype).eps) * max(float(w[-1]), 0.0)
        a = (u * np.maximum(w, floor)) @ u.T
        chol = jnp.asarray(np.linalg.cholesky(a + floor * np.eye(a.shape[0])), dtype)
    return c, chol


@jax.jit
def _jittered_cholesky(cov):
    return jnp.linalg.cholesky(cov + 1e-9 * jnp.eye(cov.shape[0], dtype=cov.dtype))


def _finite(ends: np.ndarray, logp: np.ndarray) -> np.ndarray:
    return np.isfinite(logp) & np.all(np.isfinite(ends), axis=1)


def _converged(ends: np.ndarray, logp: np.ndarray, gnorm: np.ndarray) -> np.ndarray:
    return _finite(ends, logp) & (gnorm < GTOL)


def _laplace_chol(target: Target, z: np.ndarray) -> np.ndarray | None:
    """Cholesky factor of the Laplace covariance (-H)^-1 at ``z``; None where -H is not PD
    (in the target's dtype, nor, below float64, at the mode refined in float64:
    ``_refined_mode``)."""
    prec = _precision_at(target, z)
    eps = float(np.finfo(target.init.dtype).eps)
    factors = _laplace_factors(prec, eps)
    if factors is None and _lost_in_rounding(prec, eps):
        refined = _refined_mode(target, z)
        factors = None if refined is None else refined[2]
    return None if factors is None else factors[0]


def _precision_at(target: Target, z: np.ndarray) -> np.ndarray:
    """-H at ``z`` in the target's dtype, symmetrised, as float64 ``(d, d)``."""
    hess = _hessian(target.log_density)
    ready(hess)
    h = np.asarray(hess(on_device(z, target.init.dtype)), np.float64)
    return -0.5 * (h + h.T)


def _curvature(prec: np.ndarray, eps: float) -> tuple[float, float, float] | None:
    """``(least, largest eigenvalue of prec, eps)``, the record's ``ridge_curvature`` and
    ``refined_curvature``; None where ``prec`` is not finite."""
    if not np.all(np.isfinite(prec)):
        return None
    eig = np.linalg.eigvalsh(prec)
    return float(eig[0]), float(eig[-1]), eps


# A float32 end whose -H is not positive definite to float32's rounding is refined by up to
# REFINE_STEPS Newton steps in float64, and is a mode where, there, the least eigenvalue of
# -H exceeds REFINED_ULPS float64 rounding units of its largest (sds in a ratio up to about
# 2e6) and the last step moved it less than REFINED_STEP of its Laplace sds. The cross modes
# of a float32 spike-and-slab posterior (spike sd 1e-4 in one coordinate, slab sd 0.7 in the
# other: curvatures 1e8 and 2, a ratio float32 cannot resolve) were dropped as ridges, and the
# fit read "good" with log Z 0.435 nats low (a third of the mass). A real ridge stays one: on
# the ring -((|z| - 3) / 0.3)^2 / 2 the curvature along the ring at a float32 end (4e-7 against
# 11, its radius off by 1e-7) vanishes to float64's rounding once the radius is refined.
REFINE_STEPS = 8
REFINED_ULPS = 1e3
REFINED_STEP = 1e-3
# A search refines at most this many ends (each a few float64 Hessians of log p), the highest
# first, and only ends whose least eigenvalue of -H is lost in the rounding of the largest
# (``_lost_in_rounding``): a clearly negative one is a saddle or a ridge in any precision.
MAX_REFINED = 16


def _lost_in_rounding(prec: np.ndarray, eps: float) -> bool:
    """-H = ``prec`` has a positive largest eigenvalue and a least one within
    ``UNRESOLVED_ULPS`` rounding units (``eps``) of it, either side."""
    if not np.all(np.isfinite(prec)):
        return False
    eig = np.linalg.eigvalsh(prec)
    return _unresolved_pair(float(eig[0]), float(eig[-1]), eps)


def _unresolved_pair(least: float, largest: float, eps: float) -> bool:
    return bool(np.isfinite(largest) and largest > 0
                and abs(least) <= UNRESOLVED_ULPS * eps * largest)


def _refined_mode(target: Target, z: np.ndarray):
    """``(z*, log p(z*), (chol, cov))``: the end ``z`` refined in float64 by Newton's method
    and the Laplace factors there (``_laplace_factors``), all float64; None where the target
    is float64 already, its log p does not compute in float64 (it returns another dtype or
    raises), or the refined -H is not positive definite (see ``REFINED_ULPS``)."""
    if np.dtype(target.init.dtype) == np.float64 or not np.all(np.isfinite(z)):
        return None
    eps = REFINED_ULPS * float(np.finfo(np.float64).eps)
    try:
        with jax.enable_x64(True):
            spec = jax.ShapeDtypeStruct((target.dim,), jnp.float64)
            if jax.eval_shape(target.log_density, spec).dtype != jnp.float64:
                return None  # log p rounds to float32 itself: float64 would resolve nothing
            value_grad, hess = _value_grad(target.log_density), _hessian(target.log_density)
            z, moved = np.asarray(z, np.float64), math.inf
            for _ in range(REFINE_STEPS + 1):
                value, g = (np.asarray(a, np.float64) for a in value_grad(on_device(z,
                                                                                    np.float64)))
                h = np.asarray(hess(on_device(z, np.float64)), np.float64)
                factors = _laplace_factors(-0.5 * (h + h.T), eps)
                if factors is None or not (np.isfinite(value) and np.all(np.isfinite(g))):
                    return None
                if moved < REFINED_STEP:  # judged where the last step landed, never at the
                    return z, float(value), factors  # float32 end itself
                step = factors[1] @ g  # (-H)^-1 g
                moved = float(np.sqrt(max(g @ step, 0.0)))  # in Laplace sds
                z = z + step
            return None  # Newton did not settle: not a mode it can refine
    except Exception:  # noqa: BLE001 - a log p written for float32 may refuse float64
        return None


@kept(8)
def _value_grad(log_density):
    return jax.jit(jax.value_and_grad(log_density))


def _moment_frame(target: Target, locs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and Cholesky factor of the equal-weight spread of the mode locations ``(k, d)``,
    floored at unit variance so that the frame is never degenerate."""
    m = locs.mean(0)
    cov = np.cov(locs.T, bias=True).reshape(target.dim, target.dim) + np.eye(target.dim)
    return m, np.linalg.cholesky(cov)


def _climb_one_frame(climb, c, chol, u0, whitened: bool = False):
    """``climb`` with every start in the frame ``c, chol``."""
    n = u0.shape[0]
    c, chol = np.asarray(c), np.asarray(chol)  # broadcast on the host: no program each
    return _climb_frames(climb, np.broadcast_to(c, (n,) + c.shape),
                         np.broadcast_to(chol, (n,) + chol.shape), u0, whitened)


# Climbs run in blocks of this many starts (the last one padded), so that every round of a
# search, whatever its number of starts, runs one compiled program: a second shape cost 0.7 s
# of compiling on eight schools. The default ``starts`` and ``per_mode`` are multiples of it.
CLIMB_BLOCK = 64


def _climb_frames(climb: _Climb, cs, chols, u0, whitened: bool = False):
    """``climb`` with a frame per start, in blocks of ``CLIMB_BLOCK``: the end points, log p
    there and the whitened gradient norm as float64 NumPy arrays, and with ``whitened`` the
    end points in each start's frame too (in u0's dtype)."""
    n, d = np.shape(u0)
    if n == 0:
        out = (np.zeros((0, d)), np.zeros(0), np.zeros(0), np.zeros((0, d), np.asarray(u0).dtype))
        return out if whitened else out[:3]
    ready(climb.program)
    steps = np.int32(climb.steps)
    z, logp, gnorm, u = in_blocks(lambda *block: climb.program(*block, steps), (cs, chols, u0),
                                  CLIMB_BLOCK)
    out = (z.astype(np.float64), logp.astype(np.float64), gnorm.astype(np.float64))
    return out + (u,) if whitened else out


def _group(target: Target, c, chol, ends: np.ndarray, logp: np.ndarray, assigned,
           from_q: np.ndarray, steps: int, t0: float) -> ModeSearch:
    """Weigh each mode of ``assigned = (representatives, members)`` (``_assign``'s, in q's
    frame ``c, chol``) by Laplace, and mark it covered by q."""
    starts = int(ends.shape[0])
    reps, members = assigned
    chol_np = np.asarray(chol, np.float64)
    modes, ridges, ridge_curvature, refined_curvature = [], 0, None, None
    n_refined = n_tried = 0
    eps = float(np.finfo(target.init.dtype).eps)
    for rep, who in zip(reps, members):
        z = ends[rep]
        prec = _precision_at(target, z)
        factors = _laplace_factors(prec, eps)
        log_p = float(logp[rep])
        refined = None
        if factors is None and n_tried < MAX_REFINED and _lost_in_rounding(prec, eps):
            n_tried += 1
            refined = _refined_mode(target, z)
        if refined is not None:
            z, log_p, factors = refined
            twin = _same_mode(modes, z, factors[0])
            if twin is not None:  # ends the dtype could not tell apart, one mode in float64
                modes[twin] = modes[twin]._replace(starts=modes[twin].starts + len(who),
                                                   covered=modes[twin].covered
                                                   or bool(np.any(from_q[who])))
                continue
            n_refined += 1
            refined_curvature = refined_curvature or _curvature(prec, eps)
        if factors is None:
            ridges += 1
            # reps come best first
            ridge_curvature = ridge_curvature or _curvature(prec, eps)
            continue
        log_det_prec = -2.0 * np.sum(np.log(np.diag(factors[0])))  # C C^T = (-H)^-1
        log_mass = float(log_p + 0.5 * target.dim * math.log(2 * math.pi)
                         - 0.5 * log_det_prec)
        u = np.linalg.solve(chol_np, z - np.asarray(c, np.float64))
        dist = float(np.sqrt(u @ u))
        covered = bool(dist < COVERED or np.any(from_q[who]))
        modes.append(Mode(z, log_p, log_mass, factors[1], dist, len(who), covered))
    modes.sort(key=lambda m: -m.log_mass)
    unconverged = int(starts - sum(len(w) for w in members))
    finite = np.isfinite(logp) & np.all(np.isfinite(ends), axis=1)
    if not modes and ridge_curvature is None and np.any(finite):
        # No end converged (the float32 gradient there can be rounding noise above GTOL: on
        # JAX 0.12 every climb on a Gaussian with sds from 1e-3 to 1e3 stopped short): the
        # curvature at the highest end stands in, for ``unresolved_curvature``.
        highest = ends[int(np.argmax(np.where(finite, logp, -np.inf)))]
        ridge_curvature = _curvature(_precision_at(target, highest), eps)
    return ModeSearch(modes, ridges, unconverged, starts, steps, time.perf_counter() - t0,
                      ridge_curvature=ridge_curvature,
                      refined=n_refined, refined_curvature=refined_curvature)


# A least eigenvalue of -H within this many rounding units (eps times the largest) of zero is
# lost in rounding: the Hessian of a float32 Gaussian with sds from 1e-3 to 1e3 (curvatures
# 1e6 to 1e-6) read its least as 1e-2 to -1e-1, within 1e-2 eps of the largest 1e6.
UNRESOLVED_ULPS = 10.0


def _same_mode(modes: list[Mode], z: np.ndarray, chol: np.ndarray) -> int | None:
    """The index of the mode of ``modes`` within one Laplace sd (of the factor ``chol``) of
    ``z``, or None. A float32 Gaussian with sds from 1e-3 to 1e3 (rotated, d = 3) left its
    climbs' ends scattered along the sd the dtype cannot resolve, in 60 groups that float64
    refined to one point."""
    for i, mode in enumerate(modes):
        u = scipy.linalg.solve_triangular(chol, mode.location - z, lower=True)
        if float(np.sqrt(u @ u)) < 1.0:
            return i
    return None


def unresolved_curvature(summary: dict | None) -> float | None:
    """Where the search found no mode but ended at a ridge (or, no climb converging, at a
    highest end) whose -H has a positive largest eigenvalue and a least one lost in its
    rounding (within ``UNRESOLVED_ULPS`` eps of it, either side): that largest eigenvalue
    (p's curvature there, 1 / sd^2). Such a point is either a real ridge or flat direction,
    or a mode whose scales span more than the floating-point type resolves (sds in a ratio
    beyond about 1 / sqrt(eps): 2,900 in float32). Also, where the search found modes whose
    -H the dtype did not resolve and measured them in float64 (``_refined_mode``), the
    largest eigenvalue at the first. None otherwise."""
    if summary and summary.get("refined") and summary.get("refined_curvature"):
        largest = summary["refined_curvature"][1]
        return float(largest) if np.isfinite(largest) and largest > 0 else None
    if not summary or summary.get("found", 0) or not summary.get("ridge_curvature"):
        return None
    least, largest, eps = summary["ridge_curvature"]
    return float(largest) if _unresolved_pair(least, largest, eps) else None


def precision_hint(modes: dict | None, dtype) -> str:
    """A sentence for a verdict whose fit's mode search ended at a point where log p's
    curvature spans more than ``dtype`` resolves (``vifit.modes.unresolved_curvature``), or
    "". A float32 Gaussian with sds from 1e-3 to 1e3, rotated, ended "not reliable" with a
    verdict that blamed q's tails and asked for a richer family, while in float64 the same
    fit is exact: no family mends arithmetic."""
    largest = unresolved_curvature(modes)
    if largest is None:
        return ""
    name = np.dtype(dtype).name
    eps = float(np.finfo(np.dtype(dtype)).eps) if np.issubdtype(np.dtype(dtype),
                                                                 np.floating) else 0.0
    fix = ("compute in float64 (jax.config.update(\"jax_enable_x64\", True) before building "
           "the target, with float64 data and start) or rescale the parameters to similar "
           "scales" if name != "float64" else "rescale the parameters to similar scales")
    span = f" (sds in a ratio beyond about {1 / math.sqrt(eps):,.0f})" if eps else ""
    refined = int(modes.get("refined") or 0) if modes else 0
    if refined:
        return (f"The mode search found {refined} mode{'s' if refined != 1 else ''} whose "
                f"curvatures span more than {name} resolves{span} (the Hessian's largest "
                f"eigenvalue {largest:.2g}, an sd of {1 / math.sqrt(largest):.2g}, its least "
                f"lost in rounding), and measured {'them' if refined != 1 else 'it'} in "
                f"float64; q, fitted in {name}, may not hold such a shape, which no family or "
                f"number of steps can mend: {fix}.")
    return (f"The mode search's climbs ended where log p's curvature spans more than {name} "
            f"resolves (the Hessian's largest eigenvalue is {largest:.2g}, an sd of "
            f"{1 / math.sqrt(largest):.2g}, and its least is lost in rounding): p is flat "
            "along some direction there (a ridge, or a parameter the data do not identify), or "
            f"its scales differ by more than {name} can hold{span}. In the second case, which "
            f"no family or number of steps can mend, {fix}.")


def _proper_chol(prec: np.ndarray, eps: float) -> np.ndarray | None:
    """Cholesky factor of a mode's precision -H, or None where -H is not positive definite to
    within its rounding (its least eigenvalue at most eps times its largest, below one ulp of
    it: a direction as flat as the arithmetic can tell). Along the ring log p = -((|z| - 3) /
    0.3)^2 / 2 a float32 Hessian read the flat direction as a curvature of 1e-10 against 11
    across (4e-9 of the largest and less; float32's eps is 1.2e-7): a "mode" with an sd of 6e4
    along the ring, whose Laplace Gaussian auto then tried to start a mixture from. A real
    mode as ill-conditioned as that has no Laplace mass worth the name either."""
    if not np.all(np.isfinite(prec)):
        return None
    try:
        eig = np.linalg.eigvalsh(prec)
        if eig[0] <= eps * max(eig[-1], 0.0):
            return None
        return np.linalg.cholesky(prec)
    except np.linalg.LinAlgError:  # eigvalsh did not converge, or rounding broke Cholesky
        return None


def _laplace_factors(prec: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The lower Cholesky factor C of ``prec``'s inverse and the inverse C C^T itself, from the
    Cholesky factor F of ``prec`` with rows and columns reversed (J prec J = F F^T gives
    prec^-1 = (J F^-T J)(J F^-1 J), and J F^-T J is lower triangular): triangular solves
    only, no inverse of ``prec``. On a Gaussian with sds from 1e-3 to 1e3 (d = 10, float64)
    ``np.linalg.inv`` of its Hessian had an eigenvalue of -0.1 where 1e-6 was right, and the
    mode it stood for read "not covered" by the exact q. None where ``prec`` is not positive
    definite to within its rounding (``_proper_chol``)."""
    flipped = _proper_chol(np.asarray(prec, np.float64)[::-1, ::-1], eps)
    if flipped is None:
        return None
    inv = scipy.linalg.solve_triangular(flipped, np.eye(flipped.shape[0]), lower=True)
    chol = np.ascontiguousarray(inv.T[::-1, ::-1])
    return chol, chol @ chol.T


@kept(8)
def _segment(batch_log_density):
    """Jitted ``(a, b) -> log p`` at ``SEGMENT_POINTS`` interior points of the segment a-b."""
    ts = np.linspace(0.0, 1.0, SEGMENT_POINTS + 2)[1:-1]
    return jax.jit(lambda a, b: batch_log_density(
        a[None, :] + jnp.asarray(ts, a.dtype)[:, None] * (b - a)[None, :]))


# Climbs that end unconverged and join no mode found ("lone stragglers") are finished by
# Newton's method, in up to FINISH_DIM dimensions: the FINISH_KEEP highest in log p, for
# FINISH_ITERS steps each. An arm of a sharp banana far from its mode is a ridge a
# thousandth of a unit across that curves away: Adam, whose steps are a fixed fraction of
# its frame, could not follow it in 2,000 steps, and the mode (40% of the mass, 146 units
# from the other) went unfound while the fit read "good" with log Z 0.52 nats low; Newton's
# steps follow the ridge's curvature (the Rosenbrock valley's classic cure).
FINISH_DIM = 32
FINISH_KEEP = 64
FINISH_ITERS = 60
# ... and the highest that fit in this share of SEARCH_FLOPS (on a data target's rows, 64
# Newton climbs in d = 20 would cost most of a search).
FINISH_SHARE = 0.25
# Step lengths tried along each Newton direction (the best finite one that raises log p).
FINISH_LADDER = tuple(0.5 ** k for k in range(12))


def _finish(target: Target, ends: np.ndarray, logp: np.ndarray, members: list,
            flops: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(ends, log p there, Newton decrement)`` of Newton climbs (``_newton_program``) from
    the highest lone stragglers among ``ends`` (finite, in no mode's ``members``): at most
    ``FINISH_KEEP``, and as many as ``FINISH_SHARE`` of the search's budget affords at
    ``flops`` per gradient; None where there are none, none is affordable or d >
    ``FINISH_DIM``."""
    d = target.dim
    joined = np.zeros(ends.shape[0], bool)
    for who in members:
        joined[who] = True
    lone = np.flatnonzero(_finite(ends, logp) & ~joined)
    each = FINISH_ITERS * (d + len(FINISH_LADDER)) * flops  # a Hessian costs d gradients
    keep = min(lone.size, FINISH_KEEP, int(FINISH_SHARE * SEARCH_FLOPS / each))
    if keep == 0 or d > FINISH_DIM:
        return None
    lone = lone[np.argsort(-logp[lone])][:keep]
    program = _newton_program(target.log_density, FINISH_ITERS)
    ready(program)
    z0 = ends[lone].astype(target.init.dtype)
    z, value, dec = in_blocks(program, (z0,), CLIMB_BLOCK)
    return z.astype(np.float64), value.astype(np.float64), dec.astype(np.float64)


@kept(8)
def _newton_program(log_density, iters: int):
    """Jitted, vmapped: ``iters`` Newton steps on log p from each row of ``z (n, d)``, the
    Hessian's eigenvalues taken in absolute value and floored (at 1e-6 of the largest) so
    that every step goes uphill, its length the best of ``FINISH_LADDER`` (no step where none
    raises log p); returns the end points, log p there and the Newton decrement
    sqrt(g^T |H|^-1 g) there, which is the gradient's norm in the local Laplace frame (so
    comparable with the climbs' ``GTOL``)."""
    ladder = jnp.asarray(FINISH_LADDER)

    def value(z):
        v = log_density(z)
        return jnp.where(jnp.isfinite(v), v, -jnp.inf)

    def direction(z):
        f, g = jax.value_and_grad(value)(z)
        h = jax.hessian(value)(z)
        lam, vec = jnp.linalg.eigh(-0.5 * (h + h.T))
        lam = jnp.abs(lam)
        lam = jnp.maximum(lam, 1e-6 * jnp.max(lam) + jnp.finfo(z.dtype).tiny)
        proj = vec.T @ jnp.where(jnp.isfinite(g), g, 0.0)
        return f, vec @ (proj / lam), jnp.sqrt(jnp.sum(proj ** 2 / lam))

    def one(z):
        def body(_, z):
            f, step, _ = direction(z)
            cand = z[None, :] + ladder[:, None] * step[None, :]
            vals = jax.vmap(value)(cand)
            best = jnp.argmax(vals)
            ok = jnp.isfinite(vals[best]) & (vals[best] > f) & jnp.all(jnp.isfinite(cand[best]))
            return jnp.where(ok, cand[best], z)

        z = jax.lax.fori_loop(0, iters, body, z)
        f, _, dec = direction(z)
        return z, f, jnp.where(jnp.isfinite(dec), dec, jnp.inf)

    return jax.jit(jax.vmap(one))


@kept(8)
def _hessian(log_density):
    return jax.jit(jax.hessian(log_density))


class _Climb(NamedTuple):
    """A climb of ``steps`` Adam steps by the compiled ``program`` of ``_climb_program``."""
    program: Any
    steps: int


def _climber(log_density, steps: int, lr: float) -> _Climb:
    """Adam ascent on log p for ``steps`` steps: one compiled program per (log density, lr)
    serves every number of steps (the search's 400, the screening's 20)."""
    return _Climb(_climb_program(log_density, lr), int(steps))


@kept(8)
def _climb_program(log_density, lr: float):
    """Adam ascent on log p, compiled once per (log density, lr): called with per-start frames
    ``cs (n, d)``, ``chols (n, d, d)``, whitened starts ``u0 (n, d)`` and the number of steps
    (an int32 scalar: the step size decays from ``lr`` to ``lr / 100`` on a cosine over them),
    it returns the end points ``(n, d)``, log p there ``(n,)``, the whitened gradient norm
    ``(n,)`` and the end points in each start's whitened frame ``(n, d)``."""

    def one(c, chol, u, steps):
        span = jnp.maximum(steps, 1).astype(u.dtype)

        def schedule(count):
            frac = jnp.minimum(count.astype(u.dtype) / span, 1.0)
            return lr * (0.01 + 0.99 * 0.5 * (1.0 + jnp.cos(jnp.pi * frac)))

        opt = optax.adam(schedule)

        def neg(u):
            v = -log_density(c + chol @ u)
            return jnp.where(jnp.isfinite(v), v, jnp.inf)

        def body(_, carry):
            u, state = carry
            value, g = jax.value_and_grad(neg)(u)
            g = jnp.where(jnp.isfinite(g), g, 0.0)
            upd, state = opt.update(g, state, u)
            new = optax.apply_updates(u, upd)
            # Never step into a non-finite region: stay, and let the schedule shrink the step.
            new = jnp.where(jnp.isfinite(neg(new)), new, u)
            return new, state

        u, _ = jax.lax.fori_loop(0, steps, body, (u, opt.init(u)))
        value, g = jax.value_and_grad(neg)(u)
        return c + chol @ u, -value, jnp.sqrt(jnp.sum(g**2)), u

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None)))


def _assign(target: Target, ends: np.ndarray, logp: np.ndarray, conv: np.ndarray,
            finite: np.ndarray, chol: np.ndarray) -> tuple[list[int], list[np.ndarray]]:
    """Modes from the converged ends (best first), and the ends (converged or merely finite)
    that belong to each: ``(representatives, members)``."""
    u = np.linalg.solve(chol, ends.T).T
    dtype = target.init.dtype
    seg = _segment(target.batch_log_density)
    ready(seg)

    def joins(i: int, rep: int) -> bool:
        if np.linalg.norm(u[i] - u[rep]) < 1.0:
            return True
        path = np.asarray(seg(on_device(ends[i], dtype), on_device(ends[rep], dtype)),
                          np.float64)
        return bool(np.all(np.isfinite(path)) and np.min(path) >= logp[i] - BARRIER)

    reps: list[int] = []
    members: list[list[int]] = []
    for i in np.argsort(-np.where(conv, logp, -np.inf)):
        if not conv[i]:
            break
        for k, rep in enumerate(reps):
            if joins(i, rep):
                members[k].append(i)
                break
        else:
            reps.append(int(i))
            members.append([int(i)])
    for i in np.flatnonzero(finite & ~conv):  # stragglers join a mode, never found one
        for k, rep in enumerate(reps):
            if joins(i, rep):
                members[k].append(int(i))
                break
    return reps, [np.asarray(m) for m in members]
