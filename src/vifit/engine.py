"""One fit of one family: resolve -> run -> evaluate -> result.

``fit_one`` is what ``vifit.fit`` does for a named family; strategies that combine fits
(``vifit.auto``) call it too. Every optimizer goes through the same runner protocol
(``vifit.optim.runner``), so nothing here depends on which one it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vifit.ahead import compile_ahead, ready
from vifit.data.target import DataTarget
from vifit.errors import ConfigError, TargetError
from vifit.estimators import Estimator
from vifit.evidence.importance import importance_log_z
from vifit.evidence.rounding import floored
from vifit.families import Family
from vifit.families.base import Params
from vifit.freshness import kept
from vifit.objectives import Objective
from vifit.optim.runner import RunArgs, runner_for
from vifit.progress import FitProgress
from vifit.resolve import resolve, resolve_draws
from vifit.result import FitResult
from vifit.target import Target
from vifit.threads import single_threaded_blas


def fit_one(
    target: Target,
    family: str | Family | None = None,
    *,
    objective: str | Objective = "elbo",
    estimator: str | Estimator | None = None,
    optimizer: str | optax.GradientTransformation | None = None,
    lr: float | str | None = None,
    schedule: str | optax.Schedule | None = None,
    steps: int = 10_000,
    draws: int | None = None,
    seed: int = 0,
    window: int = 100,
    patience: int | None = None,
    tol: float = 1e-3,
    n_eval: int = 4000,
    init_params: Params | None = None,
    init: str | None = None,
    optimizer_options: dict[str, Any] | None = None,
    progress: bool | None = None,
    callback: Callable[[int, float], None] | None = None,
    checkpoint=None,
    batch_size: int | None | str = "auto",
    control_variate: bool = True,
    devices: int | None = None,
    distributed: bool = False,
    final_checks: bool = True,
) -> FitResult:
    """``vifit.fit`` for one family (not ``"auto"``); arguments as there. ``checkpoint``: a
    ``vifit.optim.resume.FitCheckpoint`` for this fit's stages, or None. ``final_checks``:
    run ``vifit.evidence.tails`` and, where the verdict would otherwise be "good" or "usable
    with care", the mode search (``vifit.mode_check.with_mode_check``) on the final q (auto runs
    both once, on the q it keeps)."""
    fam, obj, est = resolve(target, family, objective, estimator)
    minibatch, data_notes = _minibatch(target, batch_size, control_variate, devices, seed,
                                       optimizer, distributed)
    optimizer, patience, runner, own, draws, user_draws = _settings(
        fam, obj, est, minibatch, optimizer, patience, draws, steps, window, lr)
    opt_name = optimizer if isinstance(optimizer, str) else type(optimizer).__name__
    info: dict[str, Any] = {}

    k_init, k_check, k_loop, k_eval = _keys(seed)
    if init_params is not None:
        params = _checked_init_params(fam, init_params, target, k_init)
    elif init == "pathfinder":
        params, info["init"] = _pathfinder_start(target, fam, k_init)
    elif init is None:
        params = fam.init(k_init, target.dim, loc=target.init)
    else:
        raise ConfigError(f"unknown init {init!r}; use init='pathfinder' or give init_params.")
    _check_start(target, fam, params, k_check, max(draws, 16))
    if final_checks and not isinstance(target, DataTarget):
        # A fit of its own (not a stage of auto, which plans its own): what runs after the
        # loop compiles on a worker while the loop compiles and runs (vifit.ahead).
        compile_ahead(_after_loop_programs(target, fam, params, seed, dict(
            objective=obj, estimator=est, optimizer=optimizer, lr=lr, schedule=schedule,
            steps=steps, draws=user_draws, seed=seed, window=window, patience=patience,
            tol=tol, n_eval=n_eval, optimizer_options=optimizer_options)))

    args = RunArgs(target=target, family=fam, objective=obj, estimator=est, params=params,
                   key=k_loop, max_steps=int(steps),
                   draws=user_draws if own else draws, lr=lr, window=int(window),
                   patience=int(patience), tol=float(tol), on_window=None,
                   options=dict(optimizer_options or {}), optimizer=optimizer,
                   schedule=schedule, checkpoint=checkpoint, warm_start=init_params is None,
                   init_key=k_init, minibatch=minibatch)
    label = f"{target.name} · {fam.name} · {opt_name if own else est.name}"
    metric = "ELBO" if own else obj.name
    with single_threaded_blas(), FitProgress(int(steps), label=label, enabled=progress,
                                             metric=metric) as bar:
        loop, extra = runner(args._replace(on_window=_with_callback(bar.update, callback)))
        bar.finish(loop.steps)
    notes = data_notes + list(extra.pop("notes", []))
    info.update(extra)
    # A runner may choose its own number of draws (lbfgs-fixed: M from the family and d).
    draws = extra.get("lbfgs_fixed", {}).get("fixed_draws", draws)
    if loop.stop_reason == "diverged":
        notes.append(_diverged_note(loop, target))

    if minibatch is not None:
        info["minibatch"] = _minibatch_info(minibatch, loop, draws)
        if loop.stop_reason == "converged" and loop.window_se > NOISY_WINDOW_SE:
            notes.append(
                f"the window means of the objective are noisy (standard error "
                f"{loop.window_se:.3g} nats from subsampling): the stopping rule cannot see "
                f"changes below about {2 * loop.window_se:.2g} nats per window, so q may still "
                "be short of the optimum; the full-data k-hat below is the check. A larger "
                "batch_size or control_variate=True lowers the noise.")
    with single_threaded_blas():
        if isinstance(target, DataTarget):
            rows = target.n_rows if minibatch is None else minibatch.n_rows
            eval_z, logw, eval_note = _eval_data_logw(target, fam, loop.params, k_eval,
                                                      n_eval, progress, rows)
            kept = (eval_z, logw)
            info["full_data_eval"] = {"draws": int(logw.size),
                                      "row_evaluations": int(logw.size) * rows}
            notes.extend(eval_note)
        else:
            eval_z, logw = _eval_logw(target, fam, loop.params, k_eval, n_eval)
            kept = None
    info["rounding"] = _rounding(target, eval_z, logw)
    finite = logw[np.isfinite(logw)]
    # Draws outside the support (log p = -inf, or NaN) have zero weight. Jensen's inequality on
    # the rest gives log Z >= E_q[log w | finite] + log P_q(finite): still a lower bound.
    elbo, elbo_se = _elbo_over_support(logw)
    elbo_se = floored(elbo_se, info["rounding"]["se"])
    if 0 < finite.size < logw.size:
        bad = logw.size - finite.size
        notes.append(f"{bad} of {logw.size} evaluation draws of q have log p = -inf, +inf or "
                     "NaN (outside the support, or a region where the model is not finite); "
                     "they carry zero importance weight, and the ELBO is taken over the rest "
                     f"plus log({finite.size}/{logw.size}), still a lower bound.")
    obj_value, obj_se = obj.estimate(logw)
    result = FitResult(
        target=target, family=fam, params=loop.params, objective=obj.label(),
        estimator=opt_name if own else est.label(),
        optimizer=opt_name, trace=loop.trace, steps=loop.steps, rejected=loop.rejected,
        stop_reason=loop.stop_reason, seconds=loop.seconds, elbo=elbo, elbo_se=elbo_se,
        evidence=_floored_evidence(importance_log_z(logw), info["rounding"]),
        seed=seed, draws=draws,
        objective_value=obj_value, objective_se=obj_se, direction=obj.direction,
        notes=tuple(notes), info=info, eval_draws=kept,
    )
    if not final_checks:
        return result
    from vifit.mode_check import with_mode_check
    from vifit.evidence.tails import with_tail_check

    with single_threaded_blas():
        return with_mode_check(with_tail_check(result, n_eval), distributed=distributed)


def _settings(fam: Family, obj: Objective, est: Estimator, minibatch, optimizer, patience,
              draws, steps: int, window: int, lr):
    """The optimizer, patience, runner, whether the runner has its own step (``own``), the
    draws per step and the user's own draws, checked, as ``fit_one`` and ``stage_programs``
    resolve them."""
    if optimizer is None:
        optimizer = "natgrad" if minibatch is not None and fam.gaussian_form else "adam"
    patience = fam.default_patience if patience is None else patience
    runner, runner_draws = runner_for(optimizer)
    own = runner_draws is not None  # a registered runner with its own step and draws
    user_draws = draws
    draws = runner_draws if own and draws is None else resolve_draws(draws, obj, est)
    if steps < 1 or window < 1 or patience < 1:
        raise ConfigError("steps, window and patience must be positive integers.")
    if isinstance(lr, str) and lr != "auto":
        raise ConfigError(f"lr must be a positive number or 'auto', got {lr!r}.")
    if own and lr == "auto":
        raise ConfigError(f"lr='auto' is for the stochastic optax optimizers; "
                          f"{optimizer!r} sets its own step (leave lr out).")
    return optimizer, patience, runner, own, draws, user_draws


def _after_loop_programs(target: Target, fam: Family, params: Params, seed: int,
                         settings: dict[str, Any]) -> list[tuple[Any, tuple]]:
    """What ``fit_one`` runs after its loop: its evaluation, the mode search of its final
    checks, and ``vifit.result.after_fit_programs``."""
    from vifit.modes import search_programs
    from vifit.result import after_fit_programs

    programs = stage_programs(target, fam, init_params=params, which=("eval",), **settings)
    return programs + search_programs(target) + after_fit_programs(fam, target, params, seed)


def _keys(seed: int) -> list[jax.Array]:
    """The keys of a fit's start, start check, loop and evaluation."""
    return list(jax.random.split(jax.random.key(seed), 4))


def stage_programs(target: Target, family: str | Family, *, init_params: Params | None = None,
                   which: tuple[str, ...] = ("start", "loop", "eval"),
                   objective: str | Objective = "elbo",
                   estimator: str | Estimator | None = None,
                   optimizer: str | optax.GradientTransformation | None = None,
                   lr: float | str | None = None, schedule: str | optax.Schedule | None = None,
                   steps: int = 10_000, draws: int | None = None, seed: int = 0,
                   window: int = 100, patience: int | None = None, tol: float = 1e-3,
                   n_eval: int = 4000, optimizer_options: dict[str, Any] | None = None,
                   **_: Any) -> list[tuple[Any, tuple]]:
    """The programs ``fit_one(target, family, init_params=..., <the same settings>)`` will
    run (``init_params`` None: from its default start), as ``(jitted, args)`` for
    ``vifit.ahead.compile_ahead``: ``"start"`` its check of the start, ``"loop"`` its
    runner's loop (where the runner says which: ``runner.programs``), ``"eval"`` its
    evaluation draws, ``"moments"`` its result's ``mean()`` and ``covariance()`` (where the
    family has them). Settings ``fit_one`` takes that do not shape a program (progress,
    checkpoint, ...) are ignored. Empty for a data target (its programs depend on the
    minibatches)."""
    if isinstance(target, DataTarget):
        return []
    fam, obj, est = resolve(target, family, objective, estimator)
    optimizer, patience, runner, own, draws, user_draws = _settings(
        fam, obj, est, None, optimizer, patience, draws, steps, window, lr)
    k_init, k_check, k_loop, k_eval = _keys(seed)
    params = (fam.init(k_init, target.dim, loc=target.init) if init_params is None else
              _checked_init_params(fam, init_params, target, k_init))
    programs: list[tuple[Any, tuple]] = []
    if "start" in which:
        programs.append((_start_log_p(fam, target, max(draws, 16)), (params, k_check)))
    loop_programs = getattr(runner, "programs", None)
    if "loop" in which and loop_programs is not None:
        programs += loop_programs(RunArgs(
            target=target, family=fam, objective=obj, estimator=est, params=params,
            key=k_loop, max_steps=int(steps), draws=user_draws if own else draws, lr=lr,
            window=int(window), patience=int(patience), tol=float(tol), on_window=None,
            options=dict(optimizer_options or {}), optimizer=optimizer, schedule=schedule,
            warm_start=init_params is None, init_key=k_init))
    if "eval" in which:
        from vifit.result import DRAW_BLOCK, _draw_block

        programs.append((_draw_block(fam, target, min(n_eval, DRAW_BLOCK)), (params, k_eval)))
    if "moments" in which:  # a family without them fails to trace: compile_ahead skips it
        from vifit.result import family_program

        programs += [(family_program(fam, name), (params,)) for name in ("mean", "covariance")]
    return programs


def _checked_init_params(fam: Family, init_params: Params, target: Target, key) -> Params:
    """``init_params`` if it has the structure, shapes and dtypes of ``fam.init``'s, else a
    ConfigError that shows what is expected."""
    want = jax.eval_shape(lambda k: fam.init(k, target.dim, loc=target.init), key)
    try:
        got = jax.tree.map(jnp.asarray, init_params)
        same = jax.tree.structure(got) == jax.tree.structure(want) and all(
            a.shape == b.shape for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))
    except (TypeError, ValueError):
        same = False
    if not same:
        shapes = jax.tree.map(lambda x: tuple(x.shape), want)
        raise ConfigError(f"init_params do not fit the {fam.name} family for d = {target.dim}: "
                          f"it expects {shapes}; take them from family.init(key, dim) or a "
                          "previous fit's result.params.")
    return jax.tree.map(lambda g, w: g.astype(w.dtype), got, want)


def _diverged_note(loop, target: Target) -> str:
    """The loop's divergence message, with the coordinates that ran off named."""
    text = loop.message or "the fit diverged."
    if loop.spread is not None and np.size(loop.spread) == target.dim:
        spread = np.nan_to_num(np.asarray(loop.spread), nan=np.inf)
        worst = np.argsort(-spread)[:3]
        names = ", ".join(f"{target.param_names[i]} (|z| {spread[i]:.3g})" for i in worst)
        text += f" Largest: {names}."
    return text


def _elbo_over_support(logw: np.ndarray) -> tuple[float, float]:
    """The ELBO over draws in p's support, E_q[log w | finite] + log P_q(finite) (a lower
    bound on log Z by Jensen's inequality), and its standard error. The error has two parts:
    the finite log weights' spread over their count, and the binomial error of the estimated
    P_q(finite), whose log has variance (1 - P) / (n P) by the delta method. Without the
    second, a truncated density's ELBO came out 6.7 "standard errors" above the true log Z
    while it was 1.2 of these."""
    finite = logw[np.isfinite(logw)]
    n, n_f = logw.size, finite.size
    if n_f == 0:
        return -np.inf, np.inf
    share = n_f / n
    elbo = float(finite.mean() + np.log(share))
    if n_f < 2:
        return elbo, np.inf
    return elbo, float(np.sqrt(finite.var(ddof=1) / n_f + (1.0 - share) / (n * share)))


def _check_start(target: Target, family: Family, params: Params, key: jax.Array, n: int) -> None:
    if isinstance(target, DataTarget):  # streamed in chunks: never the whole data at once
        from vifit.data.passes import full_log_density

        logp = full_log_density(target, family.sample(params, key, n))
    else:
        program = _start_log_p(family, target, n)
        ready(program)
        logp = np.asarray(program(params, key))
    if not np.isfinite(logp).any():
        raise TargetError(
            f"log_density is not finite at any of {n} draws from the initial q around init; "
            "start closer to the posterior (init=...) or with a smaller initial scale "
            "(e.g. FullRank(init_scale=0.01))."
        )


@kept(32)
def _start_log_p(family: Family, target: Target, n: int):
    """Jitted ``(params, key) -> log p (n,)`` at ``n`` draws of q: one program (in the
    persistent cache once compiled) where eager sampling ran a flow's layers op by op, about
    a second of every run."""
    return jax.jit(lambda params, key: target.batch_log_density(family.sample(params, key, n)))


def _with_callback(update: Callable[[int, float, float], None],
                   callback: Callable[[int, float], None] | None
                   ) -> Callable[[int, float, float], None]:
    """The progress bar's per-window hook, followed by the user's callback when given."""
    if callback is None:
        return update

    def on_window(done: int, value: float, rate: float) -> None:
        update(done, value, rate)
        callback(int(done), float(value))

    return on_window


def _pathfinder_start(target: Target, family: Family, key: jax.Array
                      ) -> tuple[Params, dict[str, Any]]:
    from vifit.optim.pathfinder import pathfinder

    res = pathfinder(target, seed=key)
    params = family.from_gaussian(jnp.asarray(res.mean), jnp.asarray(res.cov))
    return params, {"pathfinder": {"elbo": res.elbo, "best_iter": res.best_iter,
                                   "iters": res.iters, "stop_reason": res.stop_reason,
                                   "seconds": res.seconds}}


def _rounding(target: Target, z: np.ndarray, logw: np.ndarray) -> dict:
    """How finely the evaluation's draws ``z`` and log weights are resolved
    (``vifit.evidence.rounding``): a data target's log p is a float64 sum of float32 partial
    sums."""
    from vifit.evidence.rounding import coordinate_rounding, rounding_of_logw

    chunks = 1
    if isinstance(target, DataTarget) and _rows_recomputed(target, logw.size):
        from vifit.data.passes import pass_chunks

        chunks = pass_chunks(target, logw.size)
    dtype = target.init.dtype
    if not jnp.issubdtype(dtype, jnp.floating):  # a discrete target's log p: JAX's default float
        dtype = jnp.asarray(0.0).dtype
    return rounding_of_logw(logw, dtype, chunks) | coordinate_rounding(
        z, target.init.dtype, getattr(target, "param_names", None))


def _rows_recomputed(target: DataTarget, n: int) -> bool:
    """Whether a data target's float32 partial sums may be taken as independently rounded:
    the tail check recomputes its log p in float64 (``vifit.evidence.rounding.
    float64_data_check``), and wholly so, which measures what float32 gets wrong in every row
    alike (gammaln of float32 counts: a Poisson model of 200,000 rows read "good" with log Z
    0.56 nats low and a floor of 0.04). Otherwise the floor is not divided by the sums."""
    from vifit.evidence.rounding import data_wholly_float64
    from vifit.evidence.tails import data_draws

    return data_draws(target, n) > 0 and data_wholly_float64(target)


def _floored_evidence(evidence, rounding: dict):
    """The PSIS estimate with the rounding floor in its standard error."""
    return evidence._replace(se=floored(evidence.se, rounding["se"]))


def _eval_logw(target: Target, family: Family, params: Params, key: jax.Array,
               n: int) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation's draws ``(n, d)`` and their log weights ``(n,)`` (float64)."""
    from vifit.result import draw_logw

    z, logw = draw_logw(family, target, params, key, n)
    return z, np.asarray(logw, dtype=np.float64)


# Window-mean noise (nats) above which a minibatch fit says its stopping rule was blind.
NOISY_WINDOW_SE = 1.0


def _minibatch(target: Target, batch_size, control_variate: bool, devices: int | None,
               seed: int, optimizer, distributed: bool = False) -> tuple[Any, list[str]]:
    """The Minibatch a data fit runs on (None: full data) and what to say about it."""
    if not isinstance(target, DataTarget):
        if batch_size not in (None, "auto"):
            raise ConfigError("batch_size is for data targets (vifit.DataTarget, or a NumPyro "
                              "model with a subsampled plate); this target is one log density.")
        if distributed:
            raise ConfigError("distributed=True is for data targets (vifit.DataTarget) whose "
                              "rows are split across the processes.")
        return None, []
    from vifit.data.batches import default_batch_size
    from vifit.data.minibatch import Minibatch

    hosts = None
    if distributed:
        from vifit.data.hosts import HostRows, initialize

        initialize()
        hosts = HostRows(target.n_rows)
    n = target.n_rows if hosts is None else hosts.n_rows
    if batch_size == "auto":
        batch_size = default_batch_size(n)
    if batch_size is None or batch_size >= n:
        if hosts is not None:
            raise ConfigError("a distributed fit runs on minibatches: give batch_size below "
                              f"the {n:,} rows of all processes together.")
        return None, []
    if isinstance(optimizer, str) and optimizer in ("lbfgs-fixed", "pathfinder"):
        raise ConfigError(f"optimizer {optimizer!r} needs the full data at every step; use "
                          "batch_size=None, or optimizer='adam' or 'natgrad' with minibatches.")
    from vifit.data.devices import RowSharding, default_devices

    sharding = None
    if hosts is not None:
        sharding = RowSharding.for_processes(int(batch_size))
        hosts.set_layout(sharding.per_process)
    else:
        devices = default_devices(n, batch_size) if devices is None else devices
        if devices > 1:
            sharding = RowSharding.make(devices, batch_size)
    mb = Minibatch(target, int(batch_size), seed, control_variate=control_variate,
                   sharding=sharding, hosts=hosts)
    where = ("" if sharding is None else f" over {sharding.count} devices" + (
        f" of {jax.process_count()} processes" if hosts is not None else ""))
    return mb, [f"fitted on minibatches of {mb.batch_size} of {n:,} rows{where} (shuffled epochs; "
                f"each step's log p scaled by N/B = {mb.schedule.scale:.4g})"
                + (", with the Taylor control variate" if control_variate else "")]


def _minibatch_info(mb, loop, draws: int) -> dict[str, Any]:
    n, steps = mb.n_rows, loop.steps
    return {"batch_size": mb.batch_size, "rows": n, "epochs": steps * mb.batch_size / n,
            "window_se": loop.window_se,
            "control_variate": mb.control_variate, "reference_refreshes": mb.refreshes,
            "row_evaluations": steps * mb.batch_size * draws + mb.refreshes * n,
            "devices": 1 if mb.sharding is None else mb.sharding.count,
            "processes": 1 if mb.hosts is None else jax.process_count()}


def _eval_data_logw(target: DataTarget, family: Family, params: Params, key: jax.Array,
                    n_eval: int, progress: bool | None, rows: int
                    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Log-weights on the full data (``rows`` in all processes together), for as many draws
    as the evaluation budget affords."""
    from vifit.data.passes import eval_draws, full_logw

    n = eval_draws(n_eval, rows)
    notes = []
    if n < n_eval:
        notes.append(f"the final ELBO, log Z and k-hat use {n} draws instead of n_eval="
                     f"{n_eval}: each draw costs a pass over all {rows:,} rows "
                     f"({n * rows:.3g} row evaluations in all); pass n_eval to "
                     "change it (the evaluation grows with n_eval x N).")
    z, logw = full_logw(target, family, params, key, n, progress)
    return z, logw, notes
