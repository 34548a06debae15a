"""``vifit.fit``: target -> family -> objective + estimator -> optimizer loop -> FitResult."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vifit.errors import ConfigError, TargetError
from vifit.estimators import Estimator, get_estimator
from vifit.evidence.importance import importance_log_z
from vifit.families import Family, get_family
from vifit.families.base import Params
from vifit.objectives import Objective, get_objective
from vifit.optim.loop import LoopConfig, State, make_step, run_loop
from vifit.optim.lr_search import search_lr
from vifit.optim.optimizers import make_optimizer
from vifit.optim.runner import RunArgs, get_runner
from vifit.progress import FitProgress
from vifit.result import FitResult
from vifit.target import Target
from vifit.threads import single_threaded_blas


def resolve_estimator(spec: str | Estimator | None, target: Target, objective: Objective,
                      family: Family) -> Estimator:
    """The estimator for ``spec`` (default: the family's own for the ELBO, e.g. ``stratified``
    for mixtures, else the objective's choice), checked against the target, the objective and
    the family; ConfigError with the fix when they do not fit."""
    if spec is None:
        own = family.default_estimator if objective.linear_in_weights else None
        spec = own if own and target.differentiable else objective.default_estimator(
            target.differentiable)
    estimator = get_estimator(spec)
    if estimator.needs_target_grad and not target.differentiable:
        raise ConfigError(
            f"estimator {estimator.name!r} differentiates log p, but this target was declared "
            "differentiable=False; use estimator='score'"
            + (", 'rb' or 'relaxed'." if target.discrete else ".")
        )
    estimator.check(objective)
    estimator.check_target(target, family)
    estimator.check_family(family)
    return estimator


def resolve(target: Target, family: str | Family | None, objective: str | Objective,
            estimator: str | Estimator | None) -> tuple[Family, Objective, Estimator]:
    """The family (configured for ``target``), objective and estimator a fit would use;
    incompatible combinations raise ConfigError with the fix. ``family=None`` picks
    ``fullrank`` for continuous targets, ``bernoulli``/``categorical`` for discrete ones."""
    fam = resolve_family(target, family)
    obj = get_objective(objective)
    return fam, obj, resolve_estimator(estimator, target, obj, fam)


def resolve_family(target: Target, family: str | Family | None) -> Family:
    """The family for ``target``: as given (configured for the target), or by default
    ``fullrank`` for continuous targets and ``bernoulli``/``categorical`` for discrete ones."""
    if family is None:
        family = ("fullrank" if not target.discrete
                  else "bernoulli" if target.n_states == 2 else "categorical")
    return get_family(family).for_target(target)


def resolve_draws(draws: int | None, objective: Objective, estimator: Estimator) -> int:
    """Draws per step: the estimator's default rounded up to whole groups of the objective's
    K, or ``draws`` checked against both."""
    k = objective.group_size()
    if draws is None:
        return -(-max(estimator.default_draws(), k) // k) * k
    draws = int(draws)
    if draws < estimator.min_draws():
        raise ConfigError(
            f"estimator {estimator.name!r} as configured needs at least {estimator.min_draws()} "
            f"draws per step, got draws={draws}."
        )
    if draws % k:
        lo, hi = max(k, draws // k * k), -(-draws // k) * k
        raise ConfigError(
            f"objective {objective.label()} averages groups of K={k} draws; draws={draws} is "
            f"not a multiple of {k}: use draws={lo}" + (f" or {hi}." if hi != lo else ".")
        )
    return draws


def _check_start(target: Target, family: Family, params: Params, key: jax.Array, n: int) -> None:
    z = family.sample(params, key, n)
    logp = np.asarray(target.batch_log_density(z))
    if not np.isfinite(logp).any():
        raise TargetError(
            f"log_density is not finite at any of {n} draws from the initial q around init; "
            "start closer to the posterior (init=...) or with a smaller initial scale "
            "(e.g. FullRank(init_scale=0.01))."
        )


def fit(
    target: Target,
    family: str | Family | None = None,
    *,
    objective: str | Objective = "elbo",
    estimator: str | Estimator | None = None,
    optimizer: str | optax.GradientTransformation = "adam",
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
) -> FitResult:
    """Fit ``q_theta`` to the target's posterior by optimizing ``objective`` (default: ELBO).

    Args:
      target: a ``vifit.Target`` (e.g. ``Target(log_density, dim=3)``) or a
        ``vifit.DiscreteTarget``.
      family: ``"meanfield"``, ``"fullrank"`` (default for continuous targets), ``"lowrank"``,
        ``"mixture"``, ``"realnvp"``, ``"spline"`` (settings as ``"mixture:k=4"``),
        ``"bernoulli"``/``"categorical"`` (default for discrete targets), a Family object, or
        ``"auto"`` (Pathfinder, then full-rank, then a flow if needed; see ``vifit.auto``).
      objective: ``"elbo"``, ``"iwae"``, ``"renyi"``, ``"chi2"`` (minimized),
        ``"forward_kl"`` (minimized), or an Objective object such as ``IWAE(K=16)``; see
        docs/objectives.md.
      estimator: by default the family's own for the ELBO (``"stratified"`` for mixtures), else
        the objective's choice (``"reparam"`` for the ELBO, ``"dreg"`` for IWAE/Renyi/CUBO,
        ``"snis"`` for forward KL; ``"score"`` for ``differentiable=False`` and discrete
        targets); or ``"stl"``, ``"rb"``, ``"relaxed"``, ``"score_plain"``, or an Estimator
        object such as ``ScoreFunction(baseline=False, control_variate=False)``.
      optimizer: ``"adam"``, ``"sgd"``, ``"adagrad"``, ``"rmsprop"`` or an optax transform;
        or ``"natgrad"`` (natural gradient, Gaussian families), ``"lbfgs-fixed"`` (L-BFGS on
        fixed draws, deterministic ADVI), ``"pathfinder"`` (Pathfinder's Gaussian alone).
      lr, schedule: learning rate (default 1e-2; ``"auto"``: a pilot over a grid, see
        ``vifit.optim.lr_search``; for ``natgrad`` the step size, default 0.2) and its
        schedule (``constant``, ``cosine``, ``exponential``, ``warmup_cosine``, or optax's).
      steps: the most optimizer steps; the fit stops earlier when it converges.
      draws: Monte Carlo draws per step (default: the estimator's, 16 pathwise, 64 score,
        rounded up to a multiple of the objective's group size K; a given value must be one).
      seed: everything random derives from it; the same seed gives the same numbers.
      window, patience, tol: the stopping rule (see ``vifit.optim.loop``): stop after
        ``patience`` windows of ``window`` steps whose mean objective beats the best by
        < ``tol`` (best: largest, or smallest for a minimized objective). ``patience``
        defaults to the family's (3; 20 for flows, whose ELBO keeps creeping up).
      n_eval: fresh draws for the final ELBO, the objective and the importance-sampling log Z.
      init_params: start from these family parameters instead of ``family.init``.
      init: ``"pathfinder"``: start the family from Pathfinder's Gaussian.
      optimizer_options: settings of the non-optax optimizers (e.g. ``{"hessian": "stein"}``
        for natgrad, ``{"gtol": 1e-8}`` for lbfgs-fixed).
      progress: show a progress bar (default: when stderr is a terminal).
      callback: ``callback(steps_done, window_mean_objective)``, called in Python between
        compiled chunks (every ``window`` steps), e.g. to log a run or time it.
    """
    if not isinstance(target, Target):
        raise ConfigError(
            "fit() takes a vifit.Target; wrap your function: "
            "vifit.Target(log_density, dim=<d>) or vifit.Target(log_density, init=<z0>)."
        )
    if isinstance(family, str) and family == "auto":
        from vifit.auto import fit_auto

        if (objective, estimator, optimizer, lr, schedule, init_params, init) != (
                "elbo", None, "adam", None, None, None, None):
            raise ConfigError("family='auto' chooses the estimator, optimizer and start itself; "
                              "give only steps, draws, seed, tol, n_eval, progress, or pick a "
                              "family.")
        return fit_auto(target, steps=steps, draws=draws, seed=seed, window=window,
                        patience=patience, tol=tol, n_eval=n_eval, progress=progress,
                        callback=callback)
    fam, obj, est = resolve(target, family, objective, estimator)
    patience = fam.default_patience if patience is None else patience
    runner = get_runner(optimizer)
    user_draws = draws
    if runner is not None and draws is None:
        draws = runner[1]
    else:
        draws = resolve_draws(draws, obj, est)
    if steps < 1 or window < 1 or patience < 1:
        raise ConfigError("steps, window and patience must be positive integers.")
    if isinstance(lr, str) and lr != "auto":
        raise ConfigError(f"lr must be a positive number or 'auto', got {lr!r}.")
    opt_name = optimizer if isinstance(optimizer, str) else type(optimizer).__name__
    info: dict[str, Any] = {}

    key = jax.random.key(seed)
    k_init, k_check, k_loop, k_eval = jax.random.split(key, 4)
    if init_params is not None:
        params = init_params
    elif init == "pathfinder":
        params, info["init"] = _pathfinder_start(target, fam, k_init)
    elif init is None:
        params = fam.init(k_init, target.dim, loc=target.init)
    else:
        raise ConfigError(f"unknown init {init!r}; use init='pathfinder' or give init_params.")
    _check_start(target, fam, params, k_check, max(draws, 16))

    config = LoopConfig(max_steps=int(steps), draws=draws, window=int(window),
                        patience=int(patience), tol=float(tol), direction=obj.direction)
    notes: list[str] = []
    if runner is not None:
        if lr == "auto":
            raise ConfigError(f"lr='auto' is for the stochastic optax optimizers; "
                              f"{opt_name!r} sets its own step (leave lr out).")
        args = RunArgs(target=target, family=fam, objective=obj, estimator=est, params=params,
                       key=k_loop, max_steps=int(steps), draws=user_draws, lr=lr,
                       window=int(window), patience=int(patience), tol=float(tol),
                       on_window=None, options=dict(optimizer_options or {}))
        label = f"{target.name} · {fam.name} · {opt_name}"
        with single_threaded_blas(), FitProgress(config.max_steps, label=label,
                                                 enabled=progress) as bar:
            loop, extra = runner[0](args._replace(on_window=_with_callback(bar.update,
                                                                           callback)))
            bar.finish(loop.steps)
        info.update(extra)
        # A runner may choose its own number of draws (lbfgs-fixed: M from the family and d).
        draws = extra.get("lbfgs_fixed", {}).get("fixed_draws", draws)
    else:
        if lr == "auto":
            with single_threaded_blas():
                lr, params, info["lr_search"] = search_lr(obj, est, fam, target.log_density,
                                                          optimizer, params, k_init, draws)
        opt = make_optimizer(optimizer, lr=1e-2 if lr is None else lr, schedule=schedule,
                             steps=steps)
        if obj.warm_start is not None and init_params is None:
            # The objective's K-draw estimate only means something once q covers p (see its
            # docstring): start from a fit of the warm-start objective, recorded in the notes.
            w_obj = get_objective(obj.warm_start)
            w_est = resolve_estimator(None, target, w_obj, fam)
            w_draws = resolve_draws(None, w_obj, w_est)
            w_config = config._replace(draws=w_draws, direction=w_obj.direction)
            k_warm, k_loop = jax.random.split(k_loop)
            warm = _optimize(target, fam, w_obj, w_est, opt, params, k_warm, w_config, progress,
                             None)
            params = warm.params
            notes.append(f"started from a fit of {w_obj.label()} ({w_est.label()}, "
                         f"{warm.steps} steps, {warm.stop_reason})")
        loop = _optimize(target, fam, obj, est, opt, params, k_loop, config, progress,
                         callback)

    with single_threaded_blas():
        logw = _eval_logw(target, fam, loop.params, k_eval, n_eval)
    finite = logw[np.isfinite(logw)]
    elbo = float(finite.mean()) if finite.size else -np.inf
    elbo_se = float(finite.std(ddof=1) / np.sqrt(finite.size)) if finite.size > 1 else np.inf
    obj_value, obj_se = obj.estimate(logw)
    return FitResult(
        target=target, family=fam, params=loop.params, objective=obj.label(),
        estimator=est.label() if runner is None else opt_name,
        optimizer=opt_name, trace=loop.trace, steps=loop.steps, rejected=loop.rejected,
        stop_reason=loop.stop_reason, seconds=loop.seconds, elbo=elbo, elbo_se=elbo_se,
        evidence=importance_log_z(logw), seed=seed, draws=draws,
        objective_value=obj_value, objective_se=obj_se, direction=obj.direction,
        notes=tuple(notes), info=info,
    )


def _optimize(target: Target, fam: Family, obj: Objective, est: Estimator,
              opt: optax.GradientTransformation, params: Params, key: jax.Array,
              config: LoopConfig, progress: bool | None,
              callback: Callable[[int, float], None] | None):
    state = State(params=params, opt_state=opt.init(params), key=key,
                  rejected=jnp.zeros((), jnp.int32))
    step = make_step(obj, est, fam, target.log_density, opt, config.draws)
    label = f"{target.name} · {fam.name} · {est.name}"
    with single_threaded_blas(), FitProgress(config.max_steps, label=label, enabled=progress,
                                             metric=obj.name) as bar:
        loop = run_loop(state, step, config, on_window=_with_callback(bar.update, callback))
        bar.finish(loop.steps)
    return loop


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


def _eval_logw(target: Target, family: Family, params: Params, key: jax.Array,
               n: int) -> np.ndarray:
    @jax.jit
    def logw(params, key):
        z, log_q = family.sample_and_log_prob(params, key, n)
        return target.batch_log_density(z) - log_q

    return np.asarray(logw(params, key), dtype=np.float64)
