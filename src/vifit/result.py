"""FitResult: the fitted q, how the fit went, and what it says about the target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vifit.evidence.importance import ISEstimate, Verdict
from vifit.jsonio import jsonable as _jsonable
from vifit.families.base import Family, Params
from vifit.target import Target

QUANTILES = (0.05, 0.5, 0.95)


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

    def sample_unconstrained(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` draws of z from q, shape ``(n, dim)``."""
        return self.family.sample(self.params, key, n)

    def sample(self, key: jax.Array | int, n: int = 1000) -> dict[str, np.ndarray]:
        """``n`` draws in the model's own (constrained) parameters: ``{name: (n, *shape)}``."""
        if isinstance(key, int):
            key = jax.random.key(key)
        z = self.sample_unconstrained(key, n)
        values = self.target.in_model_order(jax.vmap(self.target.constrain)(z))
        return {k: np.asarray(v) for k, v in values.items()}

    def flat_draws(self, key: jax.Array | int = 0, n: int = 4000) -> tuple[list[str], np.ndarray]:
        """Names and draws ``(n, m)`` of every scalar of the constrained parameters."""
        if isinstance(key, int):
            key = jax.random.key(key)
        names, flat = self.target.constrained_names()
        z = self.sample_unconstrained(key, n)
        return names, np.asarray(jax.vmap(flat)(z))

    def summary(self, key: jax.Array | int = 0, n: int = 4000):
        """A table (pandas DataFrame) of mean, sd, q5, q50, q95 per constrained scalar
        parameter, from ``n`` draws of q."""
        import pandas as pd

        names, draws = self.flat_draws(key, n)
        qs = np.quantile(draws, QUANTILES, axis=0)
        return pd.DataFrame(
            {"mean": draws.mean(0), "sd": draws.std(0, ddof=1),
             "q5": qs[0], "q50": qs[1], "q95": qs[2]},
            index=pd.Index(names, name="param"),
        )

    def to_arviz(self, key: jax.Array | int = 0, n: int = 4000):
        """Draws from q as ArviZ InferenceData (one chain of ``n`` draws), constrained."""
        import arviz as az

        draws = self.sample(key, n)
        return az.from_dict(posterior={k: v[None, ...] for k, v in draws.items()},
                            attrs={"inference_library": "vifit", "family": self.family.name})

    def mean(self) -> np.ndarray:
        """Mean of q on the unconstrained scale, ``(dim,)``."""
        return np.asarray(self.family.mean(self.params))

    def covariance(self) -> np.ndarray:
        """Covariance of q on the unconstrained scale, ``(dim, dim)``."""
        return np.asarray(self.family.covariance(self.params))

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
            "seconds": self.seconds,
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


def fit_verdict(result: FitResult) -> Verdict:
    """See ``FitResult.verdict``."""
    khat = result.evidence.verdict
    stop = result.stop_reason
    if stop == "diverged":
        note = next((n for n in reversed(result.notes) if n.startswith("the fit diverged")), "")
        return Verdict("failed", note or "the fit diverged: the density looks improper or "
                       "badly scaled; nothing it reports can be trusted.")
    if stop == "non-finite":
        return Verdict("failed", "every step of a window met non-finite values (log p or its "
                       "gradient); the fit kept its last good state, which cannot be trusted. "
                       "Check the model for NaN or overflow, or start closer to the posterior.")
    if not np.isfinite(result.elbo) or not np.isfinite(result.log_z):
        return Verdict("failed", "the final ELBO or log Z is not finite: q puts its draws "
                       "where log p is not finite, or the density is not normalizable.")
    failed = result.info.get("auto", {}).get("failed_stage")
    if failed:
        label = "not reliable" if khat.label == "not reliable" else "usable with care"
        return Verdict(label, f"auto's {failed['stage']} stage failed ({failed['why']}); the "
                       f"full-rank Gaussian is reported. {khat.text}")
    if stop in ("max_steps", "interrupted") and khat.label == "good":
        why = (f"the fit used all {result.steps} steps without converging"
               if stop == "max_steps" else f"the fit was interrupted after {result.steps} steps")
        return Verdict("usable with care",
                       f"{why}; k-hat is {result.khat:.2f}, but q may still be moving: run "
                       "longer (steps=...) or check the ELBO trace.")
    if stop in ("max_steps", "interrupted"):
        why = "did not converge" if stop == "max_steps" else "was interrupted"
        return Verdict(khat.label, f"the fit {why} after {result.steps} steps. {khat.text}")
    return khat
