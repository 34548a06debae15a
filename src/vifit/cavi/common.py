"""What the CAVI fits share: the result record and the monotonicity check on the exact ELBO."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from vifit.errors import VifitError


class CAVIError(VifitError):
    """The exact ELBO decreased during coordinate ascent: a bug or a numerical breakdown
    (coordinate ascent on the exact ELBO can only increase it)."""


class CAVIResult(NamedTuple):
    params: dict[str, Any]  # the variational factors' parameters (numpy arrays)
    elbo: float  # the exact ELBO at the end, nats
    trace: np.ndarray  # (updates,) the exact ELBO after every coordinate update
    iters: int  # full sweeps over all factors
    converged: bool
    max_decrease: float  # largest drop of the ELBO between consecutive updates (<= rounding)
    seconds: float


def check_monotone(trace: np.ndarray, rtol: float) -> float:
    """The largest decrease in ``trace``; raise CAVIError if one exceeds rounding
    (``rtol * (1 + |ELBO|)``)."""
    trace = np.asarray(trace, dtype=np.float64)
    if not np.all(np.isfinite(trace)):
        raise CAVIError("the ELBO became non-finite during coordinate ascent; check the data "
                        "for NaN/inf and the prior for valid values.")
    drops = trace[:-1] - trace[1:]
    worst = float(drops.max()) if drops.size else 0.0
    scale = rtol * (1.0 + np.abs(trace[1:]))
    bad = np.flatnonzero(drops > scale)
    if bad.size:
        i = int(bad[0])
        raise CAVIError(f"the ELBO decreased at update {i + 1} ({trace[i]:.10g} -> "
                        f"{trace[i + 1]:.10g}); coordinate ascent cannot do that in exact "
                        "arithmetic. Run in float64 (jax.config.update('jax_enable_x64', True)) "
                        "or report the data that does this.")
    return worst


def finish_trace(pairs, tol: float, max_iters: int, rtol: float
                 ) -> tuple[np.ndarray, int, bool, float]:
    """From the ELBOs ``(max_iters, 2)`` recorded after each update of each sweep: the trace up
    to the first sweep whose gain is below ``tol * (1 + |ELBO|)`` (later sweeps repeat the fixed
    point), the sweeps run, whether it converged, and the largest decrease (``check_monotone``
    over every update of every sweep, converged or not)."""
    trace = np.asarray(pairs, dtype=np.float64).reshape(-1)
    per_sweep = trace[1::2]
    gains = np.diff(per_sweep)
    stalled = np.flatnonzero(np.abs(gains) <= tol * (1.0 + np.abs(per_sweep[1:])))
    iters = int(stalled[0]) + 2 if stalled.size else max_iters
    worst = check_monotone(trace, rtol)
    return trace[: 2 * iters], iters, bool(stalled.size), worst


def rounding_rtol(dtype) -> float:
    """Relative tolerance for a decrease that is only rounding: 1000 machine epsilons."""
    return 1000.0 * float(np.finfo(dtype).eps)
