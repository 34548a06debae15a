"""Whether q's tails are as heavy as p's, checked with draws that q does not make.

q's own Pareto k-hat reads the weights p/q at q's draws. When q's tails are lighter than p's
(a Gaussian-based flow fitted to a Cauchy), the weights are unbounded far out, but q almost
never draws there: from a few thousand draws the k-hat can look clean while q's sds and tail
quantiles are a third too small. No statistic of q's draws alone can see mass where q puts
none.

The check draws from a *defensive mixture* m = 1/2 q + 1/4 t + 1/4 c, where t is a
multivariate Student-t with one degree of freedom (Cauchy tails in every direction), located
and scaled by q's mean and covariance, and c a product of independent Cauchys along the
coordinates (heavier than t along them), at q's medians with q's half interquartile ranges as
scales. The weights p/m are then bounded wherever p's
tails are no heavier than Cauchy, so self-normalized importance sampling from m estimates p's
mass in

    A = {z : log q(z) < the 0.1% quantile of log q under q},

the region q treats as its far tail (q(A) = 0.1%). When p(A) exceeds q(A) materially, q's
tails are too light: summaries from q (importance-weighted or not) miss that mass, sds and
tail quantiles come out too small, and log Z from q's draws is low by about -log(1 - p(A)).
The same draws give a log Z estimate from m, which does see the tail. Draws from m are made
in fixed proportions and weighted by the whole mixture's density (multiple importance
sampling with the balance heuristic: unbiased for Z).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp

from vifit.families.base import Family
from vifit.target import Target

# A: where log q is below this quantile of log q under q's own draws.
TAIL_QUANTILE = 1e-3
# Shares of the defensive mixture: q, the multivariate t_1, the axis-wise Cauchy product.
SHARES = (0.5, 0.25, 0.25)
# p's mass in A beyond q's: from 1% q's summaries are off ("usable with care"); from 10% log Z
# from q is 0.1 nats or more low and the answer is wrong ("not reliable"); the same levels as
# mass in modes q misses (vifit.result).
EXCESS_CARE, EXCESS_UNRELIABLE = 0.01, 0.1
# The excess must clear this many standard errors of the estimate of p(A).
Z_EXCESS = 3.0
# The weights p/m are usable when their Pareto k-hat is below KHAT_OK, or when no draw carries
# more than MAX_SHARE / n of their sum. The second rule is for m's own shape: where q fits the
# bulk, p/m sits at a pile near 2Z there and rises to at most 4Z/scale in the Cauchy-covered
# tail, a bounded spread that the Pareto fit to the largest weights reads as a heavy tail
# (k-hat 1.0 to 1.6 for a flow fitted to a 2-D Cauchy whose largest weight was 7x the mean).
KHAT_OK = 0.7
MAX_SHARE = 20.0


def widen(family: Family, params, key: jax.Array, z_q: jax.Array, lq_q: jax.Array
          ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The defensive mixture around ``n`` draws ``z_q (n, d)`` of q with log q ``lq_q (n,)``
    (traceable; run inside ``vifit.result``'s draw program, so the check compiles nothing of
    its own): ``n`` more draws ``z_far (n, d)``, half from t_1 and half from c, then log q and
    log m at all ``2n`` draws, q's first. With n draws of q among 2n the shares are
    ``SHARES``."""
    n, d = z_q.shape
    n_t = n // 2
    if family.gaussian_form:  # exact moments
        mu, cov = family.mean(params), family.covariance(params)
    else:
        mu = jnp.mean(z_q, axis=0)
        dev = z_q - mu
        cov = dev.T @ dev / (n - 1)
    jitter = 1e-6 * jnp.mean(jnp.diag(cov)) + jnp.finfo(z_q.dtype).tiny
    chol = jnp.linalg.cholesky(cov + jitter * jnp.eye(d, dtype=z_q.dtype))
    # The product of Cauchys runs along the coordinates, at q's medians and half interquartile
    # ranges: heavy tails of a posterior mostly lie along its parameters (independent
    # heavy-tailed priors), and robust scales are not inflated by a heavy q.
    lo, med, hi = jnp.quantile(z_q, jnp.asarray([0.25, 0.5, 0.75]), axis=0)
    half_iqr = jnp.maximum(0.5 * (hi - lo), 1e-3 * jnp.sqrt(jnp.diag(cov))
                           + jnp.finfo(z_q.dtype).tiny)
    # One call of the generator (each call is a threefry program XLA takes ~0.6 s to compile):
    # t_1 is a normal over an independent |normal| (chi with one degree of freedom), and a
    # Cauchy a ratio of two independent normals.
    g = jax.random.normal(key, (n, 2 * d), z_q.dtype)
    t_1 = g[:n_t, :d] / jnp.abs(g[:n_t, d:d + 1])
    cauchy = g[n_t:, :d] / g[n_t:, d:]
    z_far = jnp.concatenate([mu + t_1 @ chol.T, med + half_iqr * cauchy])
    lq = jnp.concatenate([lq_q, family.batch_log_prob(params, z_far)])
    lq = jnp.where(jnp.isnan(lq), -jnp.inf, lq)
    z = jnp.concatenate([z_q, z_far])
    u = jax.scipy.linalg.solve_triangular(chol, (z - mu).T, lower=True).T
    l_t = (gammaln((1.0 + d) / 2.0) - gammaln(0.5) - d / 2.0 * math.log(math.pi)
           - jnp.sum(jnp.log(jnp.diag(chol)))
           - (1.0 + d) / 2.0 * jnp.log1p(jnp.sum(u**2, axis=1)))
    v = (z - med) / half_iqr
    l_c = (-d * math.log(math.pi) - jnp.sum(jnp.log1p(v**2), axis=1)
           - jnp.sum(jnp.log(half_iqr)))
    log_m = logsumexp(jnp.stack([math.log(SHARES[0]) + lq, math.log(SHARES[1]) + l_t,
                                 math.log(SHARES[2]) + l_c]), axis=0)
    return z_far, lq, log_m


def tails_apply(target: Target) -> bool:
    """Whether the fit's draw program widens its draws for the tail check
    (``vifit.result.draw_blocks``): continuous, and not a data target, whose log p is a pass
    over the rows per draw and is checked by passes of its own (``data_draws``)."""
    from vifit.data.target import DataTarget

    return not (isinstance(target, DataTarget) or getattr(target, "discrete", False))


def data_draws(target: Target, n: int) -> int:
    """Draws of q (as many widened ones) the tail check of a data target affords: 2n passes
    over its N rows within the final evaluation's row budget (``vifit.data.passes``), capped
    at ``n``; 0 when fewer than ``MIN_DATA_DRAWS`` fit (a data set of tens of millions of
    rows: the check is skipped)."""
    from vifit.data.passes import EVAL_ROW_BUDGET

    affordable = int(EVAL_ROW_BUDGET // (2 * max(target.n_rows, 1)))
    n = min(int(n), affordable)
    return n if n >= MIN_DATA_DRAWS else 0


MIN_DATA_DRAWS = 256


def widened_pool(family: Family, target: Target, params, key: jax.Array, n: int):
    """``n`` draws of q and ``n`` widened ones, as NumPy float64: z ``(2n, d)``, log q, log p
    and log m ``(2n,)``, and ``is_q (2n,)`` marking q's draws; in the blocks of
    ``vifit.result.draw_logw`` (the same compiled program as the fit's evaluation), or, for a
    data target, with log p from passes over its rows."""
    from vifit.data.target import DataTarget
    from vifit.result import draw_blocks

    if isinstance(target, DataTarget):
        return _data_widened_pool(family, target, params, key, n)
    parts = [(np.concatenate([np.asarray(z), np.asarray(far[0])]), *(
        np.asarray(a, np.float64) for a in far[1:]), np.arange(2 * z.shape[0]) < z.shape[0])
        for z, _, far in draw_blocks(family, target, params, key, n)]
    return tuple(np.concatenate(cols) for cols in zip(*parts))


def _data_widened_pool(family: Family, target, params, key: jax.Array, n: int):
    from vifit.data.passes import full_log_density

    @jax.jit
    def draw(params, key):
        z, log_q = family.sample_and_log_prob(params, key, n)
        z_far, lq_all, log_m = widen(family, params, jax.random.fold_in(key, 1), z, log_q)
        return jnp.concatenate([z, z_far]), lq_all, log_m

    z, lq, log_m = draw(params, key)
    lp = full_log_density(target, z)
    return (np.asarray(z), np.asarray(lq, np.float64), np.asarray(lp, np.float64),
            np.asarray(log_m, np.float64), np.arange(2 * n) < n)


def tail_check(family: Family, target: Target, params, key: jax.Array, n: int = 4000
               ) -> dict[str, Any]:
    """The tail check of q against p (module docstring) from ``n`` draws of q and ``n``
    widened ones (the defensive mixture's 2n). Returns a JSON-ready record: ``p_mass`` (p's
    share in A, with ``p_mass_se``), ``q_mass`` (q's, near ``TAIL_QUANTILE``), ``excess`` =
    p_mass - q_mass, ``khat`` of the weights p/m, ``usable`` (``KHAT_OK``, ``MAX_SHARE``; if
    not, the check is unreliable), ``max_weight_share``, ``log_z``/``log_z_se`` (PSIS from m,
    nats), ``draws`` (2n), ``float64`` (log p recomputed in float64 at these draws,
    ``vifit.evidence.rounding.float64_check``; for a data target at a few of q's,
    ``float64_data_check``), ``seconds`` (wall, the recomputation's included), and ``flag``:
    "ok", "light" (q's tails too light: ``excess`` at least ``EXCESS_CARE`` and ``Z_EXCESS``
    standard errors) or "inconclusive" (no such excess, but the weights p/m are not
    usable)."""
    import time

    from vifit.data.target import DataTarget
    from vifit.evidence.importance import importance_log_z, psis_weights
    from vifit.evidence.rounding import float64_check, float64_data_check

    t0 = time.perf_counter()
    z, lq, lp, log_m, is_q = widened_pool(family, target, params, key, int(n))
    lq_q = lq[is_q]
    finite_q = lq_q[np.isfinite(lq_q)]
    if finite_q.size < 2:
        return {"flag": "inconclusive", "why": "log q is not finite at q's own draws",
                "draws": int(n)}
    floor = float(np.quantile(finite_q, TAIL_QUANTILE))
    in_a = ~(lq >= floor)  # -inf and NaN log q count as far out
    logw = _log_weights(lp, log_m)
    weights, khat = psis_weights(logw)
    if weights.sum() == 0:
        return {"flag": "inconclusive", "why": "log p is not finite at any draw",
                "draws": int(n)}
    usable = (np.isfinite(khat) and khat < KHAT_OK) or (
        float(weights.max()) <= MAX_SHARE / weights.size)
    p_mass = float(weights @ in_a)
    p_se = float(np.sqrt(np.sum(weights**2 * (in_a - p_mass) ** 2)))
    # q normalized: E_m[(q/m) 1_A] is q(A) itself, with bounded terms (q/m <= 2)
    q_mass = float(np.mean(np.where(in_a, np.exp(np.minimum(lq - log_m, 50.0)), 0.0)))
    excess = p_mass - q_mass
    est = importance_log_z(logw)
    # Heavy weights p/m sit where q is too light (in A), so they make p(A) err low: an excess
    # that clears its error stands even then. Without one, heavy weights leave it open.
    if excess >= EXCESS_CARE and excess - Z_EXCESS * p_se > 0.0:
        flag = "light"
    elif not usable:
        flag = "inconclusive"
    else:
        flag = "ok"
    record = {"flag": flag, "family": _family_label(family), "p_mass": p_mass,
              "p_mass_se": p_se, "q_mass": q_mass,
              "excess": excess, "khat": float(khat), "usable": bool(usable),
              "max_weight_share": float(weights.max()), "log_z": est.log_z,
              "log_z_se": est.se, "draws": int(lq.size), "tail_quantile": TAIL_QUANTILE}
    record["float64"] = (float64_data_check(target, z, lp, log_m)
                         if isinstance(target, DataTarget) else
                         float64_check(target, z, lp, log_m))
    return {**record, "seconds": time.perf_counter() - t0}


def _family_label(family: Family) -> str:
    """The family's name, with its tail form for ``heavytail`` (what the advice depends on)."""
    form = getattr(family, "tails", None)
    return family.name if form in (None, "axes") else f"{family.name}:tails={form}"


def _heavier_advice(family: str | None, tried: list[str] | None = None) -> str:
    """What to try when q's tails are too light, given q's family (``_family_label``) and the
    heavy-tailed forms auto fitted and set aside (``tried``, names as auto's stages)."""
    if tried:
        return (f"auto fitted {' and '.join(repr(t) for t in tried)} too and kept {family!r}, "
                "whose ELBO is higher: none of these families has p's tails.")
    if family == "heavytail":
        return ("q's tails along its axes are too light still: 'heavytail:tails=radial' has one "
                "heavy tail in every direction (a multivariate t's shape).")
    if family == "heavytail:tails=radial":
        return ("even q's radial tail is too light: p's tails may lie along some axes "
                "('heavytail') or be heavier than either form has.")
    return ("q needs heavier tails (family 'heavytail': polynomial tails along each "
            "coordinate, or in every direction with 'heavytail:tails=radial').")


def _log_weights(lp: np.ndarray, log_m: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(lp) & np.isfinite(log_m), lp - log_m, -np.inf)


def defensive_pool(family: Family, target: Target, params, key: jax.Array, n: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``2n`` draws z ``(2n, d)`` of the defensive mixture (``n`` of them q's) and their log
    weights log p - log m ``(2n,)`` (-inf where either is not finite): what summaries and
    resampling use in place of q's own draws when q's tails are too light."""
    z, _, lp, log_m, _ = widened_pool(family, target, params, key, n)
    return z, _log_weights(lp, log_m)


def use_defensive(tails: dict | None) -> bool:
    """Whether summaries should use the defensive pool: q's tails were found too light and the
    weights p/m are usable (``KHAT_OK``, ``MAX_SHARE``)."""
    # A data target's summaries stay with its evaluation's draws: a defensive pool would cost
    # a pass over the rows per draw again.
    return (bool(tails) and tails.get("flag") == "light" and bool(tails.get("usable"))
            and not tails.get("data"))


def tail_verdict(tails: dict | None, label: str) -> tuple[str, str] | None:
    """The label (at most ``label``) and sentence the tail check imposes on a verdict now
    ``label``, or None when it adds nothing."""
    if not tails or tails.get("flag") in (None, "ok"):
        return None
    from vifit.evidence.importance import worse_label as worst

    if tails["flag"] == "inconclusive":
        if "khat" not in tails:
            return None
        return (worst(label, "usable with care"),
                f"The tail check (draws from q widened by Cauchy-tailed components) has "
                f"weights with k-hat {tails['khat']:.2f}, the largest carrying "
                f"{100 * tails.get('max_weight_share', float('nan')):.1f}% of their sum: p "
                "has mass far from q that even "
                "those draws cover poorly (tails heavier than Cauchy, or distant mass), so "
                "q's summaries and log Z may miss it.")
    excess = tails["excess"]
    cap = "not reliable" if excess >= EXCESS_UNRELIABLE else "usable with care"
    from vifit.evidence.importance import shortfall

    low = shortfall(tails["p_mass"])
    fix = (" summary(), sample() and to_arviz() use the widened draws, weighted toward p, "
           "instead." if use_defensive(tails) else "")
    return (worst(label, cap),
            f"q's tails are lighter than p's (or q misses a mode): draws from q widened by "
            f"Cauchy-tailed components "
            f"put {100 * tails['p_mass']:.1f}% ± {100 * tails['p_mass_se']:.1f}% of p's mass "
            f"where q puts {100 * tails['q_mass']:.1f}% (q's far tail, which q's own draws "
            f"rarely reach, so their k-hat can miss this). q's own sds and tail quantiles are "
            f"too small, and log Z from q's draws may be up to {low:.2f} nats low (the widened "
            f"draws give log Z = {tails['log_z']:.3f} ± {tails['log_z_se']:.3f});{fix} "
            f"{_heavier_advice(tails.get('family'), tails.get('tried'))}")


def with_tail_check(result, n: int | None = None):
    """``result`` (a ``FitResult``) with ``info["tails"]`` from ``tail_check`` on its q, where
    the check applies: a continuous target and a fit that did not fail. ``n``: draws of q, as
    many widened ones (default: the fit's evaluation draws, so that the check runs the
    evaluation's compiled program; for a data target, at most what ``data_draws`` affords)."""
    from dataclasses import replace

    from vifit.data.target import DataTarget

    target = result.target
    if (getattr(target, "discrete", False) or result.stop_reason in ("diverged", "non-finite")
            or not (np.isfinite(result.elbo) and np.isfinite(result.log_z))):
        return result
    n = int(n or result.evidence.n or 4000)
    if isinstance(target, DataTarget):
        n = data_draws(target, n)
        if n == 0:
            return result
    record = tail_check(result.family, target, result.params, _check_key(result), n)
    if isinstance(target, DataTarget):
        record["data"] = True
    return replace(result, info={**result.info, "tails": record})


def _check_key(result) -> jax.Array:
    """The key of ``result``'s tail check: its widened draws are the same wherever they are
    drawn again."""
    return jax.random.fold_in(jax.random.key(result.seed), 0x7A11)


# Effective draws in the far region below which ``mass_outside`` resolves no covariance there,
# only variances; with no more than MIN_OUTSIDE_ESS it resolves nothing.
MIN_OUTSIDE_ESS = 10.0


def mass_outside(result, n: int | None = None
                 ) -> tuple[float, np.ndarray, np.ndarray, float] | None:
    """Where p's mass beyond q's far tail lies: ``(share, mean (d,), cov (d, d), ess)``, p's
    share in the tail check's region A (where log q is below its 0.1% quantile), p's mean and
    covariance within A and the effective number of draws behind them, from the tail check's
    own widened draws (the same key: the same draws) weighted toward p. A diagonal covariance
    where the draws in A resolve no more (fewer than 2d effective). None for a target the
    check does not draw for (discrete, data), or where fewer than ``MIN_OUTSIDE_ESS``
    effective draws land in A: a start for a component that would cover that mass
    (``vifit.auto``)."""
    from vifit.evidence.importance import psis_weights

    target = result.target
    if not tails_apply(target):
        return None
    n = int(n or result.evidence.n or 4000)
    z, lq, lp, log_m, is_q = widened_pool(result.family, target, result.params,
                                          _check_key(result), n)
    finite_q = lq[is_q][np.isfinite(lq[is_q])]
    if finite_q.size < 2:
        return None
    in_a = ~(lq >= np.quantile(finite_q, TAIL_QUANTILE)) & np.all(np.isfinite(z), axis=1)
    weights, _ = psis_weights(_log_weights(lp, log_m))
    w = np.where(in_a, weights, 0.0)
    share = float(w.sum())
    if not share > 0.0:
        return None
    ess = share**2 / float(np.sum(w**2))
    if not ess > MIN_OUTSIDE_ESS:
        return None
    w = w / share
    zf = np.where(in_a[:, None], np.asarray(z, np.float64), 0.0)
    mean = w @ zf
    dev = zf - mean
    cov = (w[:, None] * dev).T @ dev
    if ess < 2 * z.shape[1]:
        cov = np.diag(np.diag(cov))
    return share, mean, cov, ess
