"""``vifit.fit``: target -> family -> objective + estimator -> optimizer loop -> FitResult."""

from __future__ import annotations

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
from vifit.optim.optimizers import make_optimizer
from vifit.progress import FitProgress
from vifit.result import FitResult
from vifit.target import Target
from vifit.threads import single_threaded_blas


def _resolve_estimator(spec: str | Estimator | None, target: Target,
                       objective: Objective) -> Estimator:
    if spec is None:
        spec = "stl" if target.differentiable else "score"
    estimator = get_estimator(spec)
    if estimator.needs_target_grad and not target.differentiable:
        raise ConfigError(
            f"estimator {estimator.name!r} differentiates log p, but this target was declared "
            "differentiable=False; use estimator='score'."
        )
    estimator.check(objective)
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
    lr: float = 1e-2,
    schedule: str | optax.Schedule | None = None,
    steps: int = 10_000,
    draws: int | None = None,
    seed: int = 0,
    window: int = 100,
    patience: int = 3,
    tol: float = 1e-3,
    n_eval: int = 4000,
    init_params: Params | None = None,
    progress: bool | None = None,
) -> FitResult:
    """Fit ``q_theta`` to the target's posterior by maximizing ``objective`` (default: ELBO).

    Args:
      target: a ``vifit.Target`` (e.g. ``Target(log_density, dim=3)``).
      family: ``"meanfield"``, ``"fullrank"``, ``"lowrank"`` or a Family object.
      estimator: ``"stl"`` (default for differentiable targets), ``"reparam"`` or ``"score"``
        (default for ``differentiable=False``), or an Estimator object such as
        ``ScoreFunction(baseline=False, control_variate=False)``.
      optimizer: ``"adam"``, ``"sgd"``, ``"adagrad"``, ``"rmsprop"`` or an optax transform.
      lr, schedule: learning rate and its schedule (``constant``, ``cosine``, ``exponential``,
        ``warmup_cosine``, or an optax schedule).
      steps: the most optimizer steps; the fit stops earlier when it converges.
      draws: Monte Carlo draws per step (default: the estimator's, 16 pathwise, 64 score).
      seed: everything random derives from it; the same seed gives the same numbers.
      window, patience, tol: the stopping rule (see ``vifit.optim.loop``): stop after
        ``patience`` windows of ``window`` steps whose mean ELBO beats the best by < ``tol``.
      n_eval: fresh draws for the final ELBO and the importance-sampling log Z.
      init_params: start from these family parameters instead of ``family.init``.
      progress: show a progress bar (default: when stderr is a terminal).
    """
    if not isinstance(target, Target):
        raise ConfigError(
            "fit() takes a vifit.Target; wrap your function: "
            "vifit.Target(log_density, dim=<d>) or vifit.Target(log_density, init=<z0>)."
        )
    fam = get_family(family)
    obj = get_objective(objective)
    est = _resolve_estimator(estimator, target, obj)
    draws = est.default_draws() if draws is None else int(draws)
    if draws < est.min_draws():
        raise ConfigError(
            f"estimator {est.name!r} as configured needs at least {est.min_draws()} draws per "
            f"step, got draws={draws}."
        )
    if steps < 1 or window < 1 or patience < 1:
        raise ConfigError("steps, window and patience must be positive integers.")
    opt = make_optimizer(optimizer, lr=lr, schedule=schedule, steps=steps)
    opt_name = optimizer if isinstance(optimizer, str) else type(optimizer).__name__

    key = jax.random.key(seed)
    k_init, k_check, k_loop, k_eval = jax.random.split(key, 4)
    params = fam.init(k_init, target.dim, loc=target.init) if init_params is None else init_params
    _check_start(target, fam, params, k_check, max(draws, 16))

    state = State(params=params, opt_state=opt.init(params), key=k_loop,
                  rejected=jnp.zeros((), jnp.int32))
    step = make_step(obj, est, fam, target.log_density, opt, draws)
    config = LoopConfig(max_steps=int(steps), draws=draws, window=int(window),
                        patience=int(patience), tol=float(tol))
    label = f"{target.name} · {fam.name} · {est.name}"
    with single_threaded_blas(), FitProgress(config.max_steps, label=label,
                                             enabled=progress) as bar:
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
        evidence=importance_log_z(logw), seed=seed, draws=draws,
    )


def _eval_logw(target: Target, family: Family, params: Params, key: jax.Array,
               n: int) -> np.ndarray:
    @jax.jit
    def logw(params, key):
        z, log_q = family.sample_and_log_prob(params, key, n)
        return target.batch_log_density(z) - log_q

    return np.asarray(logw(params, key), dtype=np.float64)
