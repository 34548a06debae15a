"""The bench grid: every catalog model x family x estimator (x optimizer x objective), plus the
peer methods, each fit scored against the model's reference."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import jax
import numpy as np

from vifit import catalog
from vifit.bench import peers
from vifit.bench.score import score_draws, score_z
from vifit.catalog.reference import Reference
from vifit.errors import VifitError
from vifit.evidence.importance import importance_log_z, psis_weights
from vifit.optim.runner import get_runner
from vifit.result import KHAT_WEIGHTS
from vifit.target import Target

PEERS = ("numpyro.AutoNormal", "numpyro.AutoMultivariateNormal", "blackjax.pathfinder")
QUICK_MODELS = ("eight_schools", "banana")


@dataclass
class BenchConfig:
    """What to run. ``quick`` is for CI: two small models, fewer steps, fewer draws."""

    models: Sequence[str] = ()  # default: the whole catalog (QUICK_MODELS when quick)
    families: Sequence[str] = ("meanfield", "fullrank")
    estimators: Sequence[str] = ("stl", "score")
    optimizers: Sequence[str] = ("adam",)
    objectives: Sequence[str] = ("elbo",)
    peers: Sequence[str] = PEERS
    steps: int = 10_000  # most optimizer steps for vifit and for NumPyro SVI
    lr: float = 1e-2
    n_eval: int = 4000  # draws of q for the scores and for log Z
    seed: int = 0
    peer_timeout: float = 300.0  # seconds before a Pathfinder run counts as hung
    quick: bool = False
    # Time to accuracy: wall seconds until a fit's ELBO is within `accuracy` nats of the best
    # final ELBO of any row on the model (ELBO = log Z - KL(q||p): KL within that of the best).
    accuracy: float = 0.1

    def resolved_models(self) -> list[str]:
        if self.models:
            return list(self.models)
        return list(QUICK_MODELS) if self.quick else catalog.scored_names()


@dataclass
class Row:
    model: str
    dim: int
    method: str  # "vifit" or a peer's name
    family: str = ""
    estimator: str = ""
    optimizer: str = ""
    objective: str = ""
    status: str = "ok"  # "ok", or why the row has no scores
    mean_err: float = np.nan
    log_sd_err: float = np.nan
    log_z: float = np.nan
    log_z_err: float = np.nan
    khat: float = np.nan
    seconds: float = np.nan
    steps: int = 0
    stop_reason: str = ""
    worst: str = field(default="")  # the scalar with the largest mean error
    elbo: float = np.nan  # from the n_eval fresh draws of the fitted q
    elbo_se: float = np.nan
    tta: float = np.nan  # seconds to reach the model's ELBO bar (inf: never; see BenchConfig)
    # On the unconstrained z, where the reference has its moments (``bench.score.score_z``):
    # q's own draws, and the same draws PSIS-weighted toward p (what vifit's summaries show).
    z_mean_err: float = np.nan
    z_sd_err: float = np.nan
    z_pass: str = ""  # "yes" / "no" / "" (no unconstrained reference)
    zw_mean_err: float = np.nan
    zw_sd_err: float = np.nan
    zw_pass: str = ""
    # (seconds since the fit began, window-mean ELBO) after each window: the training curve.
    curve: tuple = field(default=(), repr=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "curve"}


def _scored(row: Row, target: Target, ref: Reference, z: np.ndarray, logw: np.ndarray) -> Row:
    names, flat = target.constrained_names()
    draws = np.asarray(jax.jit(jax.vmap(flat))(z))
    s = score_draws(names, draws, ref)
    ev = importance_log_z(logw)
    finite = logw[np.isfinite(logw)]
    if finite.size > 1:
        row.elbo, row.elbo_se = float(finite.mean()), float(finite.std(ddof=1) / np.sqrt(
            finite.size))
    if not row.curve and np.isfinite(row.seconds):  # one-shot methods: done when they return
        row.curve = ((row.seconds, row.elbo),)
    row.mean_err, row.log_sd_err, row.worst = s.mean_err, s.log_sd_err, s.worst_mean
    raw = score_z(z, ref)
    if raw is not None:
        # as FitResult.summary(): weighted only where the weights are usable (k-hat < 0.7)
        weighted = score_z(z, ref, psis_weights(logw)[0]) if ev.khat < KHAT_WEIGHTS else raw
        row.z_mean_err, row.z_sd_err, row.z_pass = raw.mean_err, raw.sd_err, _yes(raw.passed)
        row.zw_mean_err, row.zw_sd_err = weighted.mean_err, weighted.sd_err
        row.zw_pass = _yes(weighted.passed)
    row.log_z, row.khat = ev.log_z, ev.khat
    if ref.log_z is not None:
        row.log_z_err = ev.log_z - ref.log_z
    return row


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _vifit_row(target, ref, model, family, estimator, optimizer, objective, cfg) -> Row:
    import vifit

    row = Row(model, target.dim, "vifit", family, estimator, optimizer, objective)
    curve: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    # Other objectives' training values are not ELBOs; their rows get only the final point.
    record = ((lambda steps, value: curve.append((time.perf_counter() - t0, value)))
              if objective == "elbo" else None)
    try:
        # auto and the optimizers with their own loops (natgrad, lbfgs-fixed, pathfinder)
        # choose their own step; the bench's lr is for the optax ones.
        own_step = family == "auto" or get_runner(optimizer) is not None
        result = vifit.fit(target, family,
                           estimator=None if estimator == "default" else estimator,
                           optimizer=optimizer, objective=objective,
                           lr=None if own_step else cfg.lr, steps=cfg.steps, seed=cfg.seed,
                           n_eval=cfg.n_eval, progress=False, callback=record)
    except VifitError as exc:
        row.status = f"refused: {exc}"
        return row
    except Exception as exc:  # a crash is a result too: report it in the row
        row.status = f"failed: {type(exc).__name__}: {exc}"
        return row
    # log q at q's own draws without linear solves where the family allows (as fit's own ELBO)
    draw = jax.jit(result.family.sample_and_log_prob, static_argnums=2)
    z, logq = draw(result.params, jax.random.key(cfg.seed + 1), cfg.n_eval)
    z, logq = np.asarray(z), np.asarray(logq)
    row.seconds = time.perf_counter() - t0
    row.steps, row.stop_reason = result.steps, result.stop_reason
    row.curve = tuple(curve)
    return _scored(row, target, ref, z, peers.log_weights(target, z, logq))


def _peer_row(target, ref, model, peer, cfg) -> Row:
    family = {"numpyro.AutoNormal": "meanfield", "numpyro.AutoMultivariateNormal": "fullrank",
              "blackjax.pathfinder": "lbfgs-gaussian"}[peer]
    estimator = "pathfinder" if peer == "blackjax.pathfinder" else "reparam"
    row = Row(model, target.dim, peer, family, estimator,
              "lbfgs" if peer == "blackjax.pathfinder" else "adam", "elbo")
    try:
        if peer == "blackjax.pathfinder":
            fit = peers.blackjax_pathfinder(model, seed=cfg.seed, n=cfg.n_eval,
                                            timeout=cfg.peer_timeout)
        else:
            fit = peers.numpyro_svi(target, peer.split(".")[1], steps=cfg.steps, draws=16,
                                    lr=cfg.lr, seed=cfg.seed, n=cfg.n_eval)
    except peers.PeerTimeout as exc:
        row.status = f"timeout: {exc}"
        return row
    except ImportError as exc:
        row.status = f"skipped: {exc} (pip install 'vifit[bench]')"
        return row
    except Exception as exc:
        row.status = f"failed: {type(exc).__name__}: {exc}"
        return row
    row.seconds, row.steps, row.stop_reason = fit.seconds, fit.steps, "fixed steps"
    row.curve = fit.curve
    return _scored(row, target, ref, fit.z, peers.log_weights(target, fit.z, fit.logq))


def run_bench(cfg: BenchConfig, on_row: Callable[[Row], None] | None = None) -> list[Row]:
    """Run the grid; ``on_row(row)`` is called as each row is done (for live printing)."""
    rows: list[Row] = []

    def add(row: Row) -> None:
        rows.append(row)
        if on_row is not None:
            on_row(row)

    for model in cfg.resolved_models():
        target = catalog.get_model(model)
        try:
            ref = catalog.reference(model)
        except VifitError as exc:
            add(Row(model, target.dim, "-", status=f"skipped: {exc}"))
            continue
        grid = itertools.product(cfg.families, cfg.estimators, cfg.optimizers, cfg.objectives)
        model_rows = []
        for family, estimator, optimizer, objective in grid:
            model_rows.append(_vifit_row(target, ref, model, family, estimator, optimizer,
                                         objective, cfg))
        for peer in cfg.peers:
            model_rows.append(_peer_row(target, ref, model, peer, cfg))
        # The bar is known only once every row of the model is in: rows are reported then.
        time_to_accuracy(model_rows, cfg.accuracy)
        for row in model_rows:
            add(row)
    return rows


def time_to_accuracy(rows: Sequence[Row], accuracy: float) -> float:
    """Set each row's ``tta``: the first time on its training curve at which the ELBO reached
    ``best - accuracy``, where best is the highest final (fresh-draw) ELBO among ``rows``; inf
    for a row whose final ELBO is below that bar (a training value above it, e.g. a fixed-draw
    ELBO overfitted to its draws, does not count). Returns the bar."""
    finals = [r.elbo for r in rows if r.status == "ok" and np.isfinite(r.elbo)]
    if not finals:
        return np.nan
    bar = max(finals) - accuracy
    for r in rows:
        if r.status != "ok" or not np.isfinite(r.elbo):
            continue
        if r.elbo < bar:
            r.tta = np.inf
            continue
        reached = [t for t, value in r.curve if np.isfinite(value) and value >= bar]
        r.tta = min(reached[0], r.seconds) if reached else r.seconds
    return bar
