"""FitResult: the fitted q, how the fit went, and what it says about the target."""

from __future__ import annotations

import functools

import math
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vifit.ahead import outputs_expected, ready
from vifit.evidence.importance import ISEstimate, Verdict, shortfall
from vifit.evidence.rounding import ROUNDED_CHECKS, float64_verdict, rounding_verdict
from vifit.evidence.tails import (defensive_pool, tail_verdict, tails_apply, use_defensive,
                                  widen)
from vifit.evidence.verdict import (blind_evidence, blind_states, multimode_blind,
                                    reduced_search, search_blind)
from vifit.jsonio import jsonable as _jsonable
from vifit.families.base import Family, Params
from vifit.freshness import kept
from vifit.rng import classic_threefry
from vifit.target import Target

QUANTILES = (0.05, 0.5, 0.95)
KHAT_WEIGHTS = 0.7  # PSIS weights are usable below this k-hat (Vehtari et al., 2024)


def weighting_words(weighting: str | None) -> str:
    """How a summary's draws were made (``summary().attrs["weighting"]``), in words."""
    return {"psis": "draws of q, importance-weighted toward p by PSIS",
            "defensive": "draws of q widened by Cauchy-tailed components (q's tails are too "
                         "light), importance-weighted toward p by PSIS"}.get(
        weighting or "q", "draws from q")


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, probs) -> np.ndarray:
    """Quantiles ``(len(probs), m)`` of the columns of ``x (n, m)`` under weights ``w (n,)``
    (summing to 1): the weighted empirical CDF at the midpoints, interpolated."""
    out = np.empty((len(probs), x.shape[1]))
    for j in range(x.shape[1]):
        order = np.argsort(x[:, j])
        xs, ws = x[order, j], w[order]
        cdf = np.cumsum(ws) - 0.5 * ws
        out[:, j] = np.interp(probs, cdf, xs)
    return out


@dataclass(frozen=True)
class FitResult:
    """The outcome of ``vifit.fit``.

    Attributes:
      params: the variational parameters (a pytree) of ``family``.
      objective: the objective's label (``elbo``, ``iwae(K=8)``, ...); ``direction`` is +1 when
        it was maximized, -1 when minimized (``chi2``, ``forward_kl``, Renyi with alpha < 0).
      trace: ``(steps,)`` the objective's estimate at each step, in its own units (nats);
        NaN where a step was rejected as non-finite.
      stop_reason: ``"converged"``, ``"max_steps"`` or ``"non-finite"``.
      elbo, elbo_se: the ELBO of the final q from ``n_eval`` fresh draws, with its Monte Carlo
        standard error (nats).
      evidence: log Z by Pareto-smoothed importance sampling from q, with k-hat and verdict.
      objective_value, objective_se: the objective at the final q from the same ``n_eval``
        draws (groups of its K), with its standard error (NaN where it has none).
      notes: what else the fit did, e.g. the warm start of an upper-bound objective.
      info: what else the optimizer or start measured (Pathfinder's choice, the learning-rate
        pilot, the fixed-draw ELBO and its sampling error, ``auto``'s decisions), by name.
    """

    target: Target
    family: Family
    params: Params
    objective: str
    estimator: str
    optimizer: str
    trace: np.ndarray
    steps: int
    rejected: int
    stop_reason: str
    seconds: float
    elbo: float
    elbo_se: float
    evidence: ISEstimate
    seed: int
    draws: int
    objective_value: float = float("nan")
    objective_se: float = float("nan")
    direction: int = 1
    notes: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    # Data targets: the final full-data evaluation's draws and log-weights ``(z (n, dim),
    # logw (n,))``, reused by the weighted summaries (a fresh set would cost n more passes
    # over the rows, and across processes a collective every process must join).
    eval_draws: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False,
                                                              compare=False)

    @property
    def verdict(self) -> Verdict:
        """Whether to trust this fit: the k-hat reading (``evidence.verdict``), overruled by
        how the fit ended. A fit that diverged, met only non-finite values or has no finite
        ELBO is ``"failed"``; one that hit the step limit or was interrupted is at best
        ``"usable with care"``."""
        return fit_verdict(self)

    @property
    def log_z(self) -> float:
        return self.evidence.log_z

    @property
    def log_z_se(self) -> float:
        return self.evidence.se

    @property
    def khat(self) -> float:
        return self.evidence.khat

    @classic_threefry
    def sample_unconstrained(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` draws of z from q, shape ``(n, dim)``."""
        program = _sampler(self.family, n)
        ready(program)
        return program(self.params, key)

    @classic_threefry
    def sample(self, key: jax.Array | int, n: int = 1000,
               resample: bool | None = None) -> dict[str, np.ndarray]:
        """``n`` draws in the model's own (constrained) parameters: ``{name: (n, *shape)}``.

        ``resample`` (default: ``use_weights()``, the rule of ``summary()``): the draws are a
        systematic resample of ``RESAMPLE_POOL * n`` draws of q by their Pareto-smoothed
        importance weights, i.e. corrected toward p like the summary (repeats are expected:
        the pool's ESS is what they are worth); False: q's own i.i.d. draws."""
        return self._sample(key, n, resample)[0]

    def _sample(self, key: jax.Array | int, n: int, resample: bool | None
                ) -> tuple[dict[str, np.ndarray], str]:
        """``sample()``'s draws and how they were made: "psis-resampled" or "q"."""
        z, weighting = self._sample_z(key, n, resample)
        values = self.target.in_model_order(self.target.batch_constrain(z))
        return {k: np.asarray(v) for k, v in values.items()}, weighting

    @classic_threefry
    def _sample_z(self, key: jax.Array | int, n: int, resample: bool | None
                  ) -> tuple[jax.Array, str]:
        """``n`` unconstrained draws ``(n, d)`` by ``sample()``'s rule, and that rule's name."""
        if isinstance(key, int):
            key = jax.random.key(key)
        resample = self.use_weights() if resample is None else resample
        z = self._resampled(key, n) if resample else None
        if z is None:
            return self.sample_unconstrained(key, n), "q"
        return z, "defensive-resampled" if self._defensive() else "psis-resampled"

    def _resampled(self, key: jax.Array, n: int) -> jax.Array | None:
        """``n`` draws of z resampled from a pool of q's draws by their PSIS weights (a data
        fit's pool is its final evaluation's draws); None when no weight is usable."""
        from vifit.evidence.importance import psis_weights

        k_pool, k_pick = jax.random.split(key)
        z, logw = (np.asarray(a) for a in self._logw_pool(k_pool, RESAMPLE_POOL * n))
        weights, _ = psis_weights(np.asarray(logw, dtype=np.float64))
        if weights.sum() == 0:
            return None
        # systematic resampling: one uniform, n evenly spaced points on the weights' CDF
        u = (float(jax.random.uniform(k_pick)) + np.arange(n)) / n
        idx = np.minimum(np.searchsorted(np.cumsum(weights), u), weights.size - 1)
        return jnp.asarray(z[idx])

    def flat_draws(self, key: jax.Array | int = 0, n: int = 4000) -> tuple[list[str], np.ndarray]:
        """Names and draws ``(n, m)`` of every scalar of the constrained parameters."""
        if isinstance(key, int):
            key = jax.random.key(key)
        names, _ = self.target.constrained_names()
        return names, np.asarray(self.target.batch_flat(self.sample_unconstrained(key, n)))

    @classic_threefry
    def summary(self, key: jax.Array | int = 0, n: int = 4000, weighted: bool | None = None):
        """A table (pandas DataFrame) of mean, sd, q5, q50, q95 per constrained scalar
        parameter, from ``n`` draws of q.

        ``weighted`` (default: when the fit's k-hat is below 0.7, where Pareto-smoothed
        importance weights are usable): the statistics are those of the draws weighted by
        their PSIS weights p/q, i.e. corrected toward p at no extra fit (``n`` evaluations of
        log p); otherwise those of q itself. Where the tail check found q's tails too light
        (``info["tails"]``, ``vifit.evidence.tails``), the weighted draws are those of its
        defensive mixture (q widened by Cauchy-tailed components) with weights p/m, which reach
        the tail q misses. ``table.attrs["weighting"]`` says which ("psis", "defensive" or
        "q"), and ``attrs["ess"]`` the weights' effective sample size."""
        import pandas as pd

        names, draws, weights = self._weighted_draws(key, n, weighted)
        if weights is None:
            qs = np.quantile(draws, QUANTILES, axis=0)
            mean, sd = draws.mean(0), draws.std(0, ddof=1)
            ess = float(n)
        elif draws.shape[0] < n:
            mean, sd, qs = self._difference_summary(key, n, draws, weights)
            ess = float(1.0 / (weights @ weights))
        else:
            mean = weights @ draws
            var = weights @ (draws - mean) ** 2 / max(1.0 - float(weights @ weights), 1e-12)
            sd = np.sqrt(var)
            qs = _weighted_quantiles(draws, weights, QUANTILES)
            ess = float(1.0 / (weights @ weights))
        table = pd.DataFrame({"mean": mean, "sd": sd, "q5": qs[0], "q50": qs[1], "q95": qs[2]},
                             index=pd.Index(names, name="param"))
        table.attrs["weighting"] = ("q" if weights is None else
                                    "defensive" if self._defensive() else "psis")
        table.attrs["ess"] = ess
        return table

    def _difference_summary(self, key, n: int, small: np.ndarray, weights: np.ndarray):
        """Mean, sd and quantiles corrected toward p when only ``m < n`` draws have log p (a
        data fit's full-data evaluation): q's own statistics from ``n`` fresh draws plus the
        correction measured on the m weighted draws, ``E_w[f] - mean(f)`` on the same draws,
        whose noise cancels where the weights are near one (small k-hat). Weighting the m draws
        alone would carry their full Monte Carlo error (0.06 sd per mean at m = 256).
        Quantiles are q's, moved and scaled to the corrected mean and sd."""
        if isinstance(key, int):
            key = jax.random.key(key)
        big = np.asarray(self.target.batch_flat(self.sample_unconstrained(key, n)),
                         dtype=np.float64)
        mean_q, sd_q = big.mean(0), big.std(0, ddof=1)
        mean = mean_q + (weights @ small - small.mean(0))
        second = (big**2).mean(0) + (weights @ small**2 - (small**2).mean(0))
        sd = np.sqrt(np.maximum(second - mean**2, 0.0) * n / (n - 1))
        qs = mean + (sd / np.where(sd_q > 0, sd_q, 1.0)) * (
            np.quantile(big, QUANTILES, axis=0) - mean_q)
        return mean, sd, qs

    def use_weights(self) -> bool:
        """Whether summaries are importance-weighted by default: a continuous target, a fit
        that did not fail, and a finite k-hat below 0.7 or usable defensive weights (below)."""
        return (not getattr(self.target, "discrete", False)
                and self.stop_reason not in ("diverged", "non-finite")
                and (self._defensive() or (np.isfinite(self.khat)
                                           and self.khat < KHAT_WEIGHTS)))

    def _defensive(self) -> bool:
        """Whether weighted summaries and resampling draw from the tail check's defensive
        mixture instead of q: the check found q's tails too light and its weights usable
        (``vifit.evidence.tails``)."""
        return use_defensive(self.info.get("tails"))

    def _weighted_draws(self, key, n: int, weighted: bool | None):
        """Names, constrained draws ``(n, m)`` and normalized PSIS weights (None: unweighted)."""
        if isinstance(key, int):
            key = jax.random.key(key)
        weighted = self.use_weights() if weighted is None else weighted
        names, _ = self.target.constrained_names()
        if not weighted:
            z = self.sample_unconstrained(key, n)
            return names, np.asarray(self.target.batch_flat(z)), None
        from vifit.evidence.importance import psis_weights

        z, logw = self._logw_pool(key, n)
        values = self.target.batch_flat(jnp.asarray(z))
        weights, _ = psis_weights(np.asarray(logw, dtype=np.float64))
        values = np.array(values, dtype=np.float64)  # a writable copy (x64 arrays are views)
        bad = ~np.all(np.isfinite(values), axis=1)
        if weights.sum() == 0 or np.any(weights[bad] > 0):
            return names, values, None  # nothing to weight with: q's own statistics
        values[bad] = 0.0  # draws outside the support carry zero weight
        return names, values, weights

    def _logw_pool(self, key: jax.Array, n: int):
        """Draws z ``(n, d)`` of q with their log weights log p - log q ``(n,)``. A data fit,
        whose log p costs a pass over the rows per draw, gives its final evaluation's own
        draws instead (``key`` then plays no part; at most as many as it had)."""
        from vifit.data.target import DataTarget

        if isinstance(self.target, DataTarget) and self.eval_draws is not None:
            z, logw = self.eval_draws
            return z[:n], logw[:n]
        if self._defensive():
            return defensive_pool(self.family, self.target, self.params, key, n)
        return draw_logw(self.family, self.target, self.params, key, n)

    @classic_threefry
    def to_arviz(self, key: jax.Array | int = 0, n: int = 4000, resample: bool | None = None):
        """``n`` draws as ArviZ InferenceData (one chain), constrained: PSIS-resampled toward p
        or q's own, by ``resample`` as in ``sample()``; ``attrs["weighting"]`` says which
        (``"psis-resampled"`` or ``"q"``).

        Groups: ``posterior``; ``sample_stats`` (per draw ``lp`` = log p(z) of the
        unconstrained target, ``log_q``, ``log_weight`` = lp - log_q; ``attrs["pareto_k"]``
        the fit's k-hat); and for data models (a ``DataTarget``, a NumPyro model with observed
        sites) ``log_likelihood`` (per draw, per observation) and ``observed_data``, so that
        ``az.loo(fit.to_arviz())`` and ``az.compare`` work. Resampled draws are already
        approximately from p, so plain ``az.loo`` is right for them. See
        ``vifit.arviz_groups``. Needs arviz (imported only here)."""
        from vifit.arviz_groups import inference_data

        return inference_data(self, key, n, resample)

    def _repr_html_(self) -> str:
        """A compact HTML table for Jupyter: the verdict and the posterior summary."""
        from vifit.report_html import fit_repr_html

        return fit_repr_html(self)

    def mean(self) -> np.ndarray:
        """Mean of q on the unconstrained scale, ``(dim,)``."""
        return self._moment("mean")

    def covariance(self) -> np.ndarray:
        """Covariance of q on the unconstrained scale, ``(dim, dim)``."""
        return self._moment("covariance")

    def _moment(self, name: str) -> np.ndarray:
        program = family_program(self.family, name)
        ready(program)
        return np.asarray(program(self.params))

    @property
    def bracket(self) -> dict[str, float | None]:
        """``{"lower": x, "upper": None}``: the fit's ELBO, a lower bound on log Z (q is a
        normalized density: E_q[log p - log q] <= log Z), up to its Monte Carlo error
        ``elbo_se``. A fit verifies no upper bound; ``vifit.evidence`` adds IWAE, AIS and CUBO
        and stands behind an upper bound only when its checks pass. None when the ELBO is not
        finite. Where vifit summed p over every state of a discrete target
        (``info["enumeration"]``), both ends are that sum -/+ its rounding allowance."""
        summed = self.info.get("enumeration")
        if summed:
            return {"lower": summed["log_z"] - summed["rounding"],
                    "upper": summed["log_z"] + summed["rounding"]}
        lower = float(self.elbo) if np.isfinite(self.elbo) else None
        return {"lower": lower, "upper": None}

    def to_dict(self, key: jax.Array | int = 0, n: int = 4000) -> dict[str, Any]:
        """The stable, JSON-ready record written to ``result.json``."""
        table = self.summary(key, n)
        ev = self.evidence
        record: dict[str, Any] = {
            "target": self.target.name,
            "dim": self.target.dim,
            "family": self.family.name,
            "objective": self.objective,
            "estimator": self.estimator,
            "optimizer": self.optimizer,
            "draws_per_step": self.draws,
            "seed": self.seed,
            "elbo": self.elbo,
            "elbo_se": self.elbo_se,
            "objective_value": self.objective_value,
            "objective_se": self.objective_se,
            "objective_direction": "maximized" if self.direction > 0 else "minimized",
            "log_z": ev.log_z,
            "log_z_se": ev.se,
            "bracket": self.bracket,
            "khat": ev.khat,
            "khat_verdict": ev.verdict.label,
            "verdict": self.verdict.text,
            "verdict_label": self.verdict.label,
            "is_ess": ev.ess,
            "is_draws": ev.n,
            "steps": self.steps,
            "rejected_steps": self.rejected,
            "stop_reason": self.stop_reason,
            "notes": list(self.notes),
            "summary_weighting": table.attrs["weighting"],
            "seconds": self.seconds,
            # The whole fit call (vifit.fit): wall seconds, compiling and running.
            "timing": self.info.get("timing"),
            "params": {
                name: {col: float(row[col]) for col in ("mean", "sd", "q5", "q50", "q95")}
                for name, row in table.iterrows()
            },
        }
        if self.info:
            record["info"] = self.info
        if "log_z" in self.target.exact:
            record["exact_log_z"] = float(self.target.exact["log_z"])
        return _jsonable(record)


# Draws of q are made in blocks of this many, by one compiled program per (family, target):
# the fit's final evaluation (n_eval = 4000 by default), the summaries and the resampling pool
# all run that same program instead of compiling one each.
DRAW_BLOCK = 4000


@functools.lru_cache(maxsize=32)
def family_program(family: Family, name: str):
    """``family.<name>`` (``mean``, ``covariance``, ``batch_log_prob``) jitted, one per family:
    eagerly each operation (a Cholesky factor's few, a flow's layers) was a program compiled
    once per process."""
    return jax.jit(getattr(family, name))


@kept(32)
def batch_log_p(target: Target):
    """``target.batch_log_density`` jitted, one per target: ``z (n, d) -> (n,)``."""
    return jax.jit(target.batch_log_density)


def fit_programs(family: Family, target: Target, params) -> list[tuple]:
    """What a fit runs on its q after the loop besides the evaluation, as ``(jitted, args)``
    for ``vifit.ahead.compile_ahead``: log q at the modes the search found
    (``vifit.mode_check.coverage``). Empty for a data target."""
    from vifit.data.target import DataTarget
    from vifit.mode_check import _POINTS_BLOCK

    if isinstance(target, DataTarget):
        return []
    rows = jax.ShapeDtypeStruct((_POINTS_BLOCK, target.dim), target.init.dtype)
    return [(family_program(family, "batch_log_prob"), (params, rows))]


def after_fit_programs(family: Family, target: Target, params, seed: int) -> list[tuple]:
    """``fit_programs``, and ``output_programs`` (with the fit's seed) where the caller writes
    the fit's files (``vifit.ahead.expecting_outputs``)."""
    programs = fit_programs(family, target, params)
    n = outputs_expected()
    if n is not None:
        programs += output_programs(family, target, params, jax.random.key(seed), n)
    return programs


def output_programs(family: Family, target: Target, params, key: jax.Array,
                    n: int = 4000) -> list[tuple]:
    """What writing a fit's files runs on its q (``vifit.report.write_report``), as
    ``(jitted, args)`` for ``vifit.ahead.compile_ahead``: ``n`` draws of q, their constrained
    and flat values, and log q and log p at the draws in ArviZ's chunks. Empty for a data
    target."""
    from vifit.arviz_groups import DRAW_CHUNK
    from vifit.data.target import DataTarget

    if isinstance(target, DataTarget):
        return []
    rows = lambda m: jax.ShapeDtypeStruct((m, target.dim), target.init.dtype)
    return [(_sampler(family, n), (params, key)),
            (target.batch_constrain_program(), (rows(n),)),
            (target.batch_flat_program(), (rows(n),)),
            (family_program(family, "batch_log_prob"), (params, rows(DRAW_CHUNK))),
            (batch_log_p(target), (rows(DRAW_CHUNK),))]


@functools.lru_cache(maxsize=32)
def _sampler(family: Family, n: int):
    """``(params, key) -> z (n, d)``: ``family.sample`` jitted (a flow sampled eagerly ran its
    layers op by op, each a program compiled once per process)."""
    return jax.jit(lambda params, key: family.sample(params, key, n))


@kept(32)
def _draw_block(family: Family, target: Target, n: int):
    """A jitted ``(params, key) -> (z (n, d), log p - log q (n,), widened)`` for draws of q;
    ``widened`` = (``n`` more draws ``(n, d)`` of the tail check's defensive mixture, and log q,
    log p, log m at all 2n draws, q's first: ``vifit.evidence.tails.widen``). One program
    serves the evaluation, the tail check and the summaries; log p is traced once, on all 2n.
    ``widened`` is None where the check does not apply (``tails_apply``)."""
    if not tails_apply(target):
        @jax.jit
        def draw_q(params, key):
            z, log_q = family.sample_and_log_prob(params, key, n)
            return z, target.batch_log_density(z) - log_q, None

        return draw_q

    @jax.jit
    def draw(params, key):
        z, log_q = family.sample_and_log_prob(params, key, n)
        z_far, lq_all, log_m = widen(family, params, jax.random.fold_in(key, 1), z, log_q)
        lp_all = target.batch_log_density(jnp.concatenate([z, z_far]))
        return z, lp_all[:n] - log_q, (z_far, lq_all, lp_all, log_m)

    return draw


@classic_threefry
def draw_blocks(family: Family, target: Target, params, key: jax.Array, n: int) -> list:
    """The outputs of ``_draw_block`` for ``n`` draws of q: block i of ``DRAW_BLOCK`` from
    ``fold_in(key, i)``; fewer than that in one block drawn with ``key`` itself."""
    program = _draw_block(family, target, min(n, DRAW_BLOCK))
    ready(program)
    if n <= DRAW_BLOCK:
        return [program(params, key)]
    return [program(params, jax.random.fold_in(key, i)) for i in range(-(-n // DRAW_BLOCK))]


def draw_logw(family: Family, target: Target, params, key: jax.Array, n: int):
    """``n`` draws z ``(n, d)`` of q and their log weights ``(n,)`` (NumPy), by
    ``draw_blocks``; a discrete q's repeated states share one weight (``tie_repeated_states``)."""
    from vifit.evidence.importance import tie_repeated_states

    blocks = draw_blocks(family, target, params, key, n)
    z = np.concatenate([np.asarray(b[0]) for b in blocks])[:n]
    return z, tie_repeated_states(z, np.concatenate([np.asarray(b[1]) for b in blocks])[:n])


# sample(resample=True) draws its pool of q this many times larger than the draws it returns.
RESAMPLE_POOL = 4

# Mass the mode search finds outside q: from 1% the summaries are off ("usable with care"),
# from 10% log Z from q is off by 0.1 nats or more and the answer is wrong ("not reliable").
MISSED_CARE, MISSED_UNRELIABLE = 0.01, 0.1
# More rejected steps than this share: the fit was steered by which draws were finite.
REJECTED_CARE = 0.1


def fit_verdict(result: FitResult) -> Verdict:
    """See ``FitResult.verdict``."""
    verdict = _fit_verdict(result)
    tail = tail_verdict(result.info.get("tails"), verdict.label)
    if tail is not None and verdict.label != "failed":
        verdict = _corroborated(result, Verdict(tail[0], f"{tail[1]} {verdict.text}"))
    rounding = rounding_verdict(result.info.get("rounding"), verdict.label)
    if rounding is not None and verdict.label != "failed":
        verdict = Verdict(rounding[0], f"{rounding[1]} {ROUNDED_CHECKS} {verdict.text}")
    wider = float64_verdict((result.info.get("tails") or {}).get("float64"), verdict.label)
    if wider is not None and verdict.label != "failed":
        verdict = Verdict(wider[0], f"{wider[1]} {verdict.text}")
    note = _disagreement(result)
    short = _short_note(result.info.get("modes"))
    if short and short not in verdict.text and verdict.label != "failed":
        note = " ".join(filter(None, [short, note]))
    if verdict.label in ("usable with care", "not reliable"):
        from vifit.modes import precision_hint

        note = " ".join(filter(None, [note, precision_hint(result.info.get("modes"),
                                                           result.target.init.dtype)]))
    return Verdict(verdict.label, f"{verdict.text} {note}") if note else verdict


# Laplace masses are rough for modes that are not Gaussian: along a sharp banana's arm the
# point of it q (a flow) did not cover held 7% of the modes' Laplace mass while q missed 10% of
# p (log Z 0.107 nats low, sds 48% small), and three warnings (that share, the tail check's far
# mass, a k-hat band) each capped the verdict at "usable with care". Where the tail check too
# finds mass far from q, a share of half the unreliable one reads "not reliable".
MISSED_CORROBORATED = MISSED_UNRELIABLE / 2


def _corroborated(result: FitResult, verdict: Verdict) -> Verdict:
    """``verdict`` (the tail check has flagged mass far from q), made "not reliable" where it
    is "usable with care" and the mode search's uncovered share, with the unseen part of the
    modes it covers (``short_mass_fraction``), is at least ``MISSED_CORROBORATED``."""
    modes = result.info.get("modes") or {}
    missed = (float(modes.get("missed_mass_fraction") or 0.0)
              + float(modes.get("short_mass_fraction") or 0.0))
    if verdict.label != "usable with care" or not missed >= MISSED_CORROBORATED:
        return verdict
    return Verdict("not reliable", f"{verdict.text} Two checks see mass that q misses: the "
                   f"mode search's uncovered share ({100 * missed:.0f}%) is a Laplace "
                   "estimate, rough where p is not Gaussian, and the tail check's far mass "
                   "lies beside it, so q may well miss 10% of p or more.")


def _short_note(modes: dict | None) -> str:
    """What the covered modes that q's weighted draws see only part of would cost (empty
    where their share, ``short_mass_fraction``, is below ``MISSED_CARE``)."""
    short = float((modes or {}).get("short_mass_fraction") or 0.0)
    if not short >= MISSED_CARE:
        return ""
    return (f"But {_short_words(modes)}: q's component there follows only part of that mode "
            "(a shape it cannot bend to, such as a banana's arms), or the mode is far from "
            "Gaussian and its Laplace mass is off. If the Laplace masses hold, q misses about "
            f"{100 * short:.0f}% of p and log Z from q is about "
            f"{shortfall(short):.2f} nats low (docs/evidence.md, \"Random "
            "targets\").")


def _short_words(modes: dict) -> str:
    """Which covered modes q's weighted draws see only part of (``mode_check._p_shares``)."""
    from vifit.mode_check import P_SHARE_SHORT

    rows = [r for r in modes.get("modes", []) if r.get("covered_by_q")
            and r.get("p_share") is not None and r.get("mass_fraction") is not None
            and r["p_share"] < r["mass_fraction"] / P_SHARE_SHORT]
    parts = [f"at the mode near ({', '.join(f'{x:.3g}' for x in r['location'][:4])}"
             f"{', ...' if len(r['location']) > 4 else ''}) q's draws weighted toward p see "
             f"{100 * r['p_share']:.0f}% of p's mass where its Laplace approximation puts "
             f"{100 * r['mass_fraction']:.0f}%" for r in rows]
    return "; ".join(parts) or "q's weighted draws see less of a mode than its Laplace mass"


def _disagreement(result: FitResult) -> str:
    """What auto's stages disagreed on, when it kept a mixture of the modes it found: the
    one-mode Gaussian's fit was a local optimum of the ELBO, short by the gain."""
    auto = result.info.get("auto") or {}
    if auto.get("chosen") != "mixture":
        return ""
    # the row that kept a mixture of the modes found (in d = 1 auto keeps a plain mixture for
    # its shape, with no modes to disagree on and no "modes" count)
    row = next((d for d in auto.get("decisions", []) if "elbo_gain" in d
                and isinstance(d.get("modes"), int)), None)
    if row is None:
        return ""
    return (f"(auto: the full-rank Gaussian converged on one mode; the mixture of the modes "
            f"found has an ELBO higher by {row['elbo_gain']:.3f} ± {row['elbo_gain_se']:.3f} "
            "nats, and is reported.)")


def _coverage_words(modes: dict) -> str:
    """How q stands to the modes found, when it misses no material mass."""
    found, covered = modes.get("found", 0), modes.get("covered_by_q", 0)
    if covered >= found:
        return "all covered"
    if modes.get("note"):  # none in q's typical region: peaks of log p, not separate mass
        return ("none in q's typical region (a peak of log p such as a funnel's neck, not "
                "separate mass)")
    return f"{covered} covered, the rest with under 1% of the mass"


def _search_words(modes: dict, reach: str = "") -> str:
    """'The mode search (N climbs[reach]) found K modes, <coverage>', or, where it found
    none, where its climbs ended instead."""
    found = modes.get("found", 0)
    if not found:
        # (a float32 Gaussian with sds from 0.01 to 100: every end read as a ridge)
        ridges = modes.get("ridges", 0)
        head = f"The mode search ({modes.get('starts', 0)} climbs{reach}) found no mode: "
        if not ridges:  # (a kink at the top: -|z|, where no gradient vanishes)
            return head + (f"none of its climbs came to rest where log p's gradient vanishes "
                           f"({modes.get('unconverged', 0)} had not converged: a kink at the "
                           "top, a plateau, or a slope that never levels off)")
        return head + (f"its climbs ended at {ridges} point{'s' if ridges != 1 else ''} where "
                       "log p's Hessian is not negative definite to working precision (a ridge "
                       "or flat direction, or curvatures spanning more than the floating-point "
                       f"type resolves), and {modes.get('unconverged', 0)} had not converged")
    return (f"The mode search ({modes.get('starts', 0)} climbs{reach}) found {found} "
            f"mode{'s' if found != 1 else ''}, {_coverage_words(modes)}")


def _khat_reading(result: FitResult) -> Verdict:
    """k-hat's verdict, except where k-hat > 0.7 is contradicted by the tail check: its draws
    (q widened by Cauchy-tailed components, ``vifit.evidence.tails``) have usable weights,
    find no mass of p beyond q's range, their log Z agrees with q's within ``TAIL_AGREE``
    combined standard errors, and log Z - ELBO (q's KL from p) is within what missing 1% of
    p's mass would cost. k-hat reads the shape of the largest weights, not
    their size: a posterior slightly skewed against a Gaussian q (a logistic regression of
    2,000 rows: ELBO within 0.001 nats of log Z, sd of log w 0.03) has log weights that grow
    cubically in q's far tail, a shape the Pareto fit reads as k-hat 0.93 though those
    draws carry a negligible share of p."""
    khat = result.evidence.verdict
    tails = result.info.get("tails") or {}
    if khat.label != "not reliable" or tails.get("flag") != "ok" or not tails.get("usable"):
        return khat
    gap = abs(tails["log_z"] - result.log_z)
    se = math.hypot(tails["log_z_se"], result.log_z_se)
    if not (np.isfinite(gap) and gap <= TAIL_AGREE * se):
        return khat
    # And q must be close to p where q has its mass: KL(q || p) = log Z - ELBO within what 1%
    # of p's mass outside q would cost (-log 0.99 nats). The widened draws can be blind to
    # thin curved mass (a banana's arms, 0.1 wide): on one, a flow's k-hat 0.80 was read
    # this way while its log Z and the check's were both 0.05-0.08 nats low and its sds
    # 58% small; its KL was 0.17 nats, the skewed regression's 0.002.
    kl = result.log_z - result.elbo
    if not kl <= -math.log1p(-MISSED_CARE) + TAIL_AGREE * math.hypot(result.log_z_se,
                                                                        result.elbo_se):
        return khat
    return Verdict("usable with care", (
        f"k-hat {result.khat:.2f} > 0.7 from q's own draws, but the tail check's draws (q "
        f"widened by Cauchy-tailed components; their weights have k-hat {tails['khat']:.2f}) "
        f"find no mass of p beyond q's range and give log Z = {tails['log_z']:.3f} ± "
        f"{tails['log_z_se']:.3f}, agreeing with q's {result.log_z:.3f}, and the ELBO is "
        f"within {result.log_z - result.elbo:.3f} nats of it: the high k-hat reads "
        "the shape of the weights' far tail (a posterior slightly skewed against q gives one), "
        "which carries a negligible share of p. The standard error from q's draws may be "
        "optimistic."))


# Combined standard errors within which the tail check's log Z agrees with q's.
TAIL_AGREE = 3.0


def _fit_verdict(result: FitResult) -> Verdict:
    khat = _khat_reading(result)
    stop = result.stop_reason
    if stop == "diverged":
        note = next((n for n in reversed(result.notes) if n.startswith("the fit diverged")), "")
        return Verdict("failed", note or "the fit diverged: the density looks improper or "
                       "badly scaled; nothing it reports can be trusted.")
    if stop == "non-finite" and getattr(result.target, "discrete", False):
        return Verdict("failed", "every step of a window met non-finite values of log p: q "
                       "gives every state some probability, so where log p is -inf at states q "
                       "draws (a hard constraint) KL(q || p) is infinite and no step can be "
                       "taken. Give ruled-out states a finite, low log p instead (a penalty "
                       "growing with the violation), or check the model for NaN or overflow.")
    if stop == "non-finite":
        return Verdict("failed", "every step of a window met non-finite values (log p or its "
                       "gradient); the fit kept its last good state, which cannot be trusted. "
                       "Check the model for NaN or overflow, or start closer to the posterior; "
                       "if log p is -inf outside a region (a support boundary, e.g. a scale "
                       "that must be positive), write the model on the real line instead "
                       "(fit z = log x and add the log-Jacobian z to log p).")
    if not np.isfinite(result.elbo) or not np.isfinite(result.log_z):
        return Verdict("failed", "the final ELBO or log Z is not finite: q puts its draws "
                       "where log p is not finite, or the density is not normalizable.")
    if result.steps and result.rejected > REJECTED_CARE * result.steps:
        share = result.rejected / result.steps
        label = "usable with care" if khat.label == "good" else khat.label
        return Verdict(label, f"{100 * share:.0f}% of the steps were rejected as non-finite "
                       f"({result.rejected} of {result.steps}): q was fitted only by the steps "
                       "whose draws all avoided the region where log p is not finite, so it "
                       "can be far from p there. Check the model, or write it on the real "
                       f"line. {khat.text}")
    if result.info.get("enumeration"):
        return _enumerated_verdict(result, khat, result.info["enumeration"])
    modes = result.info.get("modes") or {}
    missed = float(modes.get("missed_mass_fraction") or 0.0)
    if missed >= MISSED_CARE:
        n, cov = modes.get("found", 0), modes.get("covered_by_q", 0)
        label = "not reliable" if missed >= MISSED_UNRELIABLE else (
            "usable with care" if khat.label == "good" else khat.label)
        joined = modes.get("log_z_with_modes")
        better = (f" Importance sampling from q joined by the modes found gives log Z = "
                  f"{joined['log_z']:.3f} ± {joined['se']:.3f} (k-hat {joined['khat']:.2f}, "
                  f"{joined['n']} draws; `vifit evidence` makes it with more)."
                  if joined else "")
        return Verdict(label, f"the mode search found {n} separated modes and q covers {cov}: "
                       f"it misses about {100 * missed:.0f}% of the mass "
                       f"({modes.get('mass_by', 'Laplace estimate')}), so "
                       f"log Z from q is about {shortfall(missed):.2f} nats "
                       f"low and posterior summaries miss those modes. Its k-hat "
                       f"({result.khat:.2f}) reads p/q only where q draws, so it cannot see "
                       f"them.{better}")
    if modes and not modes.get("saturated", True) and khat.label != "not reliable":
        return Verdict("usable with care", f"the mode search was still finding new modes when "
                       f"its {modes.get('rounds', '?')} rounds ran out ({modes.get('found', 0)} "
                       "found): p likely has modes that neither the search nor q reached, so "
                       f"log Z from q may be low and summaries may miss them. {khat.text}")
    failed = result.info.get("auto", {}).get("failed_stage")
    if failed:
        label = "not reliable" if khat.label == "not reliable" else "usable with care"
        return Verdict(label, f"auto's {failed['stage']} stage failed ({failed['why']}); the "
                       f"full-rank Gaussian is reported. {khat.text}")
    if stop in ("max_steps", "interrupted") and khat.label == "good":
        why = (f"The fit used all {result.steps} steps without converging"
               if stop == "max_steps" else f"The fit was interrupted after {result.steps} steps")
        return Verdict("usable with care",
                       f"{why}; k-hat is {result.khat:.2f}, but q may still be moving: run "
                       "longer (steps=...) or check the ELBO trace.")
    if stop in ("max_steps", "interrupted"):
        why = "did not converge" if stop == "max_steps" else "was interrupted"
        return Verdict(khat.label, f"the fit {why} after {result.steps} steps. {khat.text}")
    if multimode_blind(result.target.dim, modes) and khat.label == "good":
        found = modes.get("found", 0)
        return Verdict("usable with care", f"{khat.text} The mode search found {found} "
                       f"separated modes and q covers them; in d = {result.target.dim} a narrow "
                       "mode among wider ones can escape the search (on a test mixture in "
                       "d = 5 a 0.4-weight mode was missed and log Z was 0.51 nats low), and q "
                       "would then lack its mass.")
    if modes and modes.get("states") and search_blind(result.target.dim, modes):
        label = "usable with care" if khat.label == "good" else khat.label
        head = (f"k-hat {result.khat:.2f} < 0.5: q covers p well where q draws."
                if khat.label == "good" else khat.text)
        return Verdict(label, f"{head} {_search_words(modes, ' over states')}, but "
                       f"{blind_states(result.target.num_states())}. Where p has such a "
                       "mode, log Z is low and the summaries lack it (docs/evidence.md, "
                       "\"Modes over states\").")
    if modes and search_blind(result.target.dim, modes):
        # The same cap as vifit evidence's: "good" would claim that no mode was missed.
        label = "usable with care" if khat.label == "good" else khat.label
        head = (f"k-hat {result.khat:.2f} < 0.5: q covers p well where q draws."
                if khat.label == "good" else khat.text)
        return Verdict(label, f"{head} {_search_words(modes)}; in d = {result.target.dim} "
                       "that cannot rule out a separated mode the search missed, above all a "
                       f"narrow one beside a wider one ({blind_evidence(result.target.dim)}), "
                       "so log Z may be low and the summaries may lack that mode "
                       "(docs/evidence.md, \"Screened starts\").")
    if reduced_search(modes) and khat.label == "good":
        return Verdict("usable with care", f"k-hat {result.khat:.2f} < 0.5: q covers p well "
                       f"where q draws. {_search_words(modes)}, but it was cut to stay within "
                       f"its budget (one {'evaluation' if modes.get('states') else 'gradient'}"
                       f" of log p costs "
                       f"{modes.get('gradient_flops', 0):.3g} flops), so a mode the full search "
                       "would have reached may be missed, and log Z would then be low by its "
                       "mass (docs/families.md, \"Search budget\").")
    short = _short_note(modes)
    if khat.label == "good" and short:
        return Verdict("usable with care", f"k-hat {result.khat:.2f} < 0.5: q covers p well "
                       f"where q draws. {_search_words(modes)}, and q reaches each. {short}")
    if modes and khat.label == "good":
        from vifit.modes import FAR, SCALES, grid_spacings

        reach = f", from q out to about {FAR[0] * max(SCALES):,.0f} of its sds"
        boxes = grid_spacings(modes.get("grid") or 0, result.target.dim,
                              modes.get("grid_reach") or 0.0)
        if boxes:
            (near, fine), (far, coarse) = boxes[0], boxes[-1]
            reach += (f", and a scan of log p on grids with spacings from {fine:.2g} of q's sd "
                      f"within {near:g} sds to {coarse:.2g} within {far:,.0f}")
        narrow = ("one whose basin is narrower than the grid's spacing where it lies" if boxes
                  else "one far narrower than its neighbours")
        return Verdict("good", f"{khat.text} {_search_words(modes, reach)}. A mode it cannot "
                       f"reach would still be missed: one beyond that, or {narrow} "
                       "(docs/evidence.md, \"Grids in one and two dimensions\").")
    if not modes and khat.label == "good":
        # "good" says that no separated mode was missed; only a search can say so.
        return Verdict("usable with care", f"k-hat {result.khat:.2f} < 0.5: q covers p well "
                       f"where q draws. No mode search ran ({_no_search_why(result)}), and "
                       "k-hat cannot see a separated mode that q never draws from: log Z would "
                       "then be low by that mode's mass and the summaries would lack it.")
    return khat


def _enumerated_verdict(result: FitResult, khat: Verdict, enum: dict) -> Verdict:
    """The verdict on a fit to a discrete target whose states vifit summed (``enum``, the
    record of ``vifit.mode_check.with_enumeration``): the mass q misses is measured against
    the exact log Z, where a search over states can only say which modes its climbs reached."""
    from vifit.evidence.verdict import Z_DISAGREE

    summed = (f"Summing p over all {enum['states']:,} states gives log Z = "
              f"{enum['log_z']:.4f} (exact up to rounding)")
    se = math.hypot(result.log_z_se, enum["rounding"])
    gap = enum["log_z"] - result.log_z  # nats that q's estimate is low
    missed = -math.expm1(-gap)
    if gap > Z_DISAGREE * se and missed >= MISSED_CARE:
        label = "not reliable" if missed >= MISSED_UNRELIABLE else (
            "usable with care" if khat.label == "good" else khat.label)
        return Verdict(label, f"{summed}; importance sampling from q gives "
                       f"{result.log_z:.4f}, {gap:.3f} nats low: q misses about "
                       f"{100 * missed:.0f}% of p's mass (states its draws almost never reach: a "
                       "separated mode, or a few states of high probability), and summaries "
                       f"from q miss it too. Its k-hat ({result.khat:.2f}) reads p/q only "
                       f"where q draws, so it cannot see them.{_states_found(result)}")
    if -gap > Z_DISAGREE * se:
        label = "usable with care" if khat.label == "good" else khat.label
        return Verdict(label, f"{summed}; importance sampling from q gives "
                       f"{result.log_z:.4f} ± {result.log_z_se:.4f}, above it beyond its "
                       "standard error: q's weights are heavier-tailed than their k-hat "
                       f"({result.khat:.2f}) shows, and that standard error is optimistic.")
    if gap > Z_DISAGREE * se:
        agree = (f"q's estimate ({result.log_z:.4f}) is {gap:.4f} nats low: q misses "
                 f"{100 * missed:.2g}% of p's mass")
    else:
        agree = (f"q's estimate ({result.log_z:.4f} ± {result.log_z_se:.4f}) agrees within its "
                 "error: q misses no measurable mass")
    stop = result.stop_reason
    if stop in ("max_steps", "interrupted"):
        why = (f"The fit used all {result.steps} steps without converging"
               if stop == "max_steps" else f"The fit was interrupted after {result.steps} steps")
        label = "usable with care" if khat.label == "good" else khat.label
        return Verdict(label, f"{why}: q may still be moving. {khat.text} {summed}, and "
                       f"{agree}.")
    return Verdict(khat.label, f"{khat.text} {summed}, and {agree}.")


def _states_found(result: FitResult) -> str:
    """What the fit's search over states found, for the enumerated verdict's text."""
    modes = result.info.get("modes") or {}
    if not modes.get("states"):
        return ""
    found, cov = modes.get("found", 0), modes.get("covered_by_q", 0)
    joined = modes.get("log_z_with_modes")
    more = (f" Importance sampling from q joined by them gives {joined['log_z']:.4f} "
            f"± {joined['se']:.4f}." if joined and cov < found else "")
    return (f" The search over states found {found} separated mode(s), {cov} covered by q"
            f"{'' if cov < found else '; the mass q misses lies where none of its climbs ended'}"
            f".{more}")


def _no_search_why(result: FitResult) -> str:
    from vifit.modes import MAX_DIM

    target = result.target
    if getattr(target, "discrete", False):
        if result.info.get("modes_skipped") == "too costly":
            from vifit.modes import SKIP_FACTOR

            return (f"a search over states would cost more than {SKIP_FACTOR:g} times its "
                    "budget of evaluations of log p (vifit.state_modes)")
        return "the search over states runs on factorized families (bernoulli, categorical)"
    if not target.differentiable:
        return "log p has no gradients to climb"
    if target.dim > MAX_DIM:
        return f"d = {target.dim} > {MAX_DIM}, where its Hessians cost too much"
    if not hasattr(target, "n_rows"):  # a data set's search is sized in rows instead
        from vifit.modes import SEARCH_FLOPS, SKIP_FACTOR, gradient_flops, too_costly

        if too_costly(target):
            flops = gradient_flops(target.log_density, target.dim,
                                   np.dtype(target.init.dtype).name)
            return (f"one gradient of log p costs {flops:.3g} flops, and even its smallest "
                    f"search would take over {SKIP_FACTOR:g} times its budget of "
                    f"{SEARCH_FLOPS:.3g}; a vifit.DataTarget searches on a subset of the rows")
    if result.info.get("modes_skipped") == "distributed":
        return "the fit ran across processes, each holding other rows"
    return "it was not run on this fit"
