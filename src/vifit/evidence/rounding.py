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


def floored(se: float, rounding: float) -> float:
    """A Monte Carlo standard error with the rounding floor added in quadrature."""
    return math.hypot(se, rounding)


def rounding_verdict(record: dict | None, label: str) -> tuple[str, str] | None:
    """The label (at most ``label``) and sentence that a rounding record imposes on a verdict,
    or None when rounding is below ``ROUNDING_CARE``."""
    if not record or not record.get("se", 0.0) >= ROUNDING_CARE:
        return None
    order = ("good", "usable with care", "not reliable", "failed")
    cap = "not reliable" if record["se"] >= ROUNDING_UNRELIABLE else "usable with care"
    if order.index(label) >= order.index(cap):
        cap = label
    size, dtype = record.get("log_p_size", float("nan")), record.get("dtype", "float32")
    ulp = float(np.spacing(np.asarray(size, dtype=np.dtype(dtype)))) if np.isfinite(size) \
        else float("nan")
    fix = ("compute log p in float64 (jax.config.update(\"jax_enable_x64\", True) before "
           "building the target, with float64 data and start) or subtract a constant near "
           f"{-size:.4g} from log p (log Z shifts by the same constant)"
           if dtype != "float64" else "subtract a constant from log p (log Z shifts by it)")
    consequence = ("the importance weights are mostly rounding noise, so k-hat, the weighted "
                   "summaries and every bound mean little" if cap == "not reliable" else
                   "log Z is not resolved to the 0.1 nats a \"good\" verdict speaks to")
    return cap, (f"log p is about {size:.3g} in size, which {dtype} resolves only to steps of "
                 f"{ulp:.2g}: the ELBO, log Z and the importance weights carry rounding errors "
                 f"of about {record['se']:.2g} nats (included in their standard errors), and "
                 f"{consequence}. To fix it, {fix}.")
