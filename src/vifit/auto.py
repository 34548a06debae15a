"""``family="auto"``: choose the variational family for the user, and say why.

1. A full-rank Gaussian by natural-gradient VI from the target's default start. Only when that
   does not converge within ``DIRECT_STEPS`` (badly scaled targets), or above
   ``NATGRAD_MAX_DIM`` coordinates where its Hessians would cost more than ``NATGRAD_FLOPS``,
   Pathfinder (``vifit.optim.pathfinder``: an L-BFGS path
   toward the mode and the best Gaussian along it) gives a start, and:
2. A full-rank Gaussian fitted from Pathfinder's Gaussian, by natural-gradient VI (Adam where
   it does not apply, or if natgrad fails). If its Pareto k-hat is below 0.5
   (importance weights with a finite variance: q covers p), stop: a flow cannot do
   meaningfully better for log Z or posterior expectations.
3. Otherwise a normalizing flow (``flow``, default the affine-coupling RealNVP, Adam at
   ``flow_lr`` = 3e-3) started exactly at that Gaussian (its couplings begin as the identity),
   so it can only improve on it. Why these defaults: on the 2-d banana and funnel they gave the
   lowest k-hat of the configurations measured (docs/families.md, "Tails"); the spline flow at
   lr 1e-2 fitted the bulk as well but its k-hat swung with the schedule.
4. Whatever is kept (the Gaussian at step 2, or the better of it and the flow), if the tail
   check (``vifit.evidence.tails``) finds its tails too light: the heavy-tailed family
   (``vifit.families.HeavyTail``: loc + L x with independent Tukey-h coordinates whose tail
   indices are fitted) started at the Gaussian's mean and covariance, and if what is then
   kept still fails the check, its radial form (one tail index for every direction, as a
   multivariate t). Where p's tails are polynomial (t or Cauchy priors) the weights of any q
   on a Gaussian base are unbounded. Only then, since the flow fits most shapes better.
5. If the check still finds 10% or more of p's mass where q has almost none: a mixture of q
   and one more component started at p's mean and covariance in that region, from the
   check's own draws weighted toward p (``_outside``): mass that is no separate mode, so the
   mode search cannot see it (a wide part under a narrow one), and that no heavier tail
   reaches.

Beside the stages above, the mode search after the Gaussian (``vifit.modes``): where it finds
several modes, a mixture started at them, then (if that mixture's k-hat is 0.5 or more) the
flow beside it (``_flow_beside``) and step 5. Where the heaviest mode it finds lies outside the
Gaussian and outweighs everything else (``_heaviest_elsewhere``), the Gaussian sat on a local
optimum without mass: it is fitted again from that mode's Laplace approximation, and the
stages go on from the refit where it is kept.

A richer stage replaces the one kept so far when its ELBO is higher by more than ``z``
standard errors of the difference (independent draws, so the variances add) and its k-hat is
not worse by more than ``z`` asymptotic standard errors of k-hat (the Pareto-shape fit on M
tail draws has sd about (1 + k) / sqrt(M)); otherwise the simpler answer is kept.

Every step is recorded in ``result.info["auto"]["decisions"]`` (what was fitted, its ELBO,
k-hat and time, what was decided and why) and, with ``verbose``, printed as it happens.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vifit.ahead import compile_ahead
from vifit.engine import stage_programs
from vifit.errors import TargetError
from vifit.evidence.tails import (EXCESS_UNRELIABLE, mass_outside, tails_apply,
                                  with_tail_check)
from vifit.families import get_family
from vifit.mode_check import coverage, search_around
from vifit.modes import log_sum_exp, search_programs
from vifit.optim.pathfinder import pathfinder
from vifit.result import MISSED_CARE, FitResult, after_fit_programs, draw_logw
from vifit.target import Target

KHAT_GOOD = 0.5
# Below this share of the modes' Laplace mass outside the heaviest mode, auto fits no mixture:
# it could gain that many nats at most (a second mode of hmm_drive_0, e^-60 of the mass, cost
# an 8 s mixture stage), and even a Laplace mass 10 times off stays under MISSED_CARE.
MIXTURE_MIN_MASS = 1e-4
KHAT_UNRELIABLE = 0.7
# Natural gradient for the Gaussian stage up to this dimension: among full-rank optimizers on
# the catalog it was first within 0.1 nats of the best on 10 of 13 models, and from
# Pathfinder's start Adam ran off to an ELBO of -6585 on stochastic volatility where natgrad
# reached -64.8 (docs/families.md, "Choosing for you").
NATGRAD_MAX_DIM = 200
# ... and above it where its exact Hessians are cheap enough: ``DIRECT_STEPS`` steps of
# ``NATGRAD_DRAWS`` draws (fewer, down to ``NATGRAD_MIN_DRAWS``, where that fits), each d
# gradients (``vifit.modes.gradient_flops``), within this many floating-point operations.
# Measured on Gaussian targets: in d = 300 (3.6e5 flops a gradient) natgrad took 500 steps and
# 14 s to the exact answer where the old way above d = 200, Pathfinder then Adam, took 192 s
# and stopped 38 nats short ("not reliable", log Z 1.1 nats off); in d = 500 (1e6 flops) 500
# steps of 16 draws took 31 s (1.6e11 flops/s: batched Hessians run near the machine's peak),
# 4 draws 33 s, where Pathfinder then Adam took 76 s and stopped 80 nats short; in d = 1000
# (4e6 flops: 2 draws fit) natgrad was exact in 119 s, Pathfinder, Adam and a flow 131 s and
# 18 nats off (`bench/high_dim_auto.py`).
NATGRAD_FLOPS = 2e13
NATGRAD_DRAWS = 16  # natgrad's default draws per step (vifit.optim.natgrad)
NATGRAD_MIN_DRAWS = 2
# Natural-gradient steps from the target's default start before auto asks Pathfinder for one.
# On the 17 posteriordb models and eight schools natgrad from the default start converged in
# 500-1000 steps on 15, to the Gaussian it reached from Pathfinder's start (ELBO equal to 1e-3
# nats), and overflowed within 200 steps on the three raw-scale regressions (earn_height,
# logearn_interaction, kilpisjarvi), which then take the old path (docs/bench.md, "Pathfinder
# only when needed"). Pathfinder's program took 2-2.5 s of compiling.
DIRECT_STEPS = 2000


def _khat_sd(khat: float, n: int) -> float:
    """Asymptotic sd of the Pareto shape estimate from M = min(n/5, 3 sqrt(n)) tail draws."""
    m = min(n / 5.0, 3.0 * math.sqrt(n))
    return (1.0 + max(khat, 0.0)) / math.sqrt(m)


# The reason of an auto row whose stage the user stopped (Ctrl-C).
INTERRUPTED = "interrupted by the user"


def _row(stage: str, res: FitResult | None, decision: str, why: str, seconds: float,
         **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"stage": stage, "decision": decision, "why": why,
                           "seconds": round(seconds, 3)}
    if res is not None:
        row.update(family=res.family.name, optimizer=res.optimizer, elbo=res.elbo, elbo_se=res.elbo_se, khat=res.khat,
                   steps=res.steps)
        if res.stop_reason == "interrupted":  # whatever the row's reason says beside it
            row["interrupted"] = True
    row.update(extra)
    return row


def fit_auto(target: Target, *, flow: str = "realnvp", flow_lr: float = 3e-3, z: float = 2.0,
             steps: int = 10_000, draws: int | None = None, seed: int = 0, window: int = 100,
             patience: int | None = None,
             tol: float = 1e-3, n_eval: int = 4000, progress: bool | None = None,
             verbose: bool | None = None, callback=None, checkpoint=None) -> FitResult:
    """A full-rank Gaussian (from Pathfinder's start where needed), then ``flow`` and the
    heavy-tailed family if the Gaussian is not good enough;
    returns the chosen fit with ``info["auto"]`` holding every decision (see module docstring).
    """
    from vifit.engine import fit_one as fit

    verbose = (progress is not False) if verbose is None else verbose
    decisions: list[dict[str, Any]] = []

    def say(row: dict[str, Any]) -> None:
        decisions.append(row)
        if verbose:
            nums = (f" ELBO {row['elbo']:.4f} ± {row['elbo_se']:.4f}, k-hat {row['khat']:.2f},"
                    if "khat" in row else "")
            print(f"auto · {row['stage']}:{nums} {row['decision']} — {row['why']}",
                  file=sys.stderr)

    common = dict(steps=steps, draws=draws, seed=seed, window=window, patience=patience,
                  tol=tol, n_eval=n_eval, progress=progress, callback=callback,
                  final_checks=False)

    def stage(name: str) -> dict[str, Any]:  # each stage resumes from its own file
        return dict(common, checkpoint=None if checkpoint is None else checkpoint.child(name))

    def last_stages(best: FitResult, best_name: str, heavier: bool = True
                    ) -> tuple[FitResult, str]:
        # the heavy-tailed family and the component outside q, each unless the user
        # stopped a stage before it: auto then reports what it has at once
        if heavier and not _stopped(decisions):
            best, best_name = _heavier(fit, target, best, best_name, gauss, stage, say, z,
                                       n_eval)
        if not _stopped(decisions):
            best, best_name = _outside(fit, target, best, best_name, stage, say, z, n_eval)
        return best, best_name
    t_all = time.perf_counter()

    fullrank = get_family("fullrank")
    # On a worker (vifit.ahead): natgrad's loop while this thread checks the start, then the
    # Gaussian's evaluation and the mode search's programs while that loop runs.
    if _natgrad_applies(target):
        compile_ahead(stage_programs(target, fullrank, which=("loop", "eval", "moments"),
                                     optimizer="natgrad",
                                     **_direct_settings(target, stage, steps)))
    compile_ahead(search_programs(target))
    t0 = time.perf_counter()
    gauss, why_not, direct = _direct_gaussian(fit, target, fullrank, stage, steps)
    if gauss is not None:
        say(_row("pathfinder", None, "not run: the Gaussian needs no start",
                 f"natural-gradient VI from the default start converged in {gauss.steps} "
                 "steps", 0.0))
    elif not target.differentiable:
        # Pathfinder and natural gradient follow gradients of log p: the score-function
        # estimator (the default without gradients) fits the Gaussian from the default start.
        say(_row("pathfinder", None, "not run: log p has no gradients",
                 "the full-rank Gaussian is fitted by Adam with the score-function estimator "
                 "from the default start", 0.0))
        t0 = time.perf_counter()
        gauss = _fit_gaussian(fit, target, fullrank, None, stage)
    else:
        pf = pathfinder(target, seed=seed)
        pf_ok = pf.best_iter > 0
        found = (f"best of {pf.iters} L-BFGS iterates at iterate {pf.best_iter} (ELBO "
                 f"{pf.elbo:.4f} on its fixed draws; L-BFGS {pf.stop_reason})" if pf_ok else
                 "no iterate gave a finite Gaussian better than the start")
        init = (fullrank.from_gaussian(jnp.asarray(pf.mean), jnp.asarray(pf.cov)) if pf_ok
                else None)
        decision = ("start the full-rank Gaussian from Pathfinder's" if pf_ok else
                    "start the full-rank Gaussian from the default start")
        natgrad = True
        if (direct is not None and direct.stop_reason == "non-finite"
                and math.isfinite(direct.elbo) and not (pf_ok and pf.elbo >= direct.elbo)):
            # Natural gradient can come close and then fail: on a rotated Gaussian with sds
            # from 0.01 to 100 (d = 10) its float32 precision went non-finite at an ELBO 0.59
            # below log Z; Pathfinder's start was 17 below and Adam from it ended 9.5 below,
            # Adam from natgrad's last state 0.53 below. (Natgrad failed again from there.
            # A diverged natgrad's last state is no start: its q has run off.)
            init, natgrad = direct.params, False
            decision = ("start the full-rank Gaussian (by Adam) from natural gradient's last "
                        "finite state, whose ELBO is higher")
        say(_row("pathfinder", None, decision, f"{why_not}; {found}",
                 time.perf_counter() - t0, pathfinder_elbo=pf.elbo))
        t0 = time.perf_counter()
        gauss = _fit_gaussian(fit, target, fullrank, init, stage, natgrad)
    if gauss.stop_reason in ("diverged", "interrupted") or not math.isfinite(gauss.elbo):
        why = (gauss.notes[-1] if gauss.stop_reason == "diverged" and gauss.notes else
               INTERRUPTED if gauss.stop_reason == "interrupted" else
               "its ELBO is not finite")
        say(_row("fullrank", gauss, "stop: report the full-rank Gaussian as it is", why,
                 time.perf_counter() - t0))
        return _finish(gauss, decisions, "fullrank", t_all, None)
    fam = get_family(flow)

    def flow_start_from(gauss: FitResult):  # where a flow may come next: it starts at gauss
        if not gauss.khat < KHAT_GOOD and target.differentiable and target.dim >= 2:
            return fam.from_gaussian(jnp.asarray(gauss.mean()), _host_covariance(gauss))
        return None

    flow_start = flow_start_from(gauss)
    # Compiled on the worker while the search runs: a flow's fit where one comes next, else
    # what the Gaussian's result runs after the fit.
    if flow_start is not None:
        compile_ahead(stage_programs(target, fam, init_params=flow_start,
                                     lr=flow_lr, **stage(fam.name)))
    else:
        compile_ahead(after_fit_programs(gauss.family, target, gauss.params, seed))
    t0 = time.perf_counter()
    search = _search(target, gauss, seed)
    elsewhere = _heaviest_elsewhere(gauss, search)
    if search is not None:
        summary = search.summary()
        say(_row("mode search", None,
                 "refit the Gaussian at the heaviest mode" if elsewhere is not None else
                 "try a mixture of the modes" if len(search.modes) > 1 else "no other mode",
                 _modes_why(search), time.perf_counter() - t0, modes=summary))
    if elsewhere is not None:
        t0 = time.perf_counter()
        at_mode = _fit_gaussian(fit, target, fullrank, fullrank.from_gaussian(
            *(jnp.asarray(a, dtype=target.init.dtype) for a in (elsewhere.location,
                                                                 elsewhere.cov))),
            lambda name: stage(f"{name}-mode"))
        keep, why, extra = _compare(at_mode, gauss, z, n_eval)
        say(_row("fullrank (at the heaviest mode)", at_mode,
                 "keep the Gaussian at the heaviest mode" if keep else
                 "keep the first Gaussian", why, time.perf_counter() - t0, **extra))
        if at_mode.stop_reason == "interrupted":
            return _finish(gauss, decisions, "fullrank", t_all, search)
        if keep:
            gauss = at_mode
            flow_start = flow_start_from(gauss)
    unseen = _unseen_mode(gauss, search)
    mixed = None
    rest = _rest_of_mass(search)
    if (search is not None and len(search.modes) > 1 and not unseen and rest < MIXTURE_MIN_MASS
            and coverage(gauss, search)["modes"][0]["covered_by_q"]):
        say(_row("mixture", None, "keep the full-rank Gaussian",
                 f"the heaviest mode carries all but {max(rest, 0.0):.1g} of the modes' Laplace "
                 "mass: a mixture could raise the ELBO by about that many nats at most",
                 time.perf_counter() - t0))
    elif search is not None and (len(search.modes) > 1 or unseen):
        try:
            mixed = _fit_mixture(fit, target, search, stage, beside=gauss if unseen else None)
        except TargetError as err:  # no finite log p at its first draws: the Gaussian stays
            say(_row("mixture", None, "keep the full-rank Gaussian",
                     f"the mixture of the modes found could not start: {err}",
                     time.perf_counter() - t0))
    if mixed is not None and mixed.stop_reason == "interrupted":  # never kept, as in _compare
        say(_row(mixed.family.name, mixed, "stop: interrupted; keep the full-rank Gaussian",
                 INTERRUPTED, time.perf_counter() - t0))
        return _finish(gauss, decisions, "fullrank", t_all, search)
    if mixed is not None:
        gain = mixed.elbo - gauss.elbo
        gain_se = math.hypot(_mc_se(mixed), _mc_se(gauss))
        parts = len(search.modes) + bool(unseen)
        what = (f"the Gaussian and the mode its draws miss ({100 * unseen:.0f}% of the mass)"
                if unseen else f"{len(search.modes)} modes")
        if (mixed.stop_reason not in ("diverged", "non-finite") and math.isfinite(mixed.elbo)
                and gain > z * gain_se):
            say(_row(mixed.family.name, mixed, f"keep the mixture of {what}",
                     f"ELBO higher by {gain:.4f} ± {gain_se:.4f} (> {z:g} se)",
                     time.perf_counter() - t0, elbo_gain=gain, elbo_gain_se=gain_se,
                     modes=parts))
            best, best_name = mixed, "mixture"
            if flow_start is not None and not mixed.khat < KHAT_GOOD:
                # from the mixture's moments: wider than the Gaussian's, which may sit on
                # one arm of the ridge the mixture's modes lie along
                start = fam.from_gaussian(*(jnp.asarray(m, dtype=target.init.dtype)
                                            for m in _moments(mixed)))
                best, best_name = _flow_beside(fit, target, fam, start, flow_lr, best,
                                               best_name, stage, say, z, n_eval)
            best, best_name = last_stages(best, best_name, heavier=False)
            return _finish(best, decisions, best_name, t_all, search)
        say(_row(mixed.family.name, mixed, "keep the full-rank Gaussian",
                 f"the mixture's ELBO gain {gain:.4f} ± {gain_se:.4f} is not > {z:g} se"
                 if math.isfinite(gain) else f"the mixture stopped {mixed.stop_reason}",
                 time.perf_counter() - t0, elbo_gain=gain, elbo_gain_se=gain_se))
    if gauss.khat < KHAT_GOOD:
        say(_row("fullrank", gauss, "keep the full-rank Gaussian",
                 f"k-hat {gauss.khat:.2f} < {KHAT_GOOD}: q covers p, importance weights have "
                 "finite variance; a flow is not needed", time.perf_counter() - t0))
        best, best_name = last_stages(gauss, "fullrank")
        return _finish(best, decisions, best_name, t_all, search)
    if not target.differentiable:
        say(_row("fullrank", gauss, "keep the full-rank Gaussian",
                 f"k-hat {gauss.khat:.2f} >= {KHAT_GOOD}, but a flow is not tried without "
                 "gradients of log p: the score-function estimator's variance grows with the "
                 "flow's thousands of parameters", time.perf_counter() - t0))
        return _finish(gauss, decisions, "fullrank", t_all, search)
    if target.dim < 2:
        best, best_name = last_stages(*_mixture_1d(fit, target, gauss, stage, say, z, n_eval,
                                                   seed, t0))
        return _finish(best, decisions, best_name, t_all, search)
    say(_row("fullrank", gauss, f"try a flow ({flow})",
             f"k-hat {gauss.khat:.2f} >= {KHAT_GOOD}: the Gaussian misses part of p",
             time.perf_counter() - t0))

    t0 = time.perf_counter()
    compile_ahead(after_fit_programs(fam, target, flow_start, seed))  # while the flow runs
    flowed = fit(target, fam, init_params=flow_start, lr=flow_lr, **stage(fam.name))
    if flowed.stop_reason == "interrupted":
        say(_row(fam.name, flowed, "stop: interrupted; keep the full-rank Gaussian",
                 INTERRUPTED, time.perf_counter() - t0))
        return _finish(gauss, decisions, "fullrank", t_all, search)
    best, best_name, failed = gauss, "fullrank", None
    if flowed.stop_reason in ("diverged", "non-finite") or not math.isfinite(flowed.elbo):
        # Never prefer a stage for an ELBO that is huge or not finite. A flow that runs off
        # from a Gaussian that fits is itself evidence that the density may be improper.
        why = (flowed.notes[-1] if flowed.stop_reason == "diverged" and flowed.notes else
               f"the flow stopped {flowed.stop_reason} (ELBO {flowed.elbo:.4g})")
        say(_row(fam.name, flowed, "keep the full-rank Gaussian; the flow failed", why,
                 time.perf_counter() - t0))
        failed = {"stage": fam.name, "why": why}
    else:
        keep, why, extra = _compare(flowed, gauss, z, n_eval)
        if keep:
            best, best_name = flowed, fam.name
        say(_row(fam.name, flowed, f"keep the flow ({fam.name})" if keep else
                 "keep the full-rank Gaussian", why, time.perf_counter() - t0, **extra))

    # The Gaussian's weights are wildly heavy-tailed and a flow started from it ran off: on a
    # normalizable density the flow could gain at most KL(q || p) nats. Reported as diverged,
    # with no heavier family tried (on p = exp(sum z) it "converged" on a plateau of noise).
    improper = flowed.stop_reason == "diverged" and not gauss.khat <= KHAT_UNRELIABLE
    if not improper:
        best, best_name = last_stages(best, best_name)
    result = _finish(best, decisions, best_name, t_all, search)
    if failed is not None:
        result.info["auto"]["failed_stage"] = failed
    if improper:
        result = replace(result, stop_reason="diverged", notes=result.notes + (
            f"{failed['why']} (from the full-rank Gaussian, whose k-hat is "
            f"{gauss.khat:.2f})",))
    return result


# Components of the mixture auto fits in d = 1 in place of a flow.
MIXTURE_1D = 3


def _mixture_1d(fit, target: Target, gauss: FitResult, stage, say, z: float, n_eval: int,
                seed: int, t0: float) -> tuple[FitResult, str]:
    """In d = 1, where a coupling flow has no other coordinate to condition on, a mixture of
    ``MIXTURE_1D`` Gaussians started around the Gaussian q (skewed or heavier-tailed 1-D
    posteriors: a scale under a half-Cauchy or uniform prior), kept by the flow's rule.
    Measured on conjugate 1-D posteriors with exact log Z: on a sd under a Uniform(0, 10) prior
    the Gaussian's k-hat 3.7 and log Z 0.073 nats high, the mixture's 1.0 and 0.001."""
    from vifit.families.mixture import Mixture

    say(_row("fullrank", gauss, f"try a mixture of {MIXTURE_1D} Gaussians",
             f"k-hat {gauss.khat:.2f} >= {KHAT_GOOD}: the Gaussian misses part of p (in d = 1 "
             "a coupling flow has nothing to condition on)", time.perf_counter() - t0))
    t0 = time.perf_counter()
    fam = Mixture(k=MIXTURE_1D)
    start = fam.from_gaussian(jnp.asarray(gauss.mean()), jnp.asarray(gauss.covariance()),
                              key=jax.random.key(seed))
    mixed = fit(target, fam, init_params=start, **stage("mixture"))
    keep, why, extra = _compare(mixed, gauss, z, n_eval)
    say(_row(fam.name, mixed, "keep the mixture" if keep else "keep the full-rank Gaussian",
             why, time.perf_counter() - t0, **extra))
    return (mixed, "mixture") if keep else (gauss, "fullrank")


def _heavier(fit, target: Target, best: FitResult, best_name: str, gauss: FitResult, stage,
             say, z: float, n_eval: int) -> tuple[FitResult, str]:
    """``(best, its name)``, or the heavy-tailed family's fit where it replaces them: tried
    when the tail check (draws widened by Cauchy tails) finds p's mass where ``best`` has
    almost none, since no Gaussian or flow on a Gaussian base has polynomial tails. First with
    a tail along each axis ("heavytail"); if what is then kept still fails the check, with one
    radial tail ("heavytail:radial", a multivariate t's shape). ``best`` comes back with its
    tail check in ``info``."""
    tried: list[str] = []
    for tails in ("axes", "radial"):
        t0 = time.perf_counter()
        best = with_tail_check(best)
        checked = best.info.get("tails") or {}
        if checked.get("flag") != "light" or not target.differentiable:
            break
        fam = get_family(f"heavytail:tails={tails}")
        name = fam.name if tails == "axes" else f"{fam.name}:{tails}"
        start = fam.from_gaussian(jnp.asarray(gauss.mean()), jnp.asarray(gauss.covariance()))
        heavy = fit(target, fam, init_params=start, **stage(name.replace(":", "-")))
        keep, why, extra = _compare(heavy, best, z, n_eval)
        say(_row(name, heavy, f"keep {name}" if keep else f"keep {best_name}",
                 f"q's tails are too light (p's mass where q puts "
                 f"{100 * checked['q_mass']:.1f}%: {100 * checked['p_mass']:.1f}%); {why}",
                 time.perf_counter() - t0, **extra))
        if keep:
            best, best_name = heavy, name
        else:
            tried.append(name)
        if heavy.stop_reason == "interrupted":
            break
    checked = best.info.get("tails")
    if tried and checked and checked.get("flag") == "light":
        # the verdict's advice should not send the user to a family auto fitted and set aside
        best = replace(best, info={**best.info, "tails": {**checked, "tried": tried}})
    return best, best_name


def _mc_se(res: FitResult) -> float:
    """The ELBO's Monte Carlo standard error without the rounding floor (``vifit.evidence.
    rounding``): two fits of one target round log p alike, so their difference is free of it."""
    r = float((res.info.get("rounding") or {}).get("se", 0.0))
    return math.sqrt(max(res.elbo_se ** 2 - r ** 2, 0.0))


def _compare(new: FitResult, old: FitResult, z: float, n_eval: int
             ) -> tuple[bool, str, dict[str, float]]:
    """Whether the richer stage ``new`` replaces ``old``: a finite ELBO higher by more than
    ``z`` standard errors of the difference, and a k-hat not worse by more than ``z``
    asymptotic sds; with the reason and the gain for the decision's row. A stage the user
    interrupted is never kept."""
    keep, why, extra = _gain_rule(new, old, z, n_eval)
    if new.stop_reason == "interrupted":
        return False, INTERRUPTED, extra
    return keep, why, extra


def _gain_rule(new: FitResult, old: FitResult, z: float, n_eval: int
               ) -> tuple[bool, str, dict[str, float]]:
    if new.stop_reason in ("diverged", "non-finite") or not math.isfinite(new.elbo):
        return False, f"it stopped {new.stop_reason} (ELBO {new.elbo:.4g})", {}
    gain = new.elbo - old.elbo
    gain_se = math.hypot(_mc_se(new), _mc_se(old))
    extra = {"elbo_gain": gain, "elbo_gain_se": gain_se}
    k_margin = z * math.hypot(_khat_sd(new.khat, n_eval), _khat_sd(old.khat, n_eval))
    if not gain > z * gain_se:
        return False, f"ELBO gain {gain:.4f} ± {gain_se:.4f} is not > {z:g} se", extra
    if not new.khat <= old.khat + k_margin:
        return False, (f"k-hat {new.khat:.2f} is worse than {old.khat:.2f} by more than "
                       f"{k_margin:.2f}"), extra
    return True, (f"ELBO higher by {gain:.4f} ± {gain_se:.4f} (> {z:g} se) and k-hat "
                  f"{new.khat:.2f} vs {old.khat:.2f}"), extra


def _direct_gaussian(fit, target: Target, fullrank, stage, steps: int
                     ) -> tuple[FitResult | None, str, FitResult | None]:
    """The full-rank Gaussian by natural gradient from the target's default start, when that
    converges within ``DIRECT_STEPS``: ``(fit, "", None)``; else ``(None, why, attempt)``
    (``attempt`` None where natgrad did not run), and auto asks Pathfinder for a start and
    fits again (``_fit_gaussian``). An interrupted fit is returned as it is."""
    if not _natgrad_applies(target):
        return None, (f"d = {target.dim} > {NATGRAD_MAX_DIM} and natural gradient's Hessians "
                      f"would cost more than {NATGRAD_FLOPS:.0e} flops: Adam needs a start"
                      if target.differentiable else "no gradients"), None
    res = fit(target, fullrank, optimizer="natgrad", **_direct_settings(target, stage, steps))
    if res.stop_reason == "interrupted" or (res.stop_reason == "converged"
                                            and math.isfinite(res.elbo)):
        return res, "", None
    return None, (f"natural-gradient VI from the default start stopped {res.stop_reason} "
                  f"after {res.steps} steps (ELBO {res.elbo:.4f})"), res


def _natgrad_applies(target: Target) -> bool:
    return _natgrad_draws(target) is not None


def _natgrad_draws(target: Target) -> int | None:
    """Draws a natural-gradient step takes in the Gaussian stage, None where natgrad does not
    apply: ``NATGRAD_DRAWS`` up to ``NATGRAD_MAX_DIM`` coordinates; beyond, as many (at least
    ``NATGRAD_MIN_DRAWS``) as let ``DIRECT_STEPS`` steps fit ``NATGRAD_FLOPS``."""
    if not target.differentiable:
        return None
    if target.dim <= NATGRAD_MAX_DIM:
        return NATGRAD_DRAWS
    from vifit.modes import gradient_flops

    flops = gradient_flops(target.log_density, target.dim, np.dtype(target.init.dtype).name)
    draws = min(NATGRAD_DRAWS, int(NATGRAD_FLOPS // (DIRECT_STEPS * target.dim * flops)))
    return draws if draws >= NATGRAD_MIN_DRAWS else None


def _natgrad_settings(target: Target, settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` for a natgrad stage: above ``NATGRAD_MAX_DIM`` the draws of
    ``_natgrad_draws``, unless the caller chose some."""
    if settings.get("draws") is not None or target.dim <= NATGRAD_MAX_DIM:
        return settings  # up to NATGRAD_MAX_DIM natgrad's own default, NATGRAD_DRAWS
    return dict(settings, draws=_natgrad_draws(target))


def _direct_settings(target: Target, stage, steps: int) -> dict[str, Any]:
    return _natgrad_settings(target, dict(stage("fullrank-direct"),
                                          steps=min(steps, DIRECT_STEPS)))


def _fit_gaussian(fit, target: Target, fullrank, init, stage, natgrad: bool = True
                  ) -> FitResult:
    """The full-rank Gaussian stage: natural-gradient VI where it applies (``_natgrad_applies``:
    its exact Hessians cost d gradients per draw) and ``natgrad``, Adam otherwise or if natgrad
    fails (non-finite, or diverged: on heavy tails its precision can shrink without limit where
    Adam's steps stay bounded)."""
    if natgrad and _natgrad_applies(target):
        res = fit(target, fullrank, init_params=init, optimizer="natgrad",
                  **_natgrad_settings(target, stage("fullrank-natgrad")))
        if (res.stop_reason not in ("non-finite", "diverged") and math.isfinite(res.elbo)) \
                or res.stop_reason == "interrupted":
            return res
    return fit(target, fullrank, init_params=init, **stage("fullrank-adam"))


def _search(target: Target, gauss: FitResult, seed: int):
    """The mode search around the Gaussian stage's q (None where it does not apply)."""
    return search_around(target, jnp.asarray(gauss.mean()), jnp.asarray(gauss.covariance()),
                         seed)


def _modes_why(search) -> str:
    n, cov = len(search.modes), len(search.covered)
    text = (f"{search.starts} over-dispersed climbs in {search.rounds} round"
            f"{'s' if search.rounds != 1 else ''} found {n} separated mode"
            f"{'s' if n != 1 else ''}; the Gaussian covers {cov}")
    if not search.saturated:
        text += " (the last round still found new modes: there may be more)"
    if n > cov:
        text += (f", and misses about {100 * search.missed_fraction:.0f}% of the mass "
                 "(Laplace estimate)")
    if search.unconverged:
        text += f"; {search.unconverged} climbs had not converged"
    return text


def _rest_of_mass(search, also: tuple[float, ...] = ()) -> float:
    """The share of the modes' Laplace mass, with the log masses ``also``, outside the
    heaviest of them (NaN where one is not finite, 0 where there is nothing else)."""
    if search is None or not search.modes:
        return 0.0
    masses = np.array([m.log_mass for m in search.modes] + list(also), np.float64)
    if masses.size < 2:
        return 0.0
    if not np.all(np.isfinite(masses)):
        return math.nan
    return float(-np.expm1(masses.max() - log_sum_exp(masses)))


def _heaviest_elsewhere(gauss: FitResult, search):
    """The heaviest mode found, where the Gaussian q misses it and it outweighs all the rest,
    q's own mass (its log Z) and every other mode's, but for ``MIXTURE_MIN_MASS``; else None.
    q then sits on a local optimum of the ELBO without material mass: on posteriordb's
    low_dim_gauss_mix natgrad from the default start converged on a mode e^-446 as heavy as
    the one the search found 53 of q's sds away, and a mixture of the two was set aside (the
    heaviest mode, q missing it, carried all the mass): auto ended on a flow around the light
    mode, 575 sds off in mu[1], "not reliable"."""
    if search is None or not search.modes:
        return None
    top = search.modes[0]  # (largest mass first)
    own = (gauss.log_z,) if math.isfinite(gauss.log_z) else ()
    if top.covered or top.cov is None or any(top.log_mass < m for m in own):
        return None
    return top if _rest_of_mass(search, also=own) < MIXTURE_MIN_MASS else None


def _unseen_mode(gauss: FitResult, search) -> float:
    """The share of the mass in the one mode the search found, where that mode lies in the
    Gaussian's typical region but its draws almost never land in it (a narrow mode inside a
    broad one: ``vifit.mode_check.coverage``); 0 otherwise, or below ``MISSED_CARE``."""
    if search is None or len(search.modes) != 1:
        return 0.0
    record = coverage(gauss, search)
    missed = float(record.get("missed_mass_fraction") or 0.0)
    return missed if missed >= MISSED_CARE and not record.get("note") else 0.0


def _fit_mixture(fit, target: Target, search, stage, beside: FitResult | None = None
                 ) -> FitResult:
    """A full-rank Gaussian mixture started at the modes: one component per mode, with its
    Laplace covariance and a weight by its Laplace mass; with ``beside`` (a Gaussian fit), its
    q too, weighted by its log Z."""
    gaussians = [(m.location, m.cov, m.log_mass) for m in search.modes]
    if beside is not None:
        gaussians.append((np.asarray(beside.mean()), np.asarray(beside.covariance()),
                          beside.log_z))
    return _mixture_of(fit, target, gaussians, stage("mixture"))


def _mixture_of(fit, target: Target, gaussians, settings: dict[str, Any]) -> FitResult:
    """A full-rank Gaussian mixture fitted from components ``(mean, cov, log weight)``."""
    from vifit.families.mixture import Mixture

    fam = Mixture(k=len(gaussians), component="fullrank")
    # the covariances stay float64 on the host: the family factors them before the cast
    comps = [fam.base.from_gaussian(jnp.asarray(mean, dtype=target.init.dtype),
                                    np.asarray(cov, np.float64))
             for mean, cov, _ in gaussians]
    start = {"logits": jnp.asarray([w for _, _, w in gaussians], dtype=target.init.dtype),
             "components": jax.tree.map(lambda *xs: jnp.stack(xs), *comps)}
    start["logits"] = start["logits"] - jnp.max(start["logits"])
    mixed = fit(target, fam, init_params=start, **settings)
    start_elbo, start_se = _start_elbo(target, fam, start, settings)
    if start_elbo - mixed.elbo > LOST_Z * math.hypot(start_se, mixed.elbo_se):
        # Adam moves every parameter by about its rate per step, and threw a component far
        # narrower than that off its mode (vifit.optim.component_units): again, with each
        # component stepping in its own units
        again = fit(target, fam, init_params=start, optimizer="component-adam", **settings)
        if again.elbo > mixed.elbo:
            mixed = replace(again, notes=again.notes + (
                f"the mixture fitted with Adam ended {start_elbo - mixed.elbo:.3f} nats of "
                "ELBO below its own start (a component narrower than Adam's steps was thrown "
                "off its mode); it was fitted again with each component stepping in its own "
                "units (optimizer 'component-adam')",))
    return mixed


# A mixture fit whose ELBO ends this many combined standard errors below its start's is run
# again with ``component-adam``.
LOST_Z = 3.0


def _start_elbo(target: Target, fam, params, settings: dict[str, Any]) -> tuple[float, float]:
    """The ELBO of a mixture's start and its standard error, from ``n_eval`` draws (the
    evaluation's compiled draw program)."""
    key = jax.random.fold_in(jax.random.key(settings.get("seed", 0)), 0x57A7)
    _, logw = draw_logw(fam, target, params, key, int(settings.get("n_eval", 4000)))
    logw = np.asarray(logw, np.float64)
    finite = logw[np.isfinite(logw)]
    if finite.size < 2:
        return -math.inf, math.inf
    return (float(finite.mean() + math.log(finite.size / logw.size)),
            float(finite.std(ddof=1) / math.sqrt(finite.size)))


def _flow_beside(fit, target: Target, fam, flow_start, flow_lr: float, best: FitResult,
                 best_name: str, stage, say, z: float, n_eval: int) -> tuple[FitResult, str]:
    """``(best, its name)``, or the flow where it replaces them: tried beside a mixture of the
    modes found whose k-hat is still not good. Points along one curved ridge can each look
    like a mode to the search (a straight path between two of them leaves the ridge), and a
    mixture of Gaussians along a banana is a poor fit where a flow bends with it."""
    t0 = time.perf_counter()
    flowed = fit(target, fam, init_params=flow_start, lr=flow_lr, **stage(fam.name))
    keep, why, extra = _compare(flowed, best, z, n_eval)
    say(_row(fam.name, flowed, f"keep the flow ({fam.name})" if keep else f"keep {best_name}",
             f"the {best_name}'s k-hat {best.khat:.2f} >= {KHAT_GOOD}; {why}",
             time.perf_counter() - t0, **extra))
    return (flowed, fam.name) if keep else (best, best_name)


def _outside(fit, target: Target, best: FitResult, best_name: str, stage, say, z: float,
             n_eval: int) -> tuple[FitResult, str]:
    """``(best, its name)``, or a mixture of best's q and one more component where that
    replaces them: tried when the tail check still finds 10% or more of p's mass where q puts
    almost none after the heavy-tailed families (a wide component around a narrow one, a slab under a
    spike, mass a mode search cannot see because it is no separate mode). The new component
    starts at p's mean and covariance within that region, from the check's own draws
    (``vifit.evidence.tails.mass_outside``); q's parts keep their shares of the rest."""
    if not tails_apply(target):
        return best, best_name
    if "tails" not in best.info:
        best = with_tail_check(best)
    checked = best.info.get("tails") or {}
    # Only where the mass q misses makes the answer wrong (EXCESS_UNRELIABLE, 10%: log Z 0.1
    # nats low or more): below it the verdict already says "usable with care", and on a
    # 10-D Cauchy (2.4% left beside the heavy-tailed family) the stage cost 8 s for nothing.
    # The check's weights need not be usable for summaries ("usable"): a start only has to
    # lie where the mass is, and the mixture is kept by its ELBO.
    if (checked.get("flag") != "light" or not checked.get("excess", 0.0) >= EXCESS_UNRELIABLE
            or not target.differentiable):
        return best, best_name
    t0 = time.perf_counter()
    found = mass_outside(best)
    if found is None:
        say(_row("mixture (outside q)", None, f"keep {best_name}",
                 "too few of the tail check's draws land where q misses p's mass to place a "
                 "component there", time.perf_counter() - t0))
        return best, best_name
    share, mean, cov, ess = found
    rest = math.log1p(-min(share, 1.0 - 1e-6))
    from vifit.evidence.api import mixture_components  # 0.14 s of imports, only here

    comps = mixture_components(best.family, best.params)
    if comps is not None:
        parts = [(np.asarray(m), np.asarray(c), math.log(max(float(w), 1e-300)) + rest)
                 for w, m, c in zip(*comps)]
    else:
        parts = [(*_moments(best), rest)]
    parts.append((mean, cov, math.log(share)))
    if not all(np.all(np.isfinite(m)) and np.all(np.isfinite(c)) for m, c, _ in parts):
        # a heavy-tailed q's moments from its draws can overflow
        say(_row("mixture (outside q)", None, f"keep {best_name}",
                 "the components' moments are not finite", time.perf_counter() - t0))
        return best, best_name
    try:
        mixed = _mixture_of(fit, target, parts, stage("mixture-outside"))
    except TargetError as err:
        say(_row("mixture (outside q)", None, f"keep {best_name}",
                 f"the mixture could not start: {err}", time.perf_counter() - t0))
        return best, best_name
    keep, why, extra = _compare(mixed, best, z, n_eval)
    say(_row("mixture (outside q)", mixed,
             f"keep the mixture of {best_name} and a component where it missed "
             f"{100 * share:.0f}% of p's mass" if keep else f"keep {best_name}",
             f"{why} (the new component from {ess:.0f} effective draws of the tail check)",
             time.perf_counter() - t0, **extra))
    return (with_tail_check(mixed), "mixture") if keep else (best, best_name)


def _host_covariance(gauss: FitResult) -> np.ndarray:
    """The Gaussian fit's covariance in float64 on the host, from its own Cholesky factor where
    it has one: L L^T formed in float32 and factored again lost PD-ness on a Gaussian with sds
    from 0.01 to 100 (JAX 0.12), and the flow started from NaN."""
    if gauss.family.name == "fullrank":
        from vifit.families.gaussian import _cholesky

        chol = np.asarray(_cholesky(gauss.params["chol"]), np.float64)
        return chol @ chol.T
    return np.asarray(gauss.covariance(), np.float64)


def _moments(res: FitResult) -> tuple[np.ndarray, np.ndarray]:
    """q's mean and covariance: exact for a Gaussian, else from as many of its draws as its
    evaluation took."""
    if res.family.gaussian_form:
        return np.asarray(res.mean()), np.asarray(res.covariance())
    z = np.asarray(res.sample_unconstrained(jax.random.key(res.seed), res.evidence.n or 4000),
                   np.float64)
    return z.mean(axis=0), np.cov(z, rowvar=False).reshape(z.shape[1], z.shape[1])



def _stopped(decisions: list[dict[str, Any]]) -> bool:
    """Whether the user stopped one of auto's stages (its row says so, ``_row``)."""
    return any(d.get("interrupted") or d.get("why") == INTERRUPTED for d in decisions)


def _finish(result: FitResult, decisions: list[dict[str, Any]], chosen: str,
            t_all: float, search=None) -> FitResult:
    info = dict(result.info)
    info["auto"] = {"chosen": chosen, "decisions": decisions,
                    "total_seconds": time.perf_counter() - t_all}
    if _stopped(decisions):
        # the result is the last stage that finished, with its own stop reason: the
        # commands must still know that the user stopped the fit
        info["auto"]["interrupted"] = True
    if search is not None:
        info["modes"] = coverage(result, search)
    result = replace(result, info=info)
    # A result whose tails were checked before the heavy-tailed stage was weighed keeps that.
    return result if "tails" in info else with_tail_check(result)


def fit_auto_minibatch(target, **settings: Any) -> FitResult:
    """``family="auto"`` on a data set fitted by minibatches: a full-rank Gaussian by natural
    gradient (Pathfinder's start and flows would need many full passes), with the mode search
    on the data (or a subset of its rows) that every fit on a data set runs as a final check
    (``vifit.mode_check.with_mode_check``)."""
    import dataclasses

    from vifit.engine import fit_one

    result = fit_one(target, "fullrank", **settings)
    notes = ("family='auto' on minibatches fits a full-rank Gaussian by natural gradient "
             "(Pathfinder's start and flows need many full passes over the data).",)
    return dataclasses.replace(result, notes=result.notes + notes)
