"""``vifit.evidence``: every log Z estimate vifit can make from a fitted q, with a verdict.

    result = vifit.fit(target)
    ev = vifit.evidence(target, result)
    print(ev.table(), ev.log_z, ev.log_z_se, ev.verdict.text)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from vifit.errors import ConfigError
from vifit.evidence.ais import AISConfig, AISResult, run_ais
from vifit.evidence.bounds import cubo_bound, elbo_bound, iwae_bound
from vifit.evidence.found_modes import log_z_with_modes
from vifit.evidence.importance import importance_log_z, tie_repeated_states
from vifit.evidence.rounding import (coordinate_rounding, log_w_spread, mean_size,
                                     rounding_record)
from vifit.evidence.rounding import floored as with_rounding
from vifit.evidence.verdict import Estimate, EvidenceVerdict, bracket, judge_all
from vifit.families.base import Family, Params
from vifit.rng import classic_threefry
from vifit.state_modes import searchable
from vifit.target import Target

ORDER = ("elbo", "iwae", "psis", "ais", "cubo")
LABELS = {
    "elbo": "ELBO",
    "iwae": "IWAE-K",
    "psis": "PSIS importance sampling",
    "ais": "annealed importance sampling",
    "cubo": "CUBO (chi-square, n = 2)",
    "defensive": "widened IS (tail check)",
    "modes": "IS from q + modes found",
    "enumeration": "sum over every state",
}


@dataclass(frozen=True)
class EvidenceResult:
    """All estimates of log Z for one target and one q, and the verdict on them.

    Attributes:
      estimates: name -> Estimate, in the order elbo, iwae, psis, ais, cubo (ais when run).
      verdict: label ("good", "usable with care", "not reliable"), the recommended estimator,
        and a text with its reasons (rule in ``vifit.evidence.verdict``).
      exact_log_z: the target's known log Z, when it has one (shown alongside, never used),
        else the enumeration's.
      ais: the full AIS/SMC result (schedule, replicates, final particles), when run.
    """

    target_name: str
    dim: int
    estimates: dict[str, Estimate]
    verdict: EvidenceVerdict
    exact_log_z: float | None
    ais: AISResult | None

    @property
    def log_z(self) -> float:
        """The recommended estimate of log Z, nats."""
        return self.estimates[self.verdict.recommended].estimate

    @property
    def log_z_se(self) -> float:
        return self.estimates[self.verdict.recommended].se

    @property
    def recommended(self) -> str:
        return self.verdict.recommended

    def table(self):
        """A pandas DataFrame: one row per estimator, with estimate, se, kind, seconds (and the
        error against the exact log Z when the target knows it)."""
        import pandas as pd

        rows = {name: {"estimate": e.estimate, "se": e.se, "kind": self.kind(name),
                       "seconds": e.seconds}
                for name, e in self.estimates.items()}
        df = pd.DataFrame.from_dict(rows, orient="index")
        df.index.name = "estimator"
        if self.exact_log_z is not None:
            df["error"] = df["estimate"] - self.exact_log_z
        return df

    def kind(self, name: str) -> str:
        """The estimate's kind as vifit stands behind it: "lower", "upper", "point", "exact"
        (a sum over every state), or "unverified" for a bound that failed vifit's checks
        (``verdict.unverified`` says why)."""
        return "unverified" if name in self.verdict.unverified else self.estimates[name].kind

    @property
    def bracket(self) -> dict[str, float | None]:
        """``{"lower": x, "upper": y}``: the tightest lower and upper bounds on log Z that vifit
        stands behind (None where there is none)."""
        return bracket(self.estimates, self.verdict.unverified)

    def to_dict(self) -> dict[str, Any]:
        """The stable record written to ``evidence.json``: ``estimates`` (per estimator
        ``estimate``, ``se``, ``kind``, ``seconds``; a bound that failed vifit's checks has
        kind ``"unverified"``, the kind it claims as ``claimed`` and a ``reason``),
        ``bracket`` (``lower``, ``upper``: null where none), ``log_z``, ``log_z_se``,
        ``verdict``."""
        from vifit.jsonio import jsonable as _jsonable

        estimates = {}
        for name, e in self.estimates.items():
            row = {"estimate": e.estimate, "se": e.se, "kind": self.kind(name),
                   "seconds": e.seconds}
            if name in self.verdict.unverified:
                row.update(claimed=e.kind, reason=self.verdict.unverified[name])
            estimates[name] = row
        return _jsonable({
            "estimates": estimates,
            "bracket": self.bracket,
            "log_z": self.log_z,
            "log_z_se": self.log_z_se,
            "verdict": self.verdict.text,
        })

    def _repr_html_(self) -> str:
        """A compact HTML table of the estimates and the verdict, for Jupyter."""
        from vifit.report_html import evidence_repr_html

        return evidence_repr_html(self)

    def details(self) -> dict[str, Any]:
        """Everything else, for ``evidence_details.json``: the verdict's label, recommended
        estimator and reasons, each estimator's diagnostics, the exact log Z when known."""
        from vifit.jsonio import jsonable as _jsonable

        record: dict[str, Any] = {
            "target": self.target_name,
            "dim": self.dim,
            "recommended": self.verdict.recommended,
            "verdict_label": self.verdict.label,
            "reasons": list(self.verdict.reasons),
            "diagnostics": {name: e.details for name, e in self.estimates.items()},
        }
        if self.exact_log_z is not None:
            record["exact_log_z"] = self.exact_log_z
        if self.ais is not None:
            record["ais_betas"] = self.ais.betas
            record["ais_log_z_replicates"] = self.ais.log_z_reps
        return _jsonable(record)


def mixture_components(family: Family, params: Params):
    """``(weights, means, covs)`` of a Gaussian-mixture q (for AIS's base), else None."""
    from vifit.families.mixture import Mixture

    if not isinstance(family, Mixture):
        return None
    try:
        comps = params["components"]
        means = jax.vmap(family.base.mean)(comps)
        covs = jax.vmap(family.base.covariance)(comps)
    except NotImplementedError:
        return None
    return family.weights(params), means, covs


def _q_moments(family: Family, params: Params, z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """q's mean and covariance: closed form where the family has it, else from draws."""
    try:
        return family.mean(params), family.covariance(params)
    except NotImplementedError:
        zc = z - z.mean(0)
        return z.mean(0), zc.T @ zc / (z.shape[0] - 1)


def _enumeration(fit, target: Target) -> dict[str, Any] | None:
    """log Z by summing p over every state of a discrete target that vifit sums on its own
    (``vifit.discrete.enumerable``): the fit's sum where it made one for this target, else a
    new one; None where the states are too many."""
    from vifit.discrete import enumerable, enumerate_exact

    if not enumerable(target):
        return None
    info = getattr(fit, "info", None) or {}
    if fit.target is target and info.get("enumeration"):
        return info["enumeration"]
    try:
        return enumerate_exact(target)
    except Exception:  # noqa: BLE001 - as the fit's check: the other estimates stand alone
        return None


CLIMBS_FROM_AIS = 4096  # AIS's final particles that climb log p (all, up to this many)


def _tails(fit, target: Target, family, params, key: jax.Array, draws: int
           ) -> dict[str, Any] | None:
    """The fit's tail check (``vifit.evidence.tails``), or one made here when the fit has none
    (a fit of another target object, or made before the check existed); None where it does
    not apply (a discrete target)."""
    from vifit.evidence.tails import data_draws, tail_check

    info = getattr(fit, "info", None) or {}
    if fit.target is target and info.get("tails"):
        return info["tails"]
    if getattr(target, "discrete", False):
        return None
    from vifit.data.target import DataTarget

    data = isinstance(target, DataTarget)
    if data:
        draws = data_draws(target, draws)  # each draw a pass over the rows
        if draws == 0:
            return None
    record = tail_check(family, target, params, key, draws)
    return {**record, "data": True} if data else record


def _modes_beyond_q(target: Target, ais: AISResult, mean, cov
                    ) -> tuple[dict[str, Any] | None, list]:
    """Climb log p from AIS's final particles (unweighted: one particle in a basin is enough)
    and report the modes they reach that q's moments do not cover, with their share of the
    Laplace mass of all modes reached (``vifit.modes``): the record (None where the climb does
    not apply or reaches nothing) and the uncovered modes (``vifit.modes.Mode``)."""
    from vifit.modes import climb_from

    z = np.asarray(ais.z)
    z = z[np.all(np.isfinite(z), axis=1)]
    if z.shape[0] == 0:
        return None, []
    pick = np.unique(np.linspace(0, z.shape[0] - 1, min(CLIMBS_FROM_AIS, z.shape[0])).astype(int))
    found = climb_from(target, z[pick], mean, cov)
    if found is None or not found.modes:
        return None, []
    return ({"found": len(found.modes), "not_covered": len(found.modes) - len(found.covered),
             "missed_mass_fraction": found.missed_fraction, "climbs": int(pick.size),
             "seconds": found.seconds}, [m for m in found.modes if not m.covered])


def _states_beyond_q(fit, target, family, params, log_z_q: float, key: jax.Array,
                     draws: int) -> dict[str, Any] | None:
    """For a discrete target (no AIS: its moves need gradients): the fit's mode search over
    states run again (``vifit.state_modes``, the same key, so the same modes as the fit's
    record) and, where it finds modes q does not cover, importance sampling from q joined by
    every mode found (``log_z_with_states``); None where q covers them all."""
    from vifit.state_modes import log_z_with_states, search_states

    seed = getattr(fit, "seed", 0)
    search = search_states(target, family, params,
                           jax.random.fold_in(jax.random.key(seed), 0x0DE5))
    if search is None or all(m.covered for m in search.modes):
        return None
    # every mode found joins q, the covered ones too (``vifit.state_modes.state_check``)
    joined = log_z_with_states(target, family, params, search.modes, log_z_q, key, draws)
    if joined is not None:
        joined["seconds"] += search.seconds
    return joined


def _fit_modes(fit, target: Target) -> dict[str, Any] | None:
    """The fit's mode search record; for a fit to a continuous target that skipped the search
    (its verdict "not reliable", which the search cannot lower) the search now. Without it a
    mean-field q on the minor mode of a 2-D mixture (14% of the mass; AIS started from q
    stayed there) read "usable with care" 2.0 nats low (bench/random_targets.py --evidence
    --fit '{"family": "meanfield"}', seed 48)."""
    from vifit.mode_check import search_record

    info = getattr(fit, "info", None) or {}
    if "modes" in info or getattr(fit, "verdict", None) is None:
        return info.get("modes")
    if fit.verdict.label == "failed" or fit.target is not target:
        return None
    return search_record(fit)  # None where the search does not apply


def _modes_estimate(joined: dict[str, Any], floored) -> Estimate:
    """The estimate "modes" from the record of importance sampling from q joined by modes
    (``log_z_with_modes`` or ``vifit.state_modes.log_z_with_states``)."""
    return Estimate("modes", joined["log_z"], floored(joined["se"]), "point", joined["seconds"],
                    {k: joined[k] for k in ("khat", "ess", "n", "modes", "shares")})


# The default AIS/SMC effort per temperature, in floating-point operations of log p's gradients
# (its three runs x particles x moves x leapfrog steps x one gradient's flops, by XLA's cost
# analysis, ``vifit.modes.gradient_flops``); particles are halved, down to
# ``MIN_AIS_PARTICLES``, until it fits. A 2,000-row logistic regression (2e5 flops a gradient:
# 3.2e11 a temperature at 4096 particles) took 195 s of AIS; eight schools costs 4e8.
AIS_TEMPERATURE_FLOPS = 4e10
MIN_AIS_PARTICLES = 512


def default_ais_config(dim: int, gradient_flops: float | None = None) -> AISConfig:
    """The default AIS/SMC effort for a d-dimensional target: 4096 particles up to d = 16, then
    fewer (down to 1024) so that the cost, which grows with d, stays near that of d = 16; and,
    given one gradient's ``gradient_flops``, fewer still (down to ``MIN_AIS_PARTICLES``) where
    a temperature would cost more than ``AIS_TEMPERATURE_FLOPS``."""
    particles = int(min(4096, max(1024, 2 ** math.floor(math.log2(65536 / max(dim, 1))))))
    config = AISConfig(particles=particles, replicates=32)
    if gradient_flops:
        per_particle = 3 * config.moves * config.integration_steps * gradient_flops
        while particles > MIN_AIS_PARTICLES and particles * per_particle > AIS_TEMPERATURE_FLOPS:
            particles //= 2
    return config._replace(particles=particles)


def default_ais_for(target: Target) -> AISConfig:
    """``default_ais_config`` for ``target``, with the cost of its gradient."""
    from vifit.modes import gradient_flops

    flops = gradient_flops(target.log_density, target.dim, np.dtype(target.init.dtype).name)
    return default_ais_config(target.dim, flops)


@classic_threefry
def evidence(
    target: Target,
    fit,
    *,
    seed: int = 0,
    draws: int = 16_384,
    iwae_k: int = 64,
    ais: bool | AISConfig = True,
) -> EvidenceResult:
    """Estimate log Z of ``target`` from the fitted q of ``fit`` (a ``vifit.FitResult``).

    From ``draws`` fresh draws of q (for a ``vifit.DataTarget``, at most what the fit's
    evaluation budget of row evaluations affords, ``vifit.data.passes.eval_draws``): the ELBO
    and IWAE-``iwae_k`` (lower bounds), Pareto-smoothed importance sampling (a point estimate,
    with k-hat) and CUBO (an upper bound, in expectation). Then, unless ``ais=False``,
    annealed importance sampling / SMC from q to the target with BlackJAX HMC moves (``ais``
    may be an ``AISConfig``; the default is ``default_ais_for(target)``: fewer particles where
    log p's gradient is costly), skipped for discrete and ``differentiable=False`` targets).
    For a discrete target whose states vifit can sum (``vifit.discrete.enumerable``: up to
    2^22 states within the mode search's flop budget) the sum is the estimate
    "enumeration", of kind "exact" (its ``se`` an allowance for the rounding of log p), which
    the verdict recommends and checks every bound against. Every estimate has a Monte Carlo
    standard error and its wall time. ``verdict`` says which estimate to trust and how far
    (see ``vifit.evidence.verdict``).
    """
    if not isinstance(target, Target):
        raise ConfigError("evidence() takes a vifit.Target as its first argument.")
    if getattr(fit, "family", None) is None or getattr(fit, "params", None) is None:
        raise ConfigError("evidence() takes the result of vifit.fit(target, ...) as `fit`.")
    if fit.target is not target and fit.target.dim != target.dim:
        raise ConfigError(f"the fit is for a {fit.target.dim}-dimensional target but this "
                          f"target has {target.dim} coordinates; pass the target you fitted.")
    if draws < 2 * iwae_k:
        raise ConfigError(f"draws ({draws}) must be at least 2 * iwae_k ({2 * iwae_k}).")
    from vifit.data.target import DataTarget

    if isinstance(target, DataTarget):
        from vifit.data.passes import eval_draws

        # each draw is a pass over the rows: the fit's evaluation budget (at least 256)
        draws = max(2 * iwae_k, eval_draws(draws, target.n_rows))
    from vifit import freshness

    freshness.check(target)  # kept programs of a density that has changed since the fit
    if ais is True and not target.differentiable:
        ais = False  # the default skips what cannot run; the verdict says AIS was not run
    if ais is not False and not target.differentiable:
        raise ConfigError("AIS moves with HMC or MALA need the gradient of log p, but this "
                          "target is differentiable=False; run without AIS (ais=False, or "
                          "--no-ais on the command line).")
    family, params = fit.family, fit.params
    k_draws, k_ais = jax.random.split(jax.random.key(seed))

    t0 = time.perf_counter()

    @jax.jit
    def sample_logw(params, key):
        z, log_q = family.sample_and_log_prob(params, key, draws)  # no solves where avoidable
        log_p = target.batch_log_density(z)
        return z, log_p - log_q, mean_size(log_p, log_q)

    z, logw, size = sample_logw(params, k_draws)
    precision = rounding_record(float(size), logw.dtype,
                                spread=log_w_spread(np.asarray(logw))) | coordinate_rounding(
        np.asarray(z), z.dtype, getattr(target, "param_names", None))
    logw = tie_repeated_states(np.asarray(z), np.asarray(logw, dtype=np.float64))
    rounding = precision["se"]
    t_draws = time.perf_counter() - t0

    estimates: dict[str, Estimate] = {}

    def timed(fn):  # seconds include the shared draws: what the estimate costs alone
        t = time.perf_counter()
        out = fn()
        return out, t_draws + time.perf_counter() - t

    def floored(se: float) -> float:  # Monte Carlo error and the log weights' rounding
        return with_rounding(se, rounding)

    rounded = {"rounding_se": rounding}
    b, s = timed(lambda: elbo_bound(logw))
    estimates["elbo"] = Estimate("elbo", b.estimate, floored(b.se), "lower", s,
                                 b.details | rounded)
    b, s = timed(lambda: iwae_bound(logw, iwae_k))
    estimates["iwae"] = Estimate("iwae", b.estimate, floored(b.se), "lower", s,
                                 b.details | rounded)
    p, s = timed(lambda: importance_log_z(logw))
    estimates["psis"] = Estimate("psis", p.log_z, floored(p.se), "point", s,
                                 {"khat": p.khat, "ess": p.ess, "n": p.n} | rounded)
    ais_result = None
    if ais is not False:
        config = default_ais_for(target) if ais is True else ais
        mean, cov = _q_moments(family, params, z)
        ais_result = run_ais(target.log_density, mean, cov, k_ais, config,
                             components=mixture_components(family, params))
        beyond, missed = _modes_beyond_q(target, ais_result, mean, cov)
        estimates["ais"] = Estimate(
            "ais", ais_result.log_z, floored(ais_result.se), "point", ais_result.seconds,
            {"method": ais_result.method, "khat": ais_result.khat, "ess": ais_result.ess,
             "spread": ais_result.spread, "replicates": int(ais_result.log_z_reps.size),
             "particles": int(ais_result.logw.size), "temperatures": ais_result.n_temps,
             "accept": ais_result.accept, "pilot_log_z": ais_result.pilot_log_z,
             "explore_log_z": ais_result.explore_log_z,
             "history": [list(h) for h in ais_result.history], "settled": ais_result.settled,
             "compile_seconds": ais_result.compile_seconds,
             "modes_beyond_q": beyond} | rounded,
        )
        if missed:
            joined = log_z_with_modes(target, family, params, missed,
                                      estimates["psis"].estimate,
                                      jax.random.fold_in(k_draws, 0x30DE), draws)
            if joined is not None:
                joined["seconds"] += beyond["seconds"]
                estimates["modes"] = _modes_estimate(joined, floored)
    if getattr(target, "discrete", False) and searchable(family):
        joined = _states_beyond_q(fit, target, family, params, estimates["psis"].estimate,
                                  jax.random.fold_in(k_draws, 0x30DE), draws)
        if joined is not None:
            estimates["modes"] = _modes_estimate(joined, floored)
    b, s = timed(lambda: cubo_bound(logw))
    estimates["cubo"] = Estimate("cubo", b.estimate, floored(b.se), "upper", s,
                                 b.details | rounded)
    tails = _tails(fit, target, family, params, jax.random.fold_in(k_draws, 0x7A11), draws)
    if tails is not None and "log_z" in tails:
        estimates["defensive"] = Estimate(
            "defensive", tails["log_z"], floored(tails["log_z_se"]), "point",
            tails.get("seconds", float("nan")),
            {k: tails[k] for k in ("khat", "usable", "flag", "p_mass", "p_mass_se", "q_mass",
                                 "draws")})

    summed = _enumeration(fit, target)
    if summed is not None:
        estimates["enumeration"] = Estimate(
            "enumeration", summed["log_z"], summed["rounding"], "exact", summed["seconds"],
            {"states": summed["states"]})
    exact = target.exact.get("log_z")
    if exact is None and summed is not None:
        exact = summed["log_z"]
    return EvidenceResult(
        target_name=target.name, dim=target.dim, estimates=estimates,
        verdict=judge_all(estimates, target.dim, _fit_modes(fit, target), tails, precision),
        exact_log_z=float(exact) if exact is not None else None, ais=ais_result,
    )
