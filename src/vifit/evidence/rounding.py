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
# Put between the rounding sentence and the rest of a verdict, which reads the rounded values.
ROUNDED_CHECKS = "The other checks read those rounded values:"


def mean_size(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
    """Mean of |log p| + |log q| over the draws where both are finite (traceable)."""
    finite = jnp.isfinite(log_p) & jnp.isfinite(log_q)
    size = jnp.where(finite, jnp.abs(log_p) + jnp.abs(log_q), 0.0)
    return jnp.sum(size) / jnp.maximum(jnp.sum(finite), 1)


def rounding_record(size: float, dtype, chunks: int = 1) -> dict:
    """The rounding of log weights whose log p and log q have mean size ``size`` (nats),
    computed in ``dtype``, as ``chunks`` partial sums added in float64:
    ``{"se": nats, "log_p_size": size, "dtype": name}``."""
    eps = float(np.finfo(np.dtype(dtype)).eps)
    se = ROUNDING_ULPS * eps * (1.0 + float(size)) / math.sqrt(max(int(chunks), 1))
    return {"se": se, "log_p_size": float(size), "dtype": np.dtype(dtype).name}


def rounding_of_logw(logw: np.ndarray, dtype, chunks: int = 1) -> dict:
    """``rounding_record`` of log weights ``logw (n,)`` computed in ``dtype``: their size
    stands in for |log p| (where log p is large enough for rounding to matter, log q is small
    beside it)."""
    lw = np.asarray(logw, dtype=np.float64)
    finite = lw[np.isfinite(lw)]
    return rounding_record(float(np.mean(np.abs(finite))) if finite.size else 0.0, dtype,
                           chunks)


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
    if se >= ROUNDING_CARE:
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
