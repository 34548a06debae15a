"""JSON output: every writer (result.json, evidence.json, compare.json, ...) goes through here,
so that an infinite or NaN number is written as ``null`` and never as a string or a non-JSON
token."""

from __future__ import annotations

import json
from typing import Any

import numpy as np


def jsonable(x: Any) -> Any:
    """``x`` with every number a JSON number or null: inf and NaN become null (JSON has
    neither), NumPy/JAX scalars and arrays become Python numbers and lists."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, float | np.floating):
        x = float(x)
        return x if np.isfinite(x) else None  # JSON has no inf/nan: null (README, "result.json")
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray) or type(x).__module__.startswith("jax"):  # no jax import
        return jsonable(np.asarray(x).tolist())
    if isinstance(x, list):
        return [jsonable(v) for v in x]
    return x


def dumps(record: Any) -> str:
    """``record`` as strict JSON text (indent 2, trailing newline)."""
    return json.dumps(jsonable(record), indent=2, allow_nan=False) + "\n"
