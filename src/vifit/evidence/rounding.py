"""How finely floating point resolves log p, and what that does to log Z.

A log weight ``log p(z) - log q(z)`` is the difference of two sums of many rounded terms. Its
error does not average out over draws (nearby draws round the same terms alike), so it floors
every standard error computed from the weights, and where log p is large it decides what any
estimate can mean: a log density of size 3e7 is resolved by float32 only to 2 nats, and on a
2-D Gaussian offset by -3e7 every estimate of log Z (AIS's with a standard error of 0.000)
read "good" while 0.5 to 1.5 nats off, and the ELBO sat above log Z.

The floor is ``ROUNDING_ULPS`` ulps of the mean size of |log p| + |log q| over finite draws
(in the dtype log p is computed in); a sum accumulated in float64 over ``chunks`` independently
rounded float32 partial sums (a data target's evaluation) has ``1/sqrt(chunks)`` of it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from vifit.freshness import kept

# Ulps of |log p| + |log q| by which a log weight may be off. Without this floor a q equal to p
# in float32 reports log Z to 1e-8 while its log p is off by 4e-7 (a mixture with log Z = 9.6).
ROUNDING_ULPS = 4.0
# Rounding floors (nats) from which a verdict is at best "usable with care" (the 0.1-nat
# accuracy every verdict speaks to is no longer resolved), and "not reliable" (the weights
# themselves are noise of a nat or more: k-hat, the weighted summaries and every bound lose
# their meaning).
ROUNDING_CARE, ROUNDING_UNRELIABLE = 0.1, 1.0
# A float step of half q's sd or more in a coordinate: q cannot be represented there (its
# draws take a handful of values), whatever k-hat reads. On N(1e4, 1e-4^2) per coordinate in
# float32 (steps of 1e-3) the fit's q came out 8 times too wide with k-hat -0.1: nearly every
# draw rounded to the mean.
STEP_UNRELIABLE = 0.5
# log p's sd across q's draws from which its size is not an offset to subtract: q is not where
# p's mass is (under a q near p, log p varies by a few nats, about sqrt(d / 2)). A product of
# log-gammas in d = 20 with a coordinate of scale 0.08 had log p = -2e36 at the start; the fit
# never left that slope (log p's sd across q's draws 1e35), and the advice to subtract a
# constant near 4e36 could not have helped (bench/random_targets.py --products, seed 30).
OFF_BULK_SPREAD, OFF_BULK_SHARE = 100.0, 0.01
# Put between the rounding sentence and the rest of a verdict, which reads the rounded values.
ROUNDED_CHECKS = "The other checks read those rounded values:"


def mean_size(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
    """Mean of |log p| + |log q| over the draws where both are finite (traceable)."""
    finite = jnp.isfinite(log_p) & jnp.isfinite(log_q)
    size = jnp.where(finite, jnp.abs(log_p) + jnp.abs(log_q), 0.0)
    return jnp.sum(size) / jnp.maximum(jnp.sum(finite), 1)


def rounding_record(size: float, dtype, chunks: int = 1, spread: float | None = None) -> dict:
    """The rounding of log weights whose log p and log q have mean size ``size`` (nats),
    computed in ``dtype``, as ``chunks`` partial sums added in float64:
    ``{"se": nats, "log_p_size": size, "dtype": name}``, and ``"log_w_spread"``: the log
    weights' sd across the draws, where given."""
    eps = float(np.finfo(np.dtype(dtype)).eps)
    se = ROUNDING_ULPS * eps * (1.0 + float(size)) / math.sqrt(max(int(chunks), 1))
    rec = {"se": se, "log_p_size": float(size), "dtype": np.dtype(dtype).name}
    if spread is not None:
        rec["log_w_spread"] = float(spread)
    return rec


def log_w_spread(logw: np.ndarray) -> float:
    """The sd of the finite log weights ``logw (n,)`` (0 where fewer than two are finite)."""
    finite = np.asarray(logw, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(np.std(finite)) if finite.size > 1 else 0.0


def off_bulk(record: dict | None) -> bool:
    """q's draws are not where p's mass is: the log weights vary by ``OFF_BULK_SPREAD`` nats
    or more and by ``OFF_BULK_SHARE`` of log p's size, so that size is no offset."""
    spread = float((record or {}).get("log_w_spread", 0.0))
    return spread >= max(OFF_BULK_SPREAD,
                         OFF_BULK_SHARE * float((record or {}).get("log_p_size", 0.0)))


def rounding_of_logw(logw: np.ndarray, dtype, chunks: int = 1) -> dict:
    """``rounding_record`` of log weights ``logw (n,)`` computed in ``dtype``: their size
    stands in for |log p| (where log p is large enough for rounding to matter, log q is small
    beside it)."""
    lw = np.asarray(logw, dtype=np.float64)
    finite = lw[np.isfinite(lw)]
    return rounding_record(float(np.mean(np.abs(finite))) if finite.size else 0.0, dtype,
                           chunks, log_w_spread(lw))


def coordinate_rounding(z: np.ndarray, dtype, names=None) -> dict:
    """How finely ``dtype`` resolves q's draws ``z (n, d)``: per coordinate, the step
    ``h_i = eps |mean_i|`` between neighbouring values near q's mean against q's sd ``s_i``.
    Rounding z by up to h/2 moves log p by about ``(z - mu) delta / s^2``, noise of sd
    ``sqrt(sum_i (h_i / s_i)^2 / 12)`` nats per draw (``"z_noise"``); where a step reaches
    half of q's sd (the largest ``h_i / s_i``, ``"z_step_ratio"``, from ``STEP_UNRELIABLE``), q
    itself cannot be represented (a N(1e6, 0.01^2) in float32, steps of 0.06: the fit read a
    sd of 2e-6 and log Z 1.7 nats off). With the worst coordinate (``"z_worst"``)."""
    x = np.asarray(z, dtype=np.float64)
    x = x[np.all(np.isfinite(x), axis=1)]
    if x.shape[0] < 2 or not np.issubdtype(np.dtype(dtype), np.floating):
        return {"z_noise": 0.0}
    mean, sd = x.mean(0), x.std(0, ddof=1)
    step = float(np.finfo(np.dtype(dtype)).eps) * np.abs(mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sd > 0, step / sd, np.where(step > 0, np.inf, 0.0))
    worst = int(np.argmax(ratio))
    name = str(names[worst]) if names is not None and worst < len(names) else f"z[{worst}]"
    return {"z_noise": float(np.sqrt(np.sum(ratio ** 2) / 12.0)),
            "z_step_ratio": float(ratio[worst]),
            "z_worst": {"name": name, "size": float(abs(mean[worst])),
                        "sd": float(sd[worst]), "step": float(step[worst])}}


def floored(se: float, rounding: float) -> float:
    """A Monte Carlo standard error with the rounding floor added in quadrature."""
    return math.hypot(se, rounding)


def unresolved(record: dict | None) -> bool:
    """Rounding makes the answer meaningless: log p's floor or the draws' noise reaches
    ``ROUNDING_UNRELIABLE`` nats, or a float step reaches ``STEP_UNRELIABLE`` of q's sd."""
    if not record:
        return False
    return (max(float(record.get("se", 0.0)), float(record.get("z_noise", 0.0)))
            >= ROUNDING_UNRELIABLE or float(record.get("z_step_ratio", 0.0)) >= STEP_UNRELIABLE)


def rounding_verdict(record: dict | None, label: str) -> tuple[str, str] | None:
    """The label (at most ``label``) and sentence that a rounding record imposes on a verdict,
    or None when both its parts, the floor on log p (``"se"``) and the noise from rounding z
    (``"z_noise"``), are below ``ROUNDING_CARE``."""
    if not record:
        return None
    se, noise = float(record.get("se", 0.0)), float(record.get("z_noise", 0.0))
    if not max(se, noise) >= ROUNDING_CARE:
        return None
    from vifit.evidence.importance import worse_label

    cap = worse_label(label, "not reliable" if unresolved(record) else "usable with care")
    dtype = record.get("dtype", "float32")
    parts = []
    if se >= ROUNDING_CARE:
        size = record.get("log_p_size", float("nan"))
        parts.append(f"log p is about {size:.3g} in size, which {dtype} resolves only to steps "
                     f"of {_step(size, dtype):.2g}: the ELBO, log Z and the importance weights "
                     f"carry rounding errors of about {se:.2g} nats (included in their "
                     "standard errors)")
    if noise >= ROUNDING_CARE:
        w = record["z_worst"]
        head = (f"{w['name']} is about {w['size']:.3g} in size, and {dtype} resolves it only "
                f"to steps of {_step(w['size'], dtype):.2g}: ")
        parts.append(head + (f"with a sd of {w['sd']:.2g} under q, rounding the draws moves "
                             f"log p by about {noise:.2g} nats per draw" if np.isfinite(noise)
                             else "q's draws of it all round to one value"))
    consequence = ("q, its importance weights, k-hat, the weighted summaries and every bound "
                   "mean little" if cap == "not reliable" else
                   "log Z and the summaries are not resolved to the accuracy a \"good\" "
                   "verdict speaks to")
    fix = ("compute in float64 (jax.config.update(\"jax_enable_x64\", True) before building "
           "the target, with float64 data and start)" if dtype != "float64" else "rescale")
    if se >= ROUNDING_CARE and off_bulk(record):
        parts[0] += (f", and it varies by {record['log_w_spread']:.2g} nats (sd) across q's "
                     "draws, where near p's mass it varies by a few: q has not reached p's "
                     "mass (a start on a slope too steep for the fit to leave, or parameters "
                     "of very different scales)")
        fix = ("give a start near p's mode (init=...) or rescale the parameters to similar "
               "scales; if log p is still that large there, " + fix)
    elif se >= ROUNDING_CARE:
        fix += f", or subtract a constant near {-record.get('log_p_size', 0.0):.4g} from log p"
    if noise >= ROUNDING_CARE:
        fix += (", or centre and scale the parameters (fit (x - c) / s for a c near q's "
                "mean and an s near its sd)")
    return cap, "; ".join(parts) + f"; so {consequence}. To fix it, {fix}."


def _step(size: float, dtype: str) -> float:
    """The spacing of ``dtype`` values near ``size``."""
    if not np.isfinite(size):
        return float("nan")
    return float(np.spacing(np.asarray(abs(size), dtype=np.dtype(dtype))))


# log p recomputed in float64. The floor above is an allowance from log p's size; it cannot see
# a cancellation inside log p, where float32 is wrong by far more than its ulps. NumPyro's
# stick-breaking of a Dirichlet(3.25, 0.25, 0.11) in float32 rounds 1 - sigmoid(z) so that
# beyond z_2 = 16 log p falls by a nat per unit instead of 0.11: 10% of p's mass is gone, and
# the fit read "good" with log Z 0.107 nats low against the model's exact log Z, right for the
# float32 density it was given (bench/random_targets.py --models, seed 22). Recomputing log p in
# float64 at the tail check's draws (q's and the Cauchy-widened ones, which reach where q does
# not) measures what float32 changed: log Z moves by the log of the mean of p64/p32 under the
# weights p32/m. From FLOAT64_CARE nats (half of the 0.1 a "good" log Z promises) and
# FLOAT64_Z standard errors, a verdict is at best "usable with care"; never "not reliable" on
# this alone, because a large log p's float32 sum can move log Z by a constant that leaves the
# summaries as they are.
FLOAT64_CARE, FLOAT64_Z = 0.05, 4.0
# A change of log p whose sd under p is at most this share of the shift is an offset: log Z
# moves, q's shape does not. An sd of ROUNDING_CARE or more is noise in every weight (k-hat,
# PSIS and the summaries read it) whatever the shift, judged from FLOAT64_MIN_ESS draws.
OFFSET_SPREAD, FLOAT64_MIN_ESS = 0.25, 8.0
FLOAT64_BLOCK = 1024


def float64_check(target, z: np.ndarray, log_p: np.ndarray, log_m: np.ndarray) -> dict | None:
    """log p recomputed in float64 at draws ``z (n, d)`` of a defensive mixture with log
    density ``log_m (n,)``, whose float32 values are ``log_p (n,)``: ``{"shift": nats,
    "shift_se", "log_z_float64", "flag": bool, "lost_draws", "max_change", "spread",
    "draws"}``, where ``shift`` is log Z from float64 log p less log Z from float32 log p on
    the same draws, ``lost_draws`` the draws where only float64 log p is finite,
    ``max_change`` the largest |log p64 - log p32| where both are and ``spread`` its sd under
    p there. None where log p is float64 already, does not compute in float64 (returns
    another dtype, or raises), or no draw has a finite weight."""
    from vifit.arrays import on_device
    from vifit.blocks import in_blocks

    if np.dtype(target.init.dtype) == np.float64 or z.shape[0] == 0:
        return None
    try:
        with jax.enable_x64(True):
            spec = jax.ShapeDtypeStruct((target.dim,), jnp.float64)
            if jax.eval_shape(target.log_density, spec).dtype != jnp.float64:
                return None  # log p rounds to float32 itself
            program = _batch_float64(target.log_density)
            (lp64,) = in_blocks(lambda block: program(on_device(block, np.float64)),
                                (np.asarray(z, np.float64),), FLOAT64_BLOCK)
    except Exception:  # noqa: BLE001 - a log p written for float32 may refuse float64
        return None
    rec = _shift_record(log_p, lp64, log_m)
    if rec is None:
        return None
    # no wall time of its own: the tail check's "seconds" includes it, and a resumed fit's
    # record must equal an uninterrupted one's
    return {**rec, "draws": int(z.shape[0])}


def _shift_record(log_p, lp64, log_m) -> dict | None:
    """``shift`` (log Z from float64 log p ``lp64`` less log Z from float32 ``log_p``, over
    the same draws weighted by 1/m), its standard error and the rest of ``float64_check``'s
    record; None where no draw has a finite weight."""
    from vifit.evidence.importance import importance_log_z

    lp32, lp64, log_m = (np.asarray(a, np.float64) for a in (log_p, lp64, log_m))
    ok_m = np.isfinite(log_m)
    lw32 = np.where(np.isfinite(lp32) & ok_m, lp32 - log_m, -np.inf)
    lw64 = np.where(np.isfinite(lp64) & ok_m, lp64 - log_m, -np.inf)
    top = max(lw32.max(), lw64.max())
    if not (np.isfinite(top) and np.isfinite(lw32).any() and np.isfinite(lw64).any()):
        return None
    r, s = np.exp(lw64 - top), np.exp(lw32 - top)
    shift = float(np.log(r.mean()) - np.log(s.mean()))
    # paired draws: the delta method on log mean(r) - log mean(s)
    shift_se = float(np.std(r / r.mean() - s / s.mean(), ddof=1) / math.sqrt(r.size))
    both = np.isfinite(lp32) & np.isfinite(lp64)
    change = lp64[both] - lp32[both]
    # the change's sd under p (weights p32/m): far draws of no weight, where float32 may
    # overflow, do not count
    w = s[both] / max(s[both].sum(), np.finfo(float).tiny)
    spread = float(np.sqrt(w @ (change - w @ change) ** 2)) if change.size > 1 else 0.0
    ess = 1.0 / max(float(w @ w), np.finfo(float).tiny)
    flag = ((abs(shift) >= FLOAT64_CARE and abs(shift) - FLOAT64_Z * shift_se > 0.0)
            or (spread >= ROUNDING_CARE and ess >= FLOAT64_MIN_ESS))
    return {"shift": shift, "shift_se": shift_se,
            "log_z_float64": importance_log_z(lw64).log_z, "flag": bool(flag),
            "lost_draws": int(np.sum(np.isfinite(lp64) & ~np.isfinite(lp32))),
            "max_change": float(np.max(np.abs(change), initial=0.0)), "spread": spread}


@kept(8)
def _batch_float64(log_density):
    return jax.jit(jax.vmap(log_density))


def float64_verdict(record: dict | None, label: str) -> tuple[str, str] | None:
    """The label (at most ``label``, never below "usable with care") and sentence that the
    float64 recomputation (``float64_check``) imposes on a verdict, or None where it found
    float32 close enough."""
    if not record or not record.get("flag"):
        return None
    from vifit.evidence.importance import worse_label

    shift = float(record["shift"])
    spread = float(record.get("spread", math.inf))
    if spread <= OFFSET_SPREAD * abs(shift):
        where = ("float32 errs by nearly the same amount at every draw (as when float32 "
                 "rounds the same terms alike in every row, e.g. gammaln of float32 counts), "
                 "so log Z is off by that while q and the summaries barely change")
    else:
        where = (f"the change varies from draw to draw (sd {spread:.2g} nats under p): "
                 "float32 loses or misplaces mass (a cancellation such as 1 - sigmoid(z) "
                 "that rounds away, or a log p too large for float32 to resolve), so q, its "
                 "weights and the summaries are those of the float32 density")
    part = ("" if record.get("wholly", True) else "; float32 parts of log p remain in that "
            "recomputation (data it closes over), so the change may be larger")
    return (worse_label(label, "usable with care"),
            f"log p recomputed in float64 at {record.get('draws', 'the')} of the tail "
            f"check's draws moves log Z by {shift:+.3f} ± {record['shift_se']:.3f} nats (to "
            f"{record['log_z_float64']:.3f}; log p changed by up to "
            f"{record['max_change']:.3g} nats at a draw{part}): {where}. To fit the model's "
            "own density, compute in float64 (jax.config.update(\"jax_enable_x64\", True) "
            "before building the target, with float64 data).")


def float64_unverified(record: dict | None) -> tuple[str, str] | None:
    """The kind of bound (``"upper"`` or ``"lower"``) that the float64 recomputation
    (``float64_check``) takes from vifit's backing, and why, or None: float32 log p that holds
    less mass than float64's can put an upper bound below the model's log Z, one that holds
    more a lower bound above it."""
    if not record or not record.get("flag"):
        return None
    kind = "upper" if record["shift"] > 0 else "lower"
    return kind, (f"log p in float64 moves log Z by {record['shift']:+.3f} nats: a float32 "
                  f"{kind} bound need not bound the model's log Z")


def wholly_float64(fn, *args) -> bool:
    """Whether ``fn(*args)``, traced under ``jax.enable_x64`` with ``args`` (float64 where
    floating), computes every value in 64-bit: no float32 constant or intermediate anywhere in
    its program. A log p that closes over float32 data keeps them float32 there (a Poisson
    model's ``gammaln(y + 1)``), and its rounding is then not what float64 would measure.
    False where it does not trace."""
    try:
        with jax.enable_x64(True):
            closed = jax.make_jaxpr(fn)(*args)
    except Exception:  # noqa: BLE001 - a function written for float32 may refuse float64
        return False
    return not _has_float32(closed.jaxpr) and not any(
        getattr(c, "dtype", None) == np.float32 for c in closed.consts)


def _has_float32(jaxpr) -> bool:
    def narrow(var) -> bool:
        aval = getattr(var, "aval", None)
        return getattr(aval, "dtype", None) in (np.float32, np.float16, jnp.bfloat16)

    for eqn in jaxpr.eqns:
        if any(narrow(v) for v in (*eqn.invars, *eqn.outvars)):
            return True
        for sub in _sub_jaxprs(eqn.params.values()):
            if _has_float32(sub):
                return True
    return any(narrow(v) for v in (*jaxpr.invars, *jaxpr.constvars))


def _sub_jaxprs(values):
    for value in values:
        if hasattr(value, "eqns"):
            yield value
        elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
            yield value.jaxpr
        elif isinstance(value, (tuple, list)):
            yield from _sub_jaxprs(value)


# Draws of q at which a data target's log p is recomputed in float64: each is a pass over the
# rows, so a few dozen (the shift is a constant where float32 errs in the data's own terms,
# as gammaln of counts does), within a share of the evaluation's row budget.
FLOAT64_DATA_DRAWS, FLOAT64_DATA_SHARE = 64, 0.05


def float64_data_check(target, z: np.ndarray, log_p: np.ndarray, log_m: np.ndarray
                       ) -> dict | None:
    """``float64_check`` for a ``vifit.DataTarget``: log p recomputed in float64 (its floating
    data cast, a pass over the rows per draw) at the first ``FLOAT64_DATA_DRAWS`` of ``z``
    (q's own), with ``"wholly"``: whether that recomputation is float64 throughout
    (``wholly_float64``). None where log p is float64 already or no draw is affordable."""
    from vifit.data.passes import EVAL_ROW_BUDGET, full_log_density

    if np.dtype(target.init.dtype) == np.float64:
        return None
    k = min(FLOAT64_DATA_DRAWS, z.shape[0],
            int(FLOAT64_DATA_SHARE * EVAL_ROW_BUDGET // max(target.n_rows, 1)))
    if k < 8:
        return None
    wholly = data_wholly_float64(target)
    try:
        lp64 = full_log_density(target, np.asarray(z[:k], np.float64), float64=True)
    except Exception:  # noqa: BLE001 - as float64_check
        return None
    rec = _shift_record(np.asarray(log_p[:k]), lp64, np.asarray(log_m[:k]))
    if rec is None:
        return None
    return {**rec, "wholly": bool(wholly), "draws": k}


def data_wholly_float64(target) -> bool:
    """``wholly_float64`` for a data target's ``log_lik`` on one row, its floating data cast
    to float64 as ``float64_data_check`` casts them."""
    from vifit.data.passes import host_rows

    cached = getattr(target, "_wholly_float64", None)  # a fit asks twice (floor, check)
    if cached is None:
        one = jax.tree.map(lambda a: host_rows(a[:1], True), target.data)
        cached = target._wholly_float64 = wholly_float64(target.log_lik, np.zeros(target.dim),
                                                         one)
    return cached

