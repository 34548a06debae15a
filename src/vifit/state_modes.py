"""Mode search over integer states: are there separated modes that a mean-field q misses?

The discrete counterpart of ``vifit.modes``. A factorized q (``bernoulli``, ``categorical``)
fitted by KL(q || p) settles on one mode: on a 4 x 4 Ising model below its critical
temperature (coupling 0.5, no field: all spins up and all spins down equally likely) it sat on
one of the two, its k-hat was small, and the fit read "good" with log Z 0.74 nats low. k-hat
reads p/q only at q's draws and cannot see the other mode.

The search climbs log p by iterated conditional modes: site after site, each set to the state
that maximizes log p with the others held, sweep after sweep until a sweep changes nothing (a
local maximum under single-site changes) or ``MAX_SWEEPS`` have run. The starts are draws of q
with each site redrawn uniformly with probability 0 (q itself), 1/4, 1/2 or 1 (uniform
states: the discrete over-dispersion), and draws of q's opposite (its logits negated), all
climbing together in one compiled ``vmap``. The ``MAX_GROUPED`` best distinct end states by
log p are grouped into modes: two are one mode when a path of single-site changes between them
never dips more than ``BARRIER`` below the lower (the climbs that ended elsewhere are counted
with the record's ``unconverged``). A mode's mass is estimated from its sites' local
conditionals,

    log M(m) = log p(m) + sum_i log sum_k exp(log p(m with x_i = k) - log p(m)),

the sum of p over every state as if the sites were independent around m (the discrete Laplace
estimate: right for a product distribution, rough otherwise). A mode is covered by q when log q
there is above the 0.1% quantile of log q at q's own draws (q draws states like it).

What it costs: ``starts`` x sweeps x d x K evaluations of log p (a sweep evaluates every state
of every site with the others held), at most ``MAX_SWEEPS`` sweeps, plus d x K per mode; cut
(fewer starts, the record's ``reduced``) to stay within ``vifit.modes.SEARCH_FLOPS``. What it
can miss: a mode none of the starts climbs to (a narrow one beside wide ones, in many sites),
and the Laplace masses are rough where neighbouring sites interact strongly.
"""

from __future__ import annotations

import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp

from vifit.discrete import eval_flops
from vifit.freshness import kept
from vifit.modes import SEARCH_FLOPS, SKIP_FACTOR, Mode, ModeSearch, log_sum_exp
from vifit.rng import numpy_rng

MAX_SWEEPS = 50
STARTS = 256
MIN_STARTS = 64
# Chance that a start redraws each of its sites uniformly, cycled over the starts with draws
# of the opposite of q: 0 is q's own draws (they tell which modes q covers), 1 uniform states.
# The opposite of q reaches what uniform states cannot where climbs freeze: on a 20 x 20
# Ising model below its critical temperature (q itself stuck in a striped state) every climb
# from a uniform state froze in a state of domains of its own, and only a climb from q's
# opposite reached the mirror image of q's state, 387 of 400 sites away.
REDRAW = (0.0, 0.25, 0.5, 1.0)
# A mode is covered when log q there is above this quantile of log q at q's own draws.
COVER_QUANTILE = 0.001
COVER_DRAWS = 4000
# Two local maxima are one mode when a path of single-site changes between them (``_path_low``)
# never dips more than this below the lower of the two
# (``vifit.modes.BARRIER`` for densities): above the critical temperature the Ising model's
# single-site maxima are shallow bumps of one broad mode, not separate masses.
BARRIER = 1.0  # nats
# Local maxima (the best by log p) grouped into modes; the rest are dropped, and counted:
# on a 20 x 20 Ising model every one of 256 climbs ended at a state of its own (domains
# frozen by single-site changes).
MAX_GROUPED = 32


@kept(8)
def _climber(log_prob, n_states: int, dim: int):
    """Jitted ``(states (S, d) int32) -> (ends (S, d), sweeps run (S,))``: iterated
    conditional modes from each start, to a local maximum or ``MAX_SWEEPS`` sweeps."""
    choices = jnp.arange(n_states, dtype=jnp.int32)

    def site(i, x):
        trial = jax.vmap(lambda k: x.at[i].set(k))(choices)  # (K, d)
        values = jax.vmap(log_prob)(trial)
        values = jnp.where(jnp.isnan(values), -jnp.inf, values)
        # keep the current state on a tie: a plateau is not a climb
        best = jnp.argmax(values)
        return jnp.where(values[best] > values[x[i]], x.at[i].set(best.astype(x.dtype)), x)

    def sweep(x):
        return jax.lax.fori_loop(0, dim, site, x)

    def climb(x0):
        def go(carry):
            x, _, n = carry
            new = sweep(x)
            return new, jnp.any(new != x), n + 1

        x, _, n = jax.lax.while_loop(lambda c: c[1] & (c[2] < MAX_SWEEPS), go,
                                     (x0, jnp.array(True), jnp.array(0, jnp.int32)))
        return x, n

    return jax.jit(jax.vmap(climb))


@kept(8)
def _neighbours(log_prob, n_states: int, dim: int):
    """Jitted ``(m (d,) int32) -> (d, K)``: log p with site i set to k, the rest as in m."""
    choices = jnp.arange(n_states, dtype=jnp.int32)

    def table(m):
        def row(i):
            return jax.vmap(lambda k: log_prob(m.at[i].set(k)))(choices)
        return jax.vmap(row)(jnp.arange(dim))

    return jax.jit(table)


@kept(8)
def _path_low(log_prob, dim: int):
    """Jitted ``(a, b) -> lowest log p`` on a path of single-site changes from state ``a`` to
    state ``b``: the sites where they differ change one at a time, those whose change alone
    leaves log p highest at ``a`` first (d + the distance evaluations of log p, where the
    best change at every step would cost d times that: 0.17 s a pair in d = 400)."""
    sites = jnp.arange(dim)

    def low(a, b):
        differ = a != b
        alone = jax.vmap(lambda j: log_prob(a.at[j].set(b[j])))(sites)
        order = jnp.argsort(-jnp.where(differ & ~jnp.isnan(alone), alone, -jnp.inf))

        def step(carry, j):
            x, lowest = carry
            go = differ[j]
            x = jnp.where(go, x.at[j].set(b[j]), x)
            value = log_prob(x)
            value = jnp.where(jnp.isnan(value), -jnp.inf, value)
            return (x, jnp.where(go, jnp.minimum(lowest, value), lowest)), None

        return jax.lax.scan(step, (a, log_prob(a)), order)[0][1]

    return jax.jit(low)


def _group(modes: list[Mode], path_low) -> list[Mode]:
    """``modes`` (best log p first) merged where a path between them dips less than
    ``BARRIER`` below the lower end: each group is its best member, with the starts of all
    and covered when any member is."""
    groups: list[list[Mode]] = []
    for mode in modes:
        for group in groups:
            head = group[0]
            lowest = float(path_low(jnp.asarray(head.location, jnp.int32),
                                    jnp.asarray(mode.location, jnp.int32)))
            if lowest >= min(head.log_p, mode.log_p) - BARRIER:
                group.append(mode)
                break
        else:
            groups.append([mode])
    return [g[0]._replace(starts=sum(m.starts for m in g), covered=any(m.covered for m in g))
            for g in groups]


def _starts(family, params, key, n: int, n_states: int, dim: int) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """``n`` starts ``(n, d)`` int32 and whether each is a draw of q itself: cycled over
    ``REDRAW`` (q's draws with sites redrawn uniformly) and draws of the opposite of q (its
    logits negated: at every site the states q finds least likely)."""
    k_q, k_anti, k_u = jax.random.split(key, 3)
    from_q = np.asarray(family.sample(params, k_q, n), np.int32).reshape(n, dim)
    anti = np.asarray(family.sample(jax.tree.map(jnp.negative, params), k_anti, n),
                      np.int32).reshape(n, dim)
    rng = numpy_rng(k_u)
    uniform = rng.integers(0, n_states, size=(n, dim), dtype=np.int32)
    kind = np.resize(np.arange(len(REDRAW) + 1), n)
    redraw = np.asarray(REDRAW + (0.0,))[kind]
    pick = rng.random((n, dim)) < redraw[:, None]
    x = np.where(pick, uniform, from_q)
    x[kind == len(REDRAW)] = anti[kind == len(REDRAW)]
    return x, kind == 0


def _plan(dim: int, n_states: int, eval_flops: float, budget: float) -> tuple[int, bool] | None:
    """(starts, reduced) within ``budget`` flops, or None when even ``MIN_STARTS`` would
    overrun it ``SKIP_FACTOR`` times."""
    per_start = MAX_SWEEPS * dim * n_states * eval_flops
    if STARTS * per_start <= budget:
        return STARTS, False
    fit = int(budget // per_start)
    if fit >= MIN_STARTS:
        return fit, True
    if MIN_STARTS * per_start <= SKIP_FACTOR * budget:
        return MIN_STARTS, True
    return None


def searchable(family) -> bool:
    """Whether the search over states applies to fits of ``family``: a factorized family over
    states (``bernoulli``, ``categorical``), whose logits it draws from and negates."""
    return bool(getattr(family, "discrete", False)) and hasattr(family, "site_log_probs")


def search_states(target, family, params, key: jax.Array,
                  budget: float | None = None) -> ModeSearch | None:
    """The mode search over ``target``'s states (a ``vifit.DiscreteTarget``) around the
    factorized q ``(family, params)``; see the module docstring. None when even the smallest
    search would overrun its budget (``budget`` flops; None: ``SEARCH_FLOPS``) many times."""
    t0 = time.perf_counter()
    dim, n_states = int(target.dim), int(target.n_states)
    log_prob = target.log_prob
    flops = eval_flops(log_prob, dim)
    plan = _plan(dim, n_states, flops, SEARCH_FLOPS if budget is None else budget)
    if plan is None:
        return None
    n, reduced = plan
    k_starts, k_cover = jax.random.split(key)
    x0, own = _starts(family, params, k_starts, n, n_states, dim)
    ends, sweeps = (np.asarray(a) for a in _climber(log_prob, n_states, dim)(jnp.asarray(x0)))
    done = sweeps < MAX_SWEEPS
    states, counts = np.unique(ends[done], axis=0, return_counts=True)
    own_ends = {tuple(e) for e in ends[done & own]}
    # the best ends by log p go on; the starts of the rest count as not converged to a mode
    # the record lists (a frustrated model freezes climbs in states of negligible mass)
    if len(states) > MAX_GROUPED:
        at = np.asarray(jax.vmap(log_prob)(jnp.asarray(states)), np.float64)
        best = np.argsort(-np.where(np.isnan(at), -np.inf, at))[:MAX_GROUPED]
        dropped = int(counts.sum() - counts[best].sum())
        states, counts = states[best], counts[best]
    else:
        dropped = 0
    log_q_floor, log_q_at = _q_reach(family, params, k_cover, states)
    mode_q = np.asarray(jnp.argmax(family.site_log_probs(params), axis=-1))
    table_of = _neighbours(log_prob, n_states, dim)
    modes = []
    for state, count, lq in zip(states, counts, log_q_at):
        table = np.asarray(table_of(jnp.asarray(state)), np.float64)  # (d, K)
        log_p = float(table[0, state[0]])
        log_mass = log_p + float(np.sum(logsumexp(table - log_p, axis=1)))
        modes.append(Mode(location=state.astype(np.float64), log_p=log_p,
                          log_mass=log_mass if np.isfinite(log_mass) else math.nan, cov=None,
                          distance=float(np.sum(state != mode_q)), starts=int(count),
                          covered=bool(lq >= log_q_floor or tuple(state) in own_ends)))
    modes.sort(key=lambda m: -m.log_p)
    modes = _group(modes, _path_low(log_prob, dim))
    modes.sort(key=lambda m: -m.log_mass if np.isfinite(m.log_mass) else math.inf)
    return ModeSearch(modes=modes, ridges=0, unconverged=int(np.sum(~done)) + dropped, starts=n,
                      steps=MAX_SWEEPS, seconds=time.perf_counter() - t0, rounds=1,
                      saturated=True, screened=0, reduced=reduced,
                      gradient_flops=flops)


def _q_reach(family, params, key, states: np.ndarray) -> tuple[float, np.ndarray]:
    """The ``COVER_QUANTILE`` quantile of log q at ``COVER_DRAWS`` draws of q, and log q at
    ``states``."""
    log_q_of = _log_q_program(family)
    draws = family.sample(params, key, COVER_DRAWS)
    log_q = np.asarray(log_q_of(params, draws), np.float64)
    at = (np.asarray(log_q_of(params, jnp.asarray(states, jnp.int32)), np.float64)
          if len(states) else np.zeros(0))
    return float(np.quantile(log_q, COVER_QUANTILE)), at


def record(search: ModeSearch) -> dict[str, Any]:
    """``FitResult.info["modes"]`` for a search over states: ``ModeSearch.summary()`` with the
    missed share of the modes' mass and ``"states": True`` (the verdicts word a search over
    states apart from a climb of a density)."""
    summary = search.summary()
    finite = [m for m in search.modes if np.isfinite(m.log_mass)]
    missed = [m.log_mass for m in finite if not m.covered]
    summary["missed_mass_fraction"] = (
        float(np.exp(log_sum_exp(np.array(missed))
                     - log_sum_exp(np.array([m.log_mass for m in finite])))) if missed else 0.0)
    summary["states"] = True
    return summary


# Draws of the mixture of q and the uncovered modes whose importance sampling measures the
# mass q misses in a fit's check (``vifit.evidence`` uses its own ``draws``).
CHECK_DRAWS = 4000
# The flattening of a mode's second proposal: its site log probabilities times this, renormalized.
SOFTEN = 0.5
# The mixture's log Z must exceed q's by this many combined standard errors before the mass it
# finds counts as missed by q.
GAIN_Z = 2.0


def site_log_probs_at(log_prob, n_states: int, state: np.ndarray) -> np.ndarray:
    """``(d, K)``: log of the product distribution of a mode's local conditionals (each site's
    states with the others held at ``state``), the proposal that draws around that mode."""
    table = np.asarray(_neighbours(log_prob, n_states, int(state.size))(
        jnp.asarray(state, jnp.int32)), np.float64)
    return table - logsumexp(table, axis=1, keepdims=True)


@kept(8)
def _mixture_log_weights(log_prob, family, draws: int):
    """Jitted ``(params, sites (M, d, K), log_shares (M + 1,), key) -> (x (draws, d),
    log w (draws,))``: draws of the mixture of q and the products ``sites``, weighted by p
    over the whole mixture. One program for every number of modes' shape, kept (a second fit
    or ``vifit evidence`` of the same target compiles nothing)."""

    def log_weights(params, sites, log_shares, key):
        k_pick, k_q, k_m = jax.random.split(key, 3)
        part = jax.random.categorical(k_pick, log_shares, shape=(draws,))
        x_q = family.sample(params, k_q, draws).astype(jnp.int32)
        x_m = jax.random.categorical(k_m, sites[jnp.maximum(part - 1, 0)]).astype(jnp.int32)
        x = jnp.where((part == 0)[:, None], x_q, x_m)
        log_q = jax.vmap(lambda s: family.log_prob(params, s))(x)
        log_modes = jnp.sum(jnp.take_along_axis(sites[:, None], x[None, :, :, None],
                                                axis=-1)[..., 0], axis=-1)  # (M, n)
        log_mix = jax.scipy.special.logsumexp(
            jnp.concatenate([log_shares[0] + log_q[None], log_shares[1:, None] + log_modes]),
            axis=0)
        log_p = jax.vmap(log_prob)(x)
        return x, jnp.where(jnp.isfinite(log_p), log_p - log_mix, -jnp.inf)

    return jax.jit(log_weights)


@kept(8)
def _log_q_program(family):
    """Jitted ``(params, states (n, d)) -> log q (n,)``."""
    return jax.jit(lambda params, x: jax.vmap(lambda s: family.log_prob(params, s))(x))


def log_z_with_states(target, family, params, modes: list[Mode], log_z_q: float,
                      key: jax.Array, draws: int) -> dict[str, Any] | None:
    """Importance-sampling estimate of log Z from ``draws`` draws of the mixture of q and the
    product distributions at ``modes`` (``site_log_probs_at``), weighted by p over the whole
    mixture (multiple importance sampling with the balance heuristic, so the estimate of Z is
    unbiased), Pareto-smoothed; shares as ``vifit.evidence.found_modes.mixture_shares``. The
    discrete counterpart of ``vifit.evidence.found_modes.log_z_with_modes``, with its record
    (None when no mode has a finite mass)."""
    from vifit.evidence.found_modes import mixture_shares
    from vifit.evidence.importance import importance_log_z, tie_repeated_states

    usable = [m for m in modes if np.isfinite(m.log_mass)]
    if not usable:
        return None
    t0 = time.perf_counter()
    n_states = int(target.n_states)
    tables = [site_log_probs_at(target.log_prob, n_states, m.location.astype(np.int32))
              for m in usable]
    # each mode twice: its local conditionals, and the same flattened (SOFTEN), whose wider
    # reach covers states the product of conditionals makes too rare
    soft = [SOFTEN * t - logsumexp(SOFTEN * t, axis=1, keepdims=True) for t in tables]
    sites = jnp.asarray(np.stack(tables + soft))  # (2M, d, K)
    masses = np.array([m.log_mass for m in usable])
    shares = mixture_shares(log_z_q, np.concatenate([masses, masses]))
    log_shares = jnp.asarray(np.log(shares))
    log_weights = _mixture_log_weights(target.log_prob, family, draws)
    x, logw = log_weights(params, sites, log_shares, key)
    est = importance_log_z(tie_repeated_states(np.asarray(x), np.asarray(logw, np.float64)))
    return {"log_z": est.log_z, "se": est.se, "khat": est.khat, "ess": est.ess, "n": est.n,
            "modes": len(usable), "shares": [float(s) for s in shares],
            "seconds": time.perf_counter() - t0}


def state_check(result):
    """``result`` (a fit of a factorized discrete family to a ``vifit.DiscreteTarget``) with
    ``info["modes"]`` from ``search_states`` around its q. Where the search finds modes q does
    not cover, their mass is measured by ``log_z_with_states`` (from q joined by every mode
    found, the covered ones too: a mode whose states q draws can still hold mass q lacks, and
    on six label permutations, five joined, the estimate was 0.23 nats low with a clean
    k-hat) against q's own log Z: the
    record's ``missed_mass_fraction`` is 1 - exp(-gain) where that estimate is above q's beyond
    ``GAIN_Z`` combined errors with usable weights (0 where it is not), and the Laplace share
    otherwise; the estimate is kept under ``log_z_with_modes``."""
    from dataclasses import replace

    key = jax.random.fold_in(jax.random.key(result.seed), 0x0DE5)
    search = search_states(result.target, result.family, result.params, key)
    if search is None:
        return replace(result, info={**result.info, "modes_skipped": "too costly"})
    rec = record(search) | {"state_count": result.target.num_states()}
    if any(not m.covered for m in search.modes) and np.isfinite(result.log_z):
        joined = log_z_with_states(result.target, result.family, result.params,
                                   search.modes, result.log_z,
                                   jax.random.fold_in(key, 1), CHECK_DRAWS)
        if joined is not None and joined["khat"] < 0.7 and np.isfinite(joined["log_z"]):
            gain = joined["log_z"] - result.log_z
            se = math.hypot(joined["se"], result.log_z_se)
            rec["laplace_missed_mass_fraction"] = rec["missed_mass_fraction"]
            rec["missed_mass_fraction"] = (float(-math.expm1(-gain)) if gain > GAIN_Z * se
                                           else 0.0)
            rec["mass_by"] = "importance sampling"
            rec["log_z_with_modes"] = {k: joined[k] for k in ("log_z", "se", "khat", "n")}
    return replace(result, info={**result.info, "modes": rec})
