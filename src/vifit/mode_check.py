"""Whether a fitted q covers the separated modes of p: the mode search (``vifit.modes``) run
around a fit, and its record judged against the q that was kept.

``auto`` searches around its Gaussian stage and judges the q it keeps; a fit of one named
family runs ``with_mode_check`` as one of its final checks (``vifit.engine``). Both layers
call down to this module, which calls only the search and the result's draws.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.special

from vifit.ahead import ready
from vifit.blocks import in_blocks
from vifit.freshness import kept
from vifit.modes import log_sum_exp, search_modes
from vifit.result import FitResult, family_program
from vifit.target import Target


def search_around(target: Target, mean, cov, seed: int):
    """The mode search around N(mean, cov), keyed by ``seed`` (None where it does not
    apply)."""
    return search_modes(target, mean, cov,
                        key=jax.random.fold_in(jax.random.key(seed), 0x0DE5))


def with_mode_check(result: FitResult, distributed: bool = False) -> FitResult:
    """``result`` (a fit of one named family) with ``info["modes"]`` from the mode search
    around its q's mean and covariance (``vifit.modes``) and ``coverage`` by its q, where the
    search applies (a differentiable, non-data target of at most ``vifit.modes.MAX_DIM``
    coordinates) and the verdict would otherwise be "good" or "usable with care": k-hat reads
    p/q at q's draws and cannot see a separated mode q never reaches, so without the search a
    Gaussian (or a mixture whose components fell onto one mode) fitted to one of two equal
    modes read "good" with log Z log 2 low. The search's cost (one compiled climb per target,
    256 x 400 gradients of log p, more to screen and for the far climbs and per mode found;
    1-3 s on small models) is paid only
    where it can change the verdict. On a data set (``vifit.DataTarget``) it climbs on the
    rows, or on a subset of them (``data_search``); across processes (``distributed``) it is
    skipped, since each process holds other rows, and the verdict says so."""
    from dataclasses import replace

    from vifit.data.target import DataTarget

    target = result.target
    if "modes" in result.info:
        return result
    if getattr(target, "discrete", False):
        from vifit.state_modes import searchable, state_check

        if result.verdict.label == "failed":
            return result
        # whatever k-hat says (a search over states costs a second or two): on a k-hat
        # above 0.7 it says where the mass q misses is, and how much
        if searchable(result.family):
            result = state_check(result)
        return with_enumeration(result)
    if not target.differentiable:
        return result
    if isinstance(target, DataTarget) and result.stop_reason not in ("diverged", "non-finite"):
        # whatever k-hat says: on data a k-hat above 0.7 is often two mirror modes, and the
        # search says so
        if distributed:
            return replace(result, info={**result.info, "modes_skipped": "distributed"},
                           notes=result.notes + (
                               "the mode search was skipped (each process holds other rows): "
                               "several modes would go unnoticed except through k-hat.",))
        return data_search(result)
    if isinstance(target, DataTarget) or result.verdict.label not in ("good",
                                                                      "usable with care"):
        return result
    record = search_record(result)
    if record is None:
        return result
    return replace(result, info={**result.info, "modes": record})


def search_record(result: FitResult) -> dict[str, Any] | None:
    """``info["modes"]`` for a fit to a continuous target held in one process, whatever its
    verdict: the search around q's moments and q's ``coverage`` of what it finds (None where
    the search does not apply). `vifit evidence` runs it for a fit that skipped it (a "not
    reliable" fit, whose verdict the search cannot lower)."""
    from vifit.data.target import DataTarget

    target = result.target
    if (getattr(target, "discrete", False) or not target.differentiable
            or isinstance(target, DataTarget)):
        return None
    moments = _moments(result)
    if moments is None:
        return None
    search = search_around(target, *moments, result.seed)
    return None if search is None else coverage(result, search)


def with_enumeration(result: FitResult) -> FitResult:
    """``result`` (a fit to a ``vifit.DiscreteTarget``) with ``info["enumeration"]``: log Z by
    summing p over every state (``vifit.discrete.enumerate_exact``: ``log_z``, ``states``,
    ``rounding``, ``seconds``) where vifit sums them on its own (``enumerable``). The fit's
    verdict then measures the mass q misses against it: no search over states can rule out a
    state of high mass that none of its climbs passes through (30% of the mass on one state
    of a million beside a smooth bump read "good" with log Z 0.39 nats low), and the sum
    does."""
    from dataclasses import replace

    from vifit.discrete import enumerable, enumerate_exact

    if "enumeration" in result.info or not enumerable(result.target):
        return result
    try:
        exact = enumerate_exact(result.target)
    except Exception as exc:  # noqa: BLE001 - log p written for float32 may refuse float64
        return replace(result, notes=result.notes + (
            f"summing p over every state failed ({type(exc).__name__}: {exc}); the verdict "
            "rests on the search over states alone.",))
    record = {k: exact[k] for k in ("log_z", "states", "rounding", "seconds")}
    return replace(result, info={**result.info, "enumeration": record})


# The mode search of a fit on a data set climbs on all rows while the search's gradients
# (``vifit.modes.search_cost``, plus ``WIDE_CLIMBS``) times one row's gradient cost stays within
# ``vifit.modes.SEARCH_FLOPS`` (the budget of every search), else on a fixed random subset of
# that many rows (at least ``MIN_MODE_ROWS``), scaled by N / M. Until 2026-12-06 the rows were
# sized for 64 x 400 gradients while the search spent about 16 times more: 80 s on 100,000
# rows of a 4-parameter regression, then 2e9 row evaluations, whatever a row cost (a float64
# logistic regression of 20,003 rows searched for about 50 s).
MIN_MODE_ROWS = 1000
# Gradients of the climbs on the scale of z itself (``wide_search``): 64 starts x 400 steps in
# up to three frames, and the final climb of their ends with the modes found.
WIDE_CLIMBS = 4 * 64 * 400


def _moments(result: FitResult):
    """q's mean and covariance in the target's dtype: exact where the family has them, else
    from 4000 draws; None when too few draws are finite."""
    dtype = result.target.init.dtype
    try:
        mean, cov = result.mean(), result.covariance()
    except NotImplementedError:
        z = np.asarray(result.sample_unconstrained(jax.random.key(result.seed), 4000),
                       np.float64)
        z = z[np.all(np.isfinite(z), axis=1)]
        if z.shape[0] < 2 * result.target.dim:
            return None
        mean, cov = z.mean(0), np.atleast_2d(np.cov(z.T))
    return jnp.asarray(mean, dtype), jnp.asarray(cov, dtype)


def data_search(result: FitResult) -> FitResult:
    """``result`` (a fit on a data set) with ``info["modes"]`` from ``wide_search`` on the rows
    (``mode_target``), and a note when it climbed on a subset of them. A subset's Laplace
    masses are those of a noisier density: the missed fraction is then a rough guide."""
    from dataclasses import replace

    target = result.target
    moments = _moments(result)
    searched = None if moments is None else wide_search(mode_target(target, result.seed),
                                                        *moments, result.seed)
    if searched is None:
        return result
    notes = result.notes
    rows = mode_rows(target)
    reach = 0.0
    if rows < target.n_rows:
        # The scaled subset's posterior is the full one moved by its sampling noise: its mode
        # lies about sqrt(N / M - 1) posterior sds per direction from the full data's, so q's
        # own mode counts as covered out to COVERED times sqrt(N / M) of q's sds.
        from vifit.modes import COVERED

        reach = COVERED * math.sqrt(target.n_rows / rows)
        notes += (f"the mode search climbed on {rows:,} of the {target.n_rows:,} rows (a fixed "
                  "random subset, scaled to N): its masses are rough, and modes within "
                  f"{reach:.0f} of q's sds of q's own count as q's.",)
    return replace(result, info={**result.info, "modes": coverage(result, searched, reach)},
                   notes=notes)


def wide_search(target: Target, mean, cov, seed: int):
    """The mode search around N(mean, cov) (q's moments), keyed by ``seed``, plus climbs from
    over-dispersed starts on the scale of z itself (sd ``1 + |mean|`` per coordinate): the
    posterior of many rows is narrow, so a mode well apart on the scale of the parameters can
    lie thousands of q's sds away, beyond the climbs around q. Adam's steps are a fixed
    fraction of the frame's scale, so the wide climbs are refined in frames 10x narrower each
    time down to q's, and all ends are grouped into modes together in q's frame."""
    from vifit.modes import SCALES, climb_from, climb_points

    key = jax.random.fold_in(jax.random.key(seed), 0x0DE5)
    near = search_modes(target, mean, cov, key=key, budget=math.inf)  # the rows are its budget
    if near is None:
        return None
    sd_q = float(jnp.sqrt(jnp.max(jnp.diag(cov))))
    width = 1.0 + jnp.abs(mean)
    scales = jnp.asarray(np.resize(np.asarray(SCALES), 64), mean.dtype)[:, None]
    points = mean + scales * width * jax.random.normal(jax.random.fold_in(key, 1),
                                                       (64, target.dim), mean.dtype)
    while float(jnp.max(width)) > 10 * sd_q:
        # one stage: climb from the points in a diagonal frame of sd `width` around q's mean
        ends = jnp.asarray(climb_points(target, points, mean, width), mean.dtype)
        points = jnp.where(jnp.all(jnp.isfinite(ends), axis=1, keepdims=True), ends, points)
        width = width / 10.0
    found = jnp.concatenate([points, jnp.asarray(np.stack([m.location for m in near.modes]),
                                                 mean.dtype)]) if near.modes else points
    res = climb_from(target, found, mean, cov)
    # the record counts every climb, and keeps the search's rounds and whether it saturated
    return None if res is None else res._replace(
        starts=near.starts + points.shape[0], screened=near.screened, rounds=near.rounds,
        saturated=near.saturated, seconds=near.seconds + res.seconds)


def mode_rows(target) -> int:
    """How many rows of a data set the mode search climbs on (``SEARCH_FLOPS``)."""
    from vifit.modes import SEARCH_FLOPS, search_cost

    grads = search_cost(target.dim) + WIDE_CLIMBS
    rows = SEARCH_FLOPS // (grads * row_flops(target))
    return int(min(target.n_rows, max(MIN_MODE_ROWS, rows)))


# Rows in the block whose gradient's cost ``row_flops`` divides by its size.
_COST_ROWS = 64


@kept(8)
def row_flops(target) -> float:
    """Floating-point operations of one row's share of a gradient of log p (XLA's cost analysis
    of a block of ``_COST_ROWS`` rows, transcendentals weighted and scans counted as in
    ``vifit.modes.gradient_flops``; nothing compiled)."""
    from vifit.modes import program_flops

    m = min(_COST_ROWS, target.n_rows)
    block = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype),
                         target.rows(np.arange(m)))
    z = jax.ShapeDtypeStruct((target.dim,), target.init.dtype)
    flops = program_flops(jax.value_and_grad(lambda u, b: jnp.sum(target.log_lik(u, b))),
                          z, block)
    return max(flops / m, 10.0 * target.dim)  # no count: a small row


@kept(8)
def mode_target(target, seed: int) -> Target:
    """The data target itself, or a plain Target on a fixed random subset of its rows whose
    likelihood is scaled by N / M (for the mode search's climbs); kept, so that a second fit of
    the same data reuses the search's compiled climbs (they are keyed by the log density)."""
    m = mode_rows(target)
    if m >= target.n_rows:
        return target
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x40DE]))
    rows = target.rows(np.sort(rng.choice(target.n_rows, m, replace=False)))
    rows = jax.tree.map(jnp.asarray, rows)
    scale = target.n_rows / m

    def log_density(z):
        return target.log_prior(z) + scale * jnp.sum(target.log_lik(z, rows))

    return Target(log_density, init=target.init, param_names=target.param_names,
                  name=target.name, check=False)


def coverage(result: FitResult, search, reach: float = 0.0) -> dict[str, Any]:
    """The mode search's record, with each mode marked covered or not by the *chosen* q: a mode
    is located by q when q's log density there is above the 0.1% quantile of log q at q's own
    draws (it lies in q's typical region), or, for the Gaussian the search started from, when
    a climb from q's own draws ended there, or when it lies within ``reach`` of q's sds
    (Mahalanobis) of q's mean: how far a search on a subset of a data set's rows may place
    the mode q sits on (``data_search``). It is covered when located and at least
    ``SEEN_DRAWS`` of q's own draws lie in its Laplace ellipsoid (``_draws_inside``), or when
    a search on a subset placed it."""
    record = search.summary()
    own_z, log_q = _own_draws(result, jax.random.key(result.seed), OWN_DRAWS)
    floor = float(np.quantile(log_q[np.isfinite(log_q)], 0.001))
    at_modes = _log_q_at(result, np.stack([m.location for m in search.modes])
                         if search.modes else np.zeros((0, result.target.dim)))
    same_q = result.family.name == "fullrank"
    masses = np.array([m.log_mass for m in search.modes])
    shares = _q_shares(own_z, search.modes)
    weighted = _p_shares(result, search.modes)
    missed, located = [], 0
    for row, mode, lq, share in zip(record["modes"], search.modes, at_modes, shares):
        subset = mode.distance < reach  # placed by a search on a subset of the rows
        near = bool(lq >= floor or (same_q and mode.covered) or subset)
        located += near
        inside = _draws_inside(own_z, mode)
        row["q_draws_inside"] = inside
        row["q_share"] = share
        scant = share < row["mass_fraction"] / SHARE_SHORT
        row["covered_by_q"] = near and (subset or (inside >= SEEN_DRAWS and not scant))
        if not row["covered_by_q"]:
            missed.append(mode.log_mass)
    for row, share in zip(record["modes"], weighted):
        row["p_share"] = share
    record["covered_by_q"] = sum(r["covered_by_q"] for r in record["modes"])
    record["short_mass_fraction"] = _short_fraction(record["modes"])
    if missed:
        # The whole mass: the modes' Laplace masses, or what q's draws saw (log Z) plus what
        # they did not, whichever is larger (a broad component may have no mode of its own).
        total = max(log_sum_exp(masses), float(np.logaddexp(
            result.log_z if np.isfinite(result.log_z) else -np.inf,
            log_sum_exp(np.array(missed)))))
        record["missed_mass_fraction"] = float(np.exp(log_sum_exp(np.array(missed)) - total))
    else:
        record["missed_mass_fraction"] = 0.0
    if search.modes and located == 0:
        # q holds its mass somewhere, yet reaches none of the points found: they are peaks of
        # log p without the mass of a mode (a funnel's neck, a horseshoe's spike at zero
        # scale), where a Laplace mass means nothing. Reported, not used in the verdict.
        record["missed_mass_fraction"] = 0.0
        record["note"] = ("no mode found lies in q's typical region: likely a funnel neck or a "
                          "spike of log p rather than separate mass; not used in the verdict")
    return record


# A mode in q's typical region counts as covered only where this many of q's OWN_DRAWS draws
# fall in its Laplace ellipsoid of 99%: a narrow mode of half the mass 6 sds of a broad q from
# its centre (q's mass there 2e-4, about one draw in 4,000) lay in q's typical region and read
# "covered" while log Z from q was log 2 low. (q's density times the ellipsoid's volume would
# also flag a q merely wider than the mode: c^-d for c times wider in d dimensions, 1/1000 for
# a t_5 in d = 10; the ellipsoid still holds a third of such a q's draws.)
SEEN_DRAWS = 10
OWN_DRAWS = 4000
# A mode is not covered either where q's share of it (``_q_shares``) is below its share of
# the modes' Laplace mass divided by this: a float32 spike-and-slab posterior, rotated, had
# two cross modes of 18% each whose ellipsoids also held the draws of q's component on the
# spike at the origin (about 310 of 4,000 each), while q's own components there had kept 0.4%:
# "usable with care" with log Z 0.42 nats low. The factor leaves room for Laplace masses,
# which are rough for modes that are not Gaussian.
SHARE_SHORT = 10.0


# A covered mode whose share of q's draws weighted toward p (``_p_shares``) is below its share
# of the modes' Laplace mass divided by this is "short": q follows only part of it. Of random
# targets in d = 2 (bench/random_targets.py, seed 99), a banana bent through 37 of its sds
# beside a broad Gaussian held 49% of the mass (its Laplace mass is exact), and the mixture's
# component at its vertex saw 16% of it: "good", log Z 0.48 nats low. The factor leaves room
# for Laplace masses, which are rough where a mode is not Gaussian; a mode that is only
# rougher than that is "usable with care" at worst (``vifit.result``).
P_SHARE_SHORT = 2.0


def _p_shares(result: FitResult, modes) -> list[float | None]:
    """Each mode's share of ``OWN_DRAWS`` draws of q weighted toward p (Pareto-smoothed
    importance weights), each draw going to the mode ``_q_shares`` gives it: the part of p's
    mass at that mode that q's draws see. None for every mode of a data target without its
    evaluation's draws (log p there is a pass over the rows per draw), or where no weight is
    finite."""
    from vifit.data.target import DataTarget
    from vifit.evidence.importance import psis_weights
    from vifit.result import draw_logw

    if not modes:
        return []
    if isinstance(result.target, DataTarget):
        if result.eval_draws is None:
            return [None] * len(modes)
        z, logw = result.eval_draws
    else:
        z, logw = draw_logw(result.family, result.target, result.params,
                            jax.random.fold_in(jax.random.key(result.seed), 0x5A7E), OWN_DRAWS)
    z, logw = np.asarray(z, np.float64), np.asarray(logw, np.float64)
    weights, _ = psis_weights(logw)
    if not np.isfinite(weights).all() or weights.sum() <= 0:
        return [None] * len(modes)
    weights = weights / weights.sum()
    best, framed = _closest_mode(z, modes)
    return [float(np.sum(weights[best == j])) if framed[j] else None
            for j in range(len(modes))]


def _short_fraction(rows: list[dict]) -> float:
    """The mass the covered modes that are "short" (``P_SHARE_SHORT``) would add to log Z if
    their Laplace shares held, as a fraction of the whole: for a mode with Laplace share f whose
    weighted share is w, q's draws saw c = w (1 - f) / (1 - w) of the whole there (the other
    modes taken as fully seen), and f - c is missing."""
    short = 0.0
    for row in rows:
        f, w = row.get("mass_fraction"), row.get("p_share")
        if (not row.get("covered_by_q") or w is None or f is None or not np.isfinite(f)
                or w >= f / P_SHARE_SHORT or w >= 1.0):
            continue
        short += max(f - w * (1.0 - f) / (1.0 - w), 0.0)
    return float(min(short, 1.0))


def _closest_mode(z: np.ndarray, modes) -> tuple[np.ndarray, list[bool]]:
    """For each row of ``z (n, d)`` the index of the mode whose Laplace Gaussian, weighed by
    its mass, is highest there (-1 where no mode has a Laplace frame), and for each mode
    whether it has one (``_whitened``)."""
    scores = np.full((len(modes), z.shape[0]), -np.inf)
    framed = []
    for j, mode in enumerate(modes):
        white = _whitened(z, mode)
        framed.append(white is not None)
        if white is not None:
            u, log_sd = white
            scores[j] = mode.log_mass - log_sd - 0.5 * np.sum(u * u, axis=0)
    return np.where(np.isfinite(scores).any(axis=0), np.argmax(scores, axis=0), -1), framed


def _q_shares(z: np.ndarray, modes) -> list[float]:
    """The share of the draws ``z (n, d)`` closest to each mode of ``modes``, closeness read
    as the mode's Laplace mass times its Laplace density there (the mode p's own Laplace
    mixture would assign the draw to); nan for a mode without a Laplace covariance. Unlike a
    count of draws inside a mode's ellipsoid, a draw near two modes counts once."""
    if z.shape[0] == 0 or not modes:
        return [math.nan] * len(modes)
    best, framed = _closest_mode(z, modes)
    return [float(np.mean(best == j)) if framed[j] else math.nan for j in range(len(modes))]


def _draws_inside(z: np.ndarray, mode) -> int:
    """How many rows of ``z (n, d)`` lie in the mode's Laplace ellipsoid of 99% (0 where it
    has no Laplace covariance)."""
    white = _whitened(z, mode) if z.shape[0] else None
    if white is None:
        return 0
    return int(np.sum(np.sum(white[0] ** 2, axis=0) <= _chi2_quantile(0.99, z.shape[1])))


def _chi2_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of a chi-square with ``dof`` degrees of freedom (scipy.stats would
    cost a third of a second of import for this one number)."""
    return 2.0 * float(scipy.special.gammaincinv(0.5 * dof, p))


def _whitened(z: np.ndarray, mode) -> tuple[np.ndarray, float] | None:
    """The rows of ``z (n, d)`` in the mode's Laplace frame ``(d, n)``, and the log of the
    frame's volume (sum of the log diagonal of its Cholesky factor); None where the mode has
    no Laplace covariance or it does not factor."""
    if mode.cov is None:
        return None
    try:
        lchol = np.linalg.cholesky(np.asarray(mode.cov, np.float64))
    except np.linalg.LinAlgError:
        return None
    u = scipy.linalg.solve_triangular(lchol, (np.asarray(z, np.float64) - mode.location).T,
                                      lower=True)
    return u, float(np.sum(np.log(np.diag(lchol))))


def _own_draws(result: FitResult, key, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws of the result's q ``(n, d)`` and log q there ``(n,)``: from the evaluation's
    compiled draw program where it computes log q (``vifit.result.draw_blocks``, with the tail
    check's widened draws), else eagerly. Never the draw program of a data target: its log p
    is a pass over every row per draw, and only log q is wanted."""
    from vifit.evidence.tails import tails_apply
    from vifit.result import draw_blocks

    if tails_apply(result.target):
        blocks = draw_blocks(result.family, result.target, result.params, key, n)
        # widened: (z_far, log q at all 2m draws with q's m first, log p, log m)
        z = np.concatenate([np.asarray(b[0]) for b in blocks])[:n]
        return z, np.concatenate([np.asarray(b[2][1])[:b[0].shape[0]] for b in blocks])[:n]
    z = result.sample_unconstrained(key, n)
    return np.asarray(z), np.asarray(
        family_program(result.family, "batch_log_prob")(result.params, z))


# log q at given points runs in blocks of this many rows: one compiled program per family.
_POINTS_BLOCK = 16


def _log_q_at(result: FitResult, points: np.ndarray) -> np.ndarray:
    """log q at the rows of ``points (k, d)``, by one jitted program per family (in blocks of
    ``_POINTS_BLOCK`` rows) instead of eager operations, which compile one small program
    each."""
    if points.shape[0] == 0:
        return np.zeros(0)
    rows = np.asarray(points, result.target.init.dtype)
    log_prob = family_program(result.family, "batch_log_prob")
    ready(log_prob)
    return in_blocks(functools.partial(log_prob, result.params), (rows,), _POINTS_BLOCK)[0]
