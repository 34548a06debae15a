"""``vifit.fit``: target -> family -> objective + estimator -> optimizer loop -> FitResult."""

from __future__ import annotations

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


def _resolve_estimator(spec: str | Estimator | None, target: Target,
                       objective: Objective, family: Family) -> Estimator:
    if spec is None:
        spec = "score" if not target.differentiable else (family.default_estimator or "stl")
    estimator = get_estimator(spec)
    if estimator.needs_target_grad and not target.differentiable:
        raise ConfigError(
            f"estimator {estimator.name!r} differentiates log p, but this target was declared "
            "differentiable=False; use estimator='score'."
        )
    estimator.check(objective)
    estimator.check_family(family)
    return estimator


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
    family: str | Family = "fullrank",
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
    patience: int = 3,
    tol: float = 1e-3,
    n_eval: int = 4000,
    init_params: Params | None = None,
    init: str | None = None,
    optimizer_options: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> FitResult:
    """Fit ``q_theta`` to the target's posterior by maximizing ``objective`` (default: ELBO).

    Args:
      target: a ``vifit.Target`` (e.g. ``Target(log_density, dim=3)``).
      family: ``"meanfield"``, ``"fullrank"``, ``"lowrank"``, ``"mixture"``, ``"realnvp"``,
        ``"spline"`` (settings as ``"mixture:k=4"``), a Family object, or ``"auto"``
        (Pathfinder, then full-rank, then a flow if needed; see ``vifit.auto``).
      estimator: ``"stl"`` (default for differentiable targets), ``"reparam"`` or ``"score"``
        (default for ``differentiable=False``), or an Estimator object such as
        ``ScoreFunction(baseline=False, control_variate=False)``.
      optimizer: ``"adam"``, ``"sgd"``, ``"adagrad"``, ``"rmsprop"`` or an optax transform;
        or ``"natgrad"`` (natural gradient, Gaussian families), ``"lbfgs-fixed"`` (L-BFGS on
        fixed draws, deterministic ADVI), ``"pathfinder"`` (Pathfinder's Gaussian alone).
      lr, schedule: learning rate (default 1e-2; ``"auto"``: a pilot over a grid, see
        ``vifit.optim.lr_search``; for ``natgrad`` the step size, default 0.2) and its
        schedule (``constant``, ``cosine``, ``exponential``, ``warmup_cosine``, or optax's).
      steps: the most optimizer steps; the fit stops earlier when it converges.
      draws: Monte Carlo draws per step (default: the estimator's, 16 pathwise, 64 score).
      seed: everything random derives from it; the same seed gives the same numbers.
      window, patience, tol: the stopping rule (see ``vifit.optim.loop``): stop after
        ``patience`` windows of ``window`` steps whose mean ELBO beats the best by < ``tol``.
      n_eval: fresh draws for the final ELBO and the importance-sampling log Z.
      init_params: start from these family parameters instead of ``family.init``.
      init: ``"pathfinder"``: start the family from Pathfinder's Gaussian.
      optimizer_options: settings of the non-optax optimizers (e.g. ``{"hessian": "stein"}``
        for natgrad, ``{"gtol": 1e-8}`` for lbfgs-fixed).
      progress: show a progress bar (default: when stderr is a terminal).
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
                        patience=patience, tol=tol, n_eval=n_eval, progress=progress)
    fam = get_family(family)
    obj = get_objective(objective)
    est = _resolve_estimator(estimator, target, obj, fam)
    runner = get_runner(optimizer)
    user_draws = draws
    if draws is None:
        draws = runner[1] if runner is not None else est.default_draws()
    draws = int(draws)
    if draws < est.min_draws() and runner is None:
        raise ConfigError(
            f"estimator {est.name!r} as configured needs at least {est.min_draws()} draws per "
            f"step, got draws={draws}."
        )
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

    label = f"{target.name} · {fam.name} · {est.name if runner is None else opt_name}"
    config = LoopConfig(max_steps=int(steps), draws=draws, window=int(window),
                        patience=int(patience), tol=float(tol))
    if runner is not None:
        if lr == "auto":
            raise ConfigError(f"lr='auto' is for the stochastic optax optimizers; "
                              f"{opt_name!r} sets its own step (leave lr out).")
        args = RunArgs(target=target, family=fam, objective=obj, estimator=est, params=params,
                       key=k_loop, max_steps=int(steps), draws=user_draws, lr=lr,
                       window=int(window), patience=int(patience), tol=float(tol),
                       on_window=None, options=dict(optimizer_options or {}))
        with FitProgress(config.max_steps, label=label, enabled=progress) as bar:
            loop, extra = runner[0](args._replace(on_window=bar.update))
            bar.finish(loop.steps)
        info.update(extra)
    else:
        if lr == "auto":
            lr, params, info["lr_search"] = search_lr(obj, est, fam, target.log_density,
                                                      optimizer, params, k_init, draws)
        opt = make_optimizer(optimizer, lr=1e-2 if lr is None else lr, schedule=schedule,
                             steps=steps)
        state = State(params=params, opt_state=opt.init(params), key=k_loop,
                      rejected=jnp.zeros((), jnp.int32))
        step = make_step(obj, est, fam, target.log_density, opt, draws)
        with FitProgress(config.max_steps, label=label, enabled=progress) as bar:
            loop = run_loop(state, step, config, on_window=bar.update)
            bar.finish(loop.steps)

    logw = _eval_logw(target, fam, loop.params, k_eval, n_eval)
    finite = logw[np.isfinite(logw)]
    elbo = float(finite.mean()) if finite.size else -np.inf
    elbo_se = float(finite.std(ddof=1) / np.sqrt(finite.size)) if finite.size > 1 else np.inf
    return FitResult(
        target=target, family=fam, params=loop.params, objective=obj.name, estimator=est.name,
        optimizer=opt_name, trace=loop.trace, steps=loop.steps, rejected=loop.rejected,
        stop_reason=loop.stop_reason, seconds=loop.seconds, elbo=elbo, elbo_se=elbo_se,
        evidence=importance_log_z(logw), seed=seed, draws=draws, info=info,
    )


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
        z = family.sample(params, key, n)
        return target.batch_log_density(z) - family.batch_log_prob(params, z)

    return np.asarray(logw(params, key), dtype=np.float64)
