"""Benchmark: auto on a plain ``vifit.Target`` whose log p is costly (a logistic regression
over N rows written as one closure, not a ``DataTarget``): the fit, the mode search (cut to its
budget, ``vifit.modes.SEARCH_FLOPS``, when one gradient costs too much) and the total.

    PYTHONPATH=src python bench/costly_logp.py [--rows 20000] [--dim 5] [--seed 0]

Prints one row: rows, d, one gradient's flops (XLA's cost analysis), whether the search was
reduced (or skipped: even its smallest would overrun ``SKIP_FACTOR`` budgets) and its climbs, the family and verdict auto ends with, and wall seconds: total, the
search, the chosen fit's loop. Compare a tree before 2026-12-06 for the search without budget.
"""

from __future__ import annotations

import argparse
import time

import jax.numpy as jnp
import numpy as np

import vifit
from vifit.modes import gradient_flops


def logistic_target(rows: int, dim: int, seed: int) -> vifit.Target:
    """Logistic regression with a N(0, I) prior, data from a N(0, I) weight vector."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, dim)).astype(np.float32)
    w = rng.normal(size=dim)
    y = (rng.uniform(size=rows) < 1.0 / (1.0 + np.exp(-x @ w))).astype(np.float32)
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def log_density(z):
        eta = xj @ z
        return jnp.sum(yj * eta - jnp.logaddexp(0.0, eta)) - 0.5 * jnp.sum(z**2)

    return vifit.Target(log_density, dim=dim, name=f"logistic_{rows}x{dim}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    target = logistic_target(args.rows, args.dim, args.seed)
    t0 = time.perf_counter()
    res = vifit.fit(target, "auto", progress=False, seed=0)
    total = time.perf_counter() - t0
    modes = res.info.get("modes", {})
    search = next((r["seconds"] for r in res.info["auto"]["decisions"]
                   if r["stage"] == "mode search"), float("nan"))
    print("| rows | d | flops / gradient | search reduced | climbs | family | verdict | total s "
          "| search s | chosen fit loop s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    flops = gradient_flops(target.log_density, args.dim, "float32")
    cut = modes.get("reduced", "skipped") if modes else "skipped"
    print(f"| {args.rows:,} | {args.dim} | {flops:.3g} | "
          f"{cut} | {modes.get('starts', 0)} | {res.family.name} | "
          f"{res.verdict.label} | {total:.1f} | {search:.1f} | {res.seconds:.1f} |")


if __name__ == "__main__":
    main()
