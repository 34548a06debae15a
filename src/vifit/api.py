"""``vifit.fit``: the public entry point. A named family is one fit (``vifit.engine``:
resolve -> run -> evaluate -> result); ``family="auto"`` is a strategy above it
(``vifit.auto``) that runs several and chooses."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import optax

from vifit.clock import timed
from vifit.errors import ConfigError
from vifit.estimators import Estimator
from vifit.families import Family
from vifit.families.base import Params
from vifit.objectives import Objective
from vifit.resolve import resolve, resolve_draws, resolve_estimator, resolve_family
from vifit.result import FitResult
from vifit.rng import classic_threefry
from vifit.target import Target

__all__ = ["fit", "resolve", "resolve_draws", "resolve_estimator", "resolve_family"]


def _timed(fit_fn):
    """``fit_fn`` whose result carries ``info["timing"]``: the whole call's wall seconds, the
    part spent compiling (tracing, lowering, XLA; persistent-cache reads included) and the
    rest."""
    @functools.wraps(fit_fn)
    @classic_threefry
    def timed_fit(*args, **kwargs) -> FitResult:
        from vifit import freshness

        target = args[0] if args else kwargs.get("target")
        with timed() as timing:
            if isinstance(target, Target):
                freshness.check(target)  # kept programs of a density that has changed
            result = fit_fn(*args, **kwargs)
        return replace(result, info={**result.info, "timing": timing.as_dict()})

    return timed_fit


@_timed
def fit(
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
    checkpoint: str | Path | None = None,
    checkpoint_every: float = 10.0,
    batch_size: int | None | str = "auto",
    control_variate: bool = True,
    devices: int | None = None,
    distributed: bool = False,
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
        Default: ``"adam"``; ``"natgrad"`` for a Gaussian family fitted on minibatches of a
        DataTarget (scale-free steps: Adam's absolute step size cannot resolve the narrow
        posteriors of large data sets).
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
      checkpoint: a folder: the fit's state is saved there (atomically, at most every
        ``checkpoint_every`` seconds, and when each stage ends); calling ``fit`` again with the
        same arguments resumes from it and ends with the same numbers as an uninterrupted fit.
        A folder holding another fit's checkpoint is refused (ConfigError).
      batch_size: for a ``vifit.DataTarget``: rows per step. ``"auto"`` (default): the full
        data up to 20,000 rows, else 1024; None: always the full data. Each step then sees a
        minibatch (shuffled epochs from the seed) and estimates log p by
        ``log_prior + (N/B) sum_batch log_lik``; the final ELBO, log Z and k-hat use the full
        data (see docs/bigdata.md).
      control_variate: with minibatches, subtract a first-order Taylor expansion of each
        row's log-likelihood around a reference point, summed exactly over the data (one full
        pass per refresh): unbiased, and most of the subsampling noise goes (default True).
      devices: shard the rows over this many devices (``jax.sharding``; default: every
        device JAX sees for a minibatch fit of 100,000 rows or more, else one).
      distributed: the target holds this process's rows of a data set split over several
        processes (``jax.distributed``, started by ``vifit.data.hosts.initialize`` before any
        JAX work, or here from the JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
        JAX_PROCESS_ID variables); every process calls ``fit`` alike and gets the same result.

    A fit stops when it converges, at ``steps``, when it diverges (q runs off: an improper or
    badly scaled density; ``stop_reason="diverged"``, the message in ``notes``), when no step
    is finite (``"non-finite"``) or on Ctrl-C (``"interrupted"``, keeping the last good state).
    ``result.verdict`` says whether to trust the answer, from all of these and the k-hat.
    """
    if not isinstance(target, Target):
        raise ConfigError(
            "fit() takes a vifit.Target; wrap your function: "
            "vifit.Target(log_density, dim=<d>) or vifit.Target(log_density, init=<z0>); a "
            "NumPyro model: vifit.from_numpyro(model, *args); a PyMC model: "
            "vifit.from_pymc(model)."
        )
    _check_args(steps=steps, window=window, patience=patience, draws=draws, seed=seed, tol=tol,
                n_eval=n_eval, lr=lr, optimizer_options=optimizer_options, callback=callback,
                checkpoint_every=checkpoint_every)
    _check_data_args(target, batch_size=batch_size, devices=devices,
                     control_variate=control_variate, distributed=distributed)
    if distributed and checkpoint is not None:
        raise ConfigError("checkpoint is not supported with distributed=True yet.")
    is_auto = isinstance(family, str) and family == "auto"
    notes: tuple[str, ...] = ()
    if is_auto and getattr(target, "discrete", False):
        # auto's stages (Pathfinder, Gaussians, mixtures, flows) are for densities: on states
        # the factorized family is what there is, with its search over states.
        is_auto, family = False, None
        notes = ("family='auto' on a discrete target fits the factorized family (bernoulli or "
                 "categorical); its search over states looks for the modes q misses.",)
    ckpt = None
    if checkpoint is not None:
        from vifit.optim.resume import FitCheckpoint

        ckpt = FitCheckpoint.open(checkpoint, _fingerprint(
            target, family=family, objective=objective, estimator=estimator,
            optimizer=optimizer, lr=lr, schedule=schedule, steps=steps, draws=draws, seed=seed,
            window=window, patience=patience, tol=tol, init_params=init_params, init=init,
            optimizer_options=optimizer_options), every=checkpoint_every)
    if is_auto:
        from vifit.auto import fit_auto

        if optimizer not in (None, "adam") or (objective, estimator, lr, schedule,
                                                init_params, init) != (
                "elbo", None, None, None, None, None):
            raise ConfigError("family='auto' chooses the estimator, optimizer and start itself; "
                              "give only steps, draws, seed, tol, n_eval, progress, or pick a "
                              "family.")
        if _on_minibatches(target, batch_size):
            from vifit.auto import fit_auto_minibatch

            return fit_auto_minibatch(
                target, steps=steps, draws=draws, seed=seed, window=window,
                patience=patience, tol=tol, n_eval=n_eval, progress=progress,
                callback=callback, checkpoint=ckpt, batch_size=batch_size,
                control_variate=control_variate, devices=devices, distributed=distributed)
        return fit_auto(target, steps=steps, draws=draws, seed=seed, window=window,
                        patience=patience, tol=tol, n_eval=n_eval, progress=progress,
                        callback=callback, checkpoint=ckpt)
    from vifit.engine import fit_one

    result = fit_one(target, family, objective=objective, estimator=estimator,
                     optimizer=optimizer, lr=lr, schedule=schedule, steps=steps, draws=draws,
                     seed=seed, window=window, patience=patience, tol=tol, n_eval=n_eval,
                     init_params=init_params, init=init, optimizer_options=optimizer_options,
                     progress=progress, callback=callback, checkpoint=ckpt,
                     batch_size=batch_size, control_variate=control_variate,
                     devices=devices, distributed=distributed)
    return replace(result, notes=result.notes + notes) if notes else result




def _check_data_args(target: Target, *, batch_size, devices, control_variate,
                     distributed) -> None:
    if batch_size not in (None, "auto") and (isinstance(batch_size, bool) or not isinstance(
            batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be a positive integer (rows per step), None (the "
                          f"full data) or 'auto', got {batch_size!r}.")
    if devices is not None and (isinstance(devices, bool) or not isinstance(devices, int)
                                or devices < 1):
        raise ConfigError(f"devices must be a positive integer or None, got {devices!r}.")
    if not isinstance(distributed, bool):
        raise ConfigError(f"distributed must be True or False, got {distributed!r}.")
    if not isinstance(control_variate, bool):
        raise ConfigError(f"control_variate must be True or False, got {control_variate!r}.")


def _on_minibatches(target: Target, batch_size) -> bool:
    """Whether a fit of ``target`` with this ``batch_size`` runs on minibatches."""
    from vifit.data.batches import default_batch_size
    from vifit.data.target import DataTarget

    if not isinstance(target, DataTarget):
        return False
    size = default_batch_size(target.n_rows) if batch_size == "auto" else batch_size
    return size is not None and size < target.n_rows


def _check_args(*, steps, window, patience, draws, seed, tol, n_eval, lr, optimizer_options,
                callback, checkpoint_every) -> None:
    """ConfigError, naming the argument, for a value of the wrong type or out of range (rather
    than a TypeError from deep inside JAX, or a silently rounded value)."""
    import math

    def count(name, value, low, optional=False):
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}"
                              + (" or None" if optional else "") + f", got {value!r}.")

    count("steps", steps, 1)
    count("window", window, 1)
    count("patience", patience, 1, optional=True)
    count("draws", draws, 1, optional=True)
    count("n_eval", n_eval, 2)
    count("seed", seed, 0)
    if seed >= 2**63:
        raise ConfigError(f"seed must be below 2**63, got {seed}.")
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 <= tol < math.inf:
        raise ConfigError(f"tol must be a finite number >= 0 (nats), got {tol!r}.")
    if lr is not None and lr != "auto" and (isinstance(lr, bool) or not isinstance(
            lr, int | float) or not 0 < lr < math.inf):
        raise ConfigError(f"lr must be a positive finite number or 'auto', got {lr!r}.")
    if optimizer_options is not None and not isinstance(optimizer_options, dict):
        raise ConfigError(f"optimizer_options must be a dict of settings, got "
                          f"{type(optimizer_options).__name__}.")
    if callback is not None and not callable(callback):
        raise ConfigError(f"callback must be a function (steps_done, window_mean), got "
                          f"{callback!r}.")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int | float) \
            or not 0 <= checkpoint_every < math.inf:
        raise ConfigError(f"checkpoint_every must be a number of seconds >= 0, got "
                          f"{checkpoint_every!r}.")


def _fingerprint(target: Target, **settings: Any) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: the target's name, size and start, and
    every setting that changes the fit's numbers (by value, or by name for objects)."""
    import numpy as np

    record: dict[str, Any] = {"target": target.name, "dim": target.dim,
                              "target_init": [float(v) for v in np.asarray(target.init)]}
    for name, value in settings.items():
        if name == "init_params" and value is not None:
            import jax

            value = [np.asarray(v).round(12).tolist() for v in jax.tree.leaves(value)]
        elif value is not None and not isinstance(value, str | int | float | bool | dict):
            value = _describe(value)
        record[name] = value
    return record


def _describe(obj: Any) -> str:
    """A description of a family, objective, estimator or optimizer object that is the same in
    every process (no memory addresses)."""
    if hasattr(obj, "label"):
        return obj.label()
    text = repr(obj)
    return type(obj).__name__ if " at 0x" in text else text
