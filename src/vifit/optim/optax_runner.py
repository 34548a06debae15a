"""The runner of the first-order optax optimizers (``adam``, ``sgd``, ``adagrad``, ``rmsprop``
or any optax transform) on a stochastic gradient: an optional learning-rate pilot
(``lr="auto"``), the objective's warm start where it has one, then the compiled loop."""

from __future__ import annotations

from typing import Any

import jax

from vifit.ahead import ready
from vifit.errors import ConfigError
from vifit.objectives import get_objective
from vifit.optim.loop import (LoopConfig, LoopResult, State, first_chunk, make_probe, make_step,
                              no_rejections, reused, run_loop)
from vifit.optim.lr_search import search_lr
from vifit.optim.optimizers import make_optimizer
from vifit.optim.runner import RunArgs
from vifit.resolve import resolve_draws, resolve_estimator
from vifit.threads import single_threaded_blas

DEFAULT_LR = 1e-2


def run_optax(args: RunArgs) -> tuple[LoopResult, dict[str, Any]]:
    """Runner for the optax optimizers. ``args.draws`` must be set (resolved by ``fit``);
    ``args.lr``: a rate, ``"auto"`` for the pilot, or None for ``DEFAULT_LR``."""
    info: dict[str, Any] = {}
    params, lr = args.params, args.lr
    target, fam, obj, est = args.target, args.family, args.objective, args.estimator
    if lr == "auto" and args.minibatch is not None:
        raise ConfigError("lr='auto' pilots on the full data; with batch_size set give a "
                          "learning rate (or leave lr out for the default).")
    if lr == "auto":
        with single_threaded_blas():
            lr, params, info["lr_search"] = search_lr(obj, est, fam, target.log_density,
                                                      args.optimizer, params, args.init_key,
                                                      args.draws)
    opt, config = _optimizer_and_config(args, lr)
    key = args.key
    notes: list[str] = []
    if obj.warm_start is not None and args.warm_start:
        # The objective's K-draw estimate only means something once q covers p (see its
        # docstring): start from a fit of the warm-start objective, recorded in the notes.
        w_obj = get_objective(obj.warm_start)
        w_est = resolve_estimator(None, target, w_obj, fam)
        w_config = config._replace(draws=resolve_draws(None, w_obj, w_est),
                                   direction=w_obj.direction)
        k_warm, key = jax.random.split(key)
        warm = _loop(args, w_obj, w_est, opt, params, k_warm, w_config, None,
                     None if args.checkpoint is None else args.checkpoint.child("warm"))
        params = warm.params
        notes.append(f"started from a fit of {w_obj.label()} ({w_est.label()}, "
                     f"{warm.steps} steps, {warm.stop_reason})")
        if warm.stop_reason in ("diverged", "interrupted"):
            return warm, {**info, "notes": notes}
    loop = _loop(args, obj, est, opt, params, key, config, args.on_window, args.checkpoint)
    if notes:
        info["notes"] = notes
    return loop, info


def _parts(args: RunArgs, obj, est, opt, draws: int):
    """The jitted optimizer-state init (one program, where eager init ran one per parameter
    shape and op), the step and the probe of this fit: the same objects for the same settings
    (``reused``)."""
    density = args.minibatch if args.minibatch is not None else args.target.log_density
    step = reused(make_step, obj, est, args.family, density, opt, draws,
                  keep=args.minibatch is None)
    return reused(jax.jit, opt.init), step, reused(make_probe, args.family)


def _loop(args: RunArgs, obj, est, opt, params, key, config: LoopConfig, on_window,
          checkpoint) -> LoopResult:
    init, step, probe = _parts(args, obj, est, opt, config.draws)
    ready(init)
    state = State(params=params, opt_state=init(params), key=key,
                  rejected=no_rejections())
    with single_threaded_blas():
        return run_loop(state, step, config, on_window=on_window, probe=probe,
                        checkpoint=checkpoint, feed=args.minibatch, family=args.family)


def _programs(args: RunArgs) -> list[tuple]:
    """The optimizer-state init and the loop's chunk that ``run_optax(args)`` will run, with
    arguments of their shapes (``vifit.engine.stage_programs``); none where a pilot or warm
    start runs first (their programs come first) or on minibatches."""
    if args.lr == "auto" or args.minibatch is not None or (
            args.objective.warm_start is not None and args.warm_start):
        return []
    opt, config = _optimizer_and_config(args, args.lr)
    init, step, probe = _parts(args, args.objective, args.estimator, opt, config.draws)
    state = State(params=args.params, opt_state=jax.eval_shape(init, args.params),
                  key=args.key, rejected=no_rejections())
    return [(init, (args.params,)), first_chunk(step, state, config, probe)]


def _optimizer_and_config(args: RunArgs, lr) -> tuple:
    """The optimizer, the same object for the same settings so that the step and loop made
    from it are reused too (``reused``), and the loop's settings."""
    opt = reused(make_optimizer, args.optimizer, DEFAULT_LR if lr is None else lr,
                 args.schedule, args.max_steps)
    config = LoopConfig(max_steps=args.max_steps, draws=args.draws, window=args.window,
                        patience=args.patience, tol=args.tol,
                        direction=args.objective.direction)
    return opt, config


run_optax.programs = _programs
