"""Training a VAE on minibatches: one compiled epoch (``lax.scan`` over the minibatches of a
fresh permutation), Python only between epochs for the progress bar, periodic held-out
evaluation and checkpoints.

Reproducibility and resumption: everything random in training derives from the state's PRNG
key, which the epoch splits; held-out evaluation uses its own key folded with the epoch number,
so evaluating does not change training. A checkpoint holds parameters, optimizer state
(including the schedule's step count), the key and the epoch, so a run killed after its last
checkpoint and restarted with the same settings continues exactly where it was: its parameters
equal those of an uninterrupted run with the same seed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from vifit.checkpoint import load_group, read_meta, save_checkpoint
from vifit.amortized.data import Dataset, spread_subset
from vifit.amortized.evaluate import bound_per_example
from vifit.amortized.model import VAE, VAEConfig, build_vae
from vifit.amortized.objectives import AmortizedObjective, make_objective
from vifit.amortized.progress import EpochProgress
from vifit.errors import ConfigError
from vifit.optim.optimizers import make_optimizer

Array = jax.Array
CHECKPOINT = "checkpoint.npz"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train. ``objective``: ``elbo`` or ``iwae`` with ``samples`` = K draws per example;
    ``kl`` (ELBO: auto/analytic/mc) and ``estimator`` (IWAE: dreg/reparam), ``None`` for the
    default. The learning-rate ``schedule`` spans all ``epochs`` (see vifit.optim)."""

    objective: str = "elbo"
    samples: int = 1
    kl: str | None = None
    estimator: str | None = None
    epochs: int = 300
    batch_size: int = 100
    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "cosine"
    clip: float | None = 100.0
    seed: int = 0
    eval_every: int = 10
    eval_max: int = 1000
    checkpoint_every: int = 10

    def __post_init__(self):
        for name in ("samples", "epochs", "batch_size", "eval_every", "checkpoint_every",
                     "eval_max"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}.")

    # Settings that change only when and how often we look, not what training computes.
    OBSERVATION_ONLY = ("eval_every", "eval_max", "checkpoint_every")

    def make_objective(self) -> AmortizedObjective:
        return make_objective(self.objective, self.samples, kl=self.kl, estimator=self.estimator)


class TrainState(NamedTuple):
    params: Any  # the VAE's float arrays (eqx.filter(model, eqx.is_inexact_array))
    opt_state: optax.OptState  # over the parameters raveled into one vector
    key: Array  # PRNG key for the next epoch
    epoch: Array  # () int32: epochs done
    rejected: Array  # () int32: minibatch steps skipped as non-finite


class TrainResult(NamedTuple):
    model: VAE
    history: list[dict]  # one record per epoch: epoch, train_bound, [heldout_bound, heldout_se]
    state: TrainState
    seconds: float  # wall time of this call's epochs (evaluation excluded)
    examples_per_second: float  # training throughput of this call
    compile_seconds: float  # compiling the epoch, once per call


def _where(ok: Array, a, b):
    return jax.tree.map(lambda x, y: jnp.where(ok, x, y), a, b)


@functools.lru_cache(maxsize=16)
def make_epoch(objective: AmortizedObjective, static: Any, opt_spec: tuple, n_train: int,
               batch_size: int) -> Callable[[TrainState, Array], tuple[TrainState, Array]]:
    """``epoch(state, train_x) -> (state, bounds (steps,))``, jitted: one pass over a fresh
    permutation in ``n_train // batch_size`` minibatches (the remainder waits for the next
    permutation). A step whose bound, gradient or new parameters are not finite is skipped.

    ``opt_spec`` is ``make_optimizer``'s arguments. All arguments are hashable, so a second
    run with the same settings (a resumed run, say) reuses the compiled epoch.
    """
    steps = n_train // batch_size
    optimizer = _optimizer(opt_spec)

    @jax.jit
    def epoch(state: TrainState, train_x: Array) -> tuple[TrainState, Array]:
        def step(carry, inputs):
            params, opt_state, rejected = carry
            idx, key = inputs
            xb = train_x[idx].astype(jnp.result_type(float))
            grads, bounds = objective.loss_grad(eqx.combine(params, static), xb, key)
            # The optimizer sees one flat vector: the same update, far fewer kernels to
            # compile and launch than one set per parameter array.
            flat, unravel = ravel_pytree(params)
            updates, new_opt = optimizer.update(ravel_pytree(grads)[0], opt_state, flat)
            new_flat = flat + updates
            value = jnp.mean(bounds)
            ok = jnp.isfinite(value) & jnp.all(jnp.isfinite(updates)) & jnp.all(jnp.isfinite(new_flat))
            carry = (unravel(jnp.where(ok, new_flat, flat)), _where(ok, new_opt, opt_state),
                     rejected + (~ok).astype(jnp.int32))
            return carry, jnp.where(ok, value, jnp.nan)

        key, k_perm, k_steps = jax.random.split(state.key, 3)
        perm = jax.random.permutation(k_perm, n_train)[: steps * batch_size]
        inputs = (perm.reshape(steps, batch_size), jax.random.split(k_steps, steps))
        (params, opt_state, rejected), bounds = jax.lax.scan(
            step, (state.params, state.opt_state, state.rejected), inputs)
        return TrainState(params, opt_state, key, state.epoch + 1, rejected), bounds

    return epoch


def _run_meta(model_config: VAEConfig, config: TrainConfig, data: Dataset,
              extra: dict | None) -> dict:
    meta = {"model": model_config.to_json(), "train": dataclasses.asdict(config),
            "data": {"name": data.name, "n_train": int(len(data.train)), **(extra or {})}}
    return json.loads(json.dumps(meta))  # as it reads back from a checkpoint (lists, not tuples)


def _check_resumable(saved: dict, current: dict, path: Path) -> None:
    def essential(meta):
        # With a constant learning rate the epoch count changes nothing already computed,
        # so such a run may be extended; other schedules are stretched over all epochs.
        free = TrainConfig.OBSERVATION_ONLY + (("epochs",) if meta["train"]["schedule"]
                                                == "constant" else ())
        train = {k: v for k, v in meta["train"].items() if k not in free}
        return meta["model"], train, meta["data"]["name"], meta["data"]["n_train"]

    a, b = essential(saved), essential(current)
    if a != b:
        names = ["model", "training", "data", "data size"]
        diff = [n for n, x, y in zip(names, a, b) if x != y]
        detail = ""
        if "training" in diff:
            keys = sorted(k for k in a[1] if a[1][k] != b[1].get(k))
            detail = " (" + ", ".join(f"{k}: {a[1][k]} -> {b[1].get(k)}" for k in keys) + ")"
        raise ConfigError(
            f"{path} was written with other {' and '.join(diff)} settings{detail}; resume with "
            "the same settings, or start afresh with --no-resume or another --out."
        )


def init_state(model_config: VAEConfig, config: TrainConfig, data: Dataset
               ) -> tuple[TrainState, Any, AmortizedObjective, tuple, Array]:
    """The fresh state of a run, its static model part, objective, optimizer spec, eval key."""
    if config.batch_size > len(data.train):
        raise ConfigError(f"batch_size {config.batch_size} exceeds the {len(data.train)} "
                          "training examples; lower --batch-size.")
    k_init, k_train, k_eval = jax.random.split(jax.random.key(config.seed), 3)
    model = build_vae(model_config, k_init, data.train)
    objective = config.make_objective()
    objective.check(model)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    steps = config.epochs * (len(data.train) // config.batch_size)
    opt_spec = (config.optimizer, config.lr, config.schedule, steps, config.clip)
    state = TrainState(params, _optimizer(opt_spec).init(ravel_pytree(params)[0]), k_train,
                       jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    return state, static, objective, opt_spec, k_eval


def _optimizer(opt_spec: tuple) -> optax.GradientTransformation:
    name, lr, schedule, steps, clip = opt_spec
    return make_optimizer(name, lr=lr, schedule=schedule, steps=steps, clip=clip)


def train(model_config: VAEConfig, config: TrainConfig, data: Dataset, out: str | Path | None = None,
          *, resume: bool = True, progress: bool | None = None, extra_meta: dict | None = None,
          on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    """Train a VAE on ``data.train``; evaluate the bound on held-out data every ``eval_every``
    epochs; with ``out``, checkpoint to ``out/checkpoint.npz`` every ``checkpoint_every``
    epochs and at the end, and (``resume=True``) continue from a checkpoint found there.
    ``on_epoch(record)`` is called after each epoch (after any checkpoint of that epoch)."""
    state, static, objective, opt_spec, k_eval = init_state(model_config, config, data)
    meta = _run_meta(model_config, config, data, extra_meta)
    history: list[dict] = []
    path = None if out is None else Path(out) / CHECKPOINT
    if path is not None and resume and path.exists():
        saved = read_meta(path)
        _check_resumable(saved, meta, path)
        state = TrainState(*(load_group(path, name, getattr(state, name))
                             for name in TrainState._fields))
        history = list(saved.get("history", []))[: int(state.epoch)]
    epoch_fn = make_epoch(objective, static, opt_spec, len(data.train), config.batch_size)
    train_x = jnp.asarray(data.train)
    t0 = time.perf_counter()
    if int(state.epoch) < config.epochs:  # compiled here so that throughput excludes it
        epoch_fn = epoch_fn.lower(state, train_x).compile()
    compile_seconds = time.perf_counter() - t0
    heldout = spread_subset(data.heldout, config.eval_max)
    steps = len(data.train) // config.batch_size
    seconds, examples = 0.0, 0
    start = int(state.epoch)
    with EpochProgress(config.epochs, start, f"{data.name} · {objective.label()}",
                       enabled=progress) as bar:
        for epoch in range(start, config.epochs):
            t0 = time.perf_counter()
            state, bounds = epoch_fn(state, train_x)
            bounds = np.asarray(bounds)
            dt = time.perf_counter() - t0
            seconds += dt
            examples += steps * config.batch_size
            finite = bounds[np.isfinite(bounds)]
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "train_bound": float(finite.mean()) if finite.size else float("nan"),
                "rejected": int(state.rejected),
            }
            done = epoch + 1
            if done % config.eval_every == 0 or done == config.epochs:
                model = eqx.combine(state.params, static)
                vals = bound_per_example(objective, model, heldout, jax.random.fold_in(k_eval, done))
                record["heldout_bound"] = float(vals.mean())
                record["heldout_se"] = float(vals.std(ddof=1) / np.sqrt(len(vals)))
            history.append(record)
            if path is not None and (done % config.checkpoint_every == 0 or done == config.epochs):
                save_checkpoint(path, state._asdict(), {**meta, "history": history})
            bar.update(done, record["train_bound"], record.get("heldout_bound"),
                       steps * config.batch_size / max(dt, 1e-9))
            if on_epoch is not None:
                on_epoch(record)
    model = eqx.combine(state.params, static)
    return TrainResult(model, history, state, seconds, examples / seconds if seconds else 0.0,
                       compile_seconds)


def load_model(out: str | Path) -> tuple[VAE, dict]:
    """The trained VAE in ``out/checkpoint.npz`` and the checkpoint's metadata (its
    configuration under ``model``, ``train``, ``data``; the ``history``)."""
    path = Path(out) / CHECKPOINT if Path(out).is_dir() or not str(out).endswith(".npz") else Path(out)
    meta = read_meta(path)
    model_config = VAEConfig.from_json(meta["model"])
    # Shapes only: the structure to load into, at no cost of initializing (or compiling).
    template = eqx.filter_eval_shape(build_vae, model_config, jax.random.key(0))
    params, static = eqx.partition(template, _is_float_struct)
    return eqx.combine(load_group(path, "params", params), static), meta


def _is_float_struct(leaf: Any) -> bool:
    return isinstance(leaf, jax.ShapeDtypeStruct) and jnp.issubdtype(leaf.dtype, jnp.inexact)
