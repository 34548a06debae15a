"""EPResult: the EP Gaussian, its log Z, how the iteration went, and a bridge to FitResult."""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from vifit.ep.core import EPState
from vifit.ep.model import Factorized
from vifit.evidence.importance import ISEstimate, importance_log_z
from vifit.families.base import Params
from vifit.families.gaussian import FullRank
from vifit.result import FitResult
from vifit.target import Target


@dataclass(frozen=True)
class EPResult:
    """The outcome of ``vifit.ep.fit``.

    Attributes:
      log_z: the EP estimate of log Z (nats); NaN if some cavity is improper at the end.
      sweeps: sweeps run (one sweep visits every site once).
      converged: the largest relative site change asked for in the last sweep was <= tol.
      status: ``"converged"``, ``"max_sweeps"`` or ``"stuck"`` (no site could be updated).
      history: ``(sweeps,)`` the largest relative site change per sweep (before damping).
      log_z_trace: ``(sweeps + 1,)`` log Z_EP before each sweep (the first at flat sites) and
        at the end.
      damping: the damping in force at the end (raised automatically on oscillation).
      damping_raised_at: the sweeps after which damping was raised.
      skipped: site updates not taken (improper cavity, bad moments, improper q).
      state: the sites and q in whitened coordinates (see vifit.ep.core).
    """

    model: Factorized
    state: EPState
    log_z: float
    sweeps: int
    converged: bool
    status: str
    history: np.ndarray
    log_z_trace: np.ndarray
    damping: float
    damping_raised_at: tuple[int, ...]
    skipped: int
    seconds: float
    schedule: str
    tol: float
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def mean(self) -> np.ndarray:
        """Mean of the EP Gaussian in the model's coordinates z, ``(d,)``."""
        return np.asarray(self.model.to_z(self.state.mean))

    @property
    def cov(self) -> np.ndarray:
        """Covariance of the EP Gaussian in z, ``(d, d)``: L0 cov_w L0^T."""
        l0 = self.model.prior_chol
        return np.asarray(l0 @ self.state.cov @ l0.T)

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    @property
    def site_precision(self) -> np.ndarray:
        return np.asarray(self.state.tau)

    @property
    def site_shift(self) -> np.ndarray:
        return np.asarray(self.state.nu)

    @property
    def negative_sites(self) -> int:
        return int(np.sum(self.site_precision < 0))

    @property
    def family(self) -> FullRank:
        """The vifit family the EP posterior lives in: a full-rank Gaussian over the whitened
        coordinates of ``target``."""
        return FullRank()

    @property
    def params(self) -> Params:
        """FullRank params of the EP Gaussian over the whitened coordinates w."""
        chol = jnp.linalg.cholesky(self.state.cov)
        raw = jnp.tril(chol, -1) + jnp.diag(jnp.log(jnp.diag(chol)))
        return {"loc": self.state.mean, "chol": raw}

    @property
    def target(self) -> Target:
        """The model as a vifit Target in the whitened coordinates of ``params``."""
        if "target" not in self._cache:
            self._cache["target"] = self.model.target(whiten=True)
        return self._cache["target"]

    def log_weights(self, key: jax.Array | int = 0, n: int = 4000) -> np.ndarray:
        """log p(w_j) - log q_EP(w_j) for ``n`` draws of q_EP, float64 ``(n,)``."""
        if isinstance(key, int):
            key = jax.random.key(key)
        fam, target = self.family, self.target

        @jax.jit
        def logw(params, key):
            w = fam.sample(params, key, n)
            return target.batch_log_density(w) - fam.batch_log_prob(params, w)

        return np.asarray(logw(self.params, key), dtype=np.float64)

    def importance(self, key: jax.Array | int = 0, n: int = 4000) -> ISEstimate:
        """log Z by Pareto-smoothed importance sampling from the EP Gaussian, with k-hat."""
        return importance_log_z(self.log_weights(key, n))

    def to_fit_result(self, seed: int = 0, n_eval: int = 4000) -> FitResult:
        """A FitResult of the EP Gaussian, so every downstream tool (summary, draws, ArviZ,
        report, evidence) works on it: its ELBO and importance-sampling log Z come from
        ``n_eval`` draws; its trace is log Z_EP per sweep; its steps are sweeps."""
        logw = self.log_weights(jax.random.fold_in(jax.random.key(seed), 1), n_eval)
        finite = logw[np.isfinite(logw)]
        elbo = float(finite.mean()) if finite.size else -np.inf
        elbo_se = float(finite.std(ddof=1) / np.sqrt(finite.size)) if finite.size > 1 else np.inf
        return FitResult(
            target=self.target, family=self.family, params=self.params, objective="ep",
            estimator=f"ep-{self.schedule}", optimizer="ep", trace=self.log_z_trace,
            steps=self.sweeps, rejected=self.skipped,
            stop_reason="converged" if self.converged else "max_steps",
            seconds=self.seconds, elbo=elbo, elbo_se=elbo_se,
            evidence=importance_log_z(logw), seed=seed, draws=0,
        )
