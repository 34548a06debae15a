"""Benchmark: ``family="auto"`` on Gaussian targets above d = 200, where its Gaussian stage used
to be Pathfinder then Adam and is now natural gradient wherever its Hessians fit the budget
(``vifit.auto.NATGRAD_FLOPS``; docs/families.md, "Choosing for you").

    PYTHONPATH=src python bench/high_dim_auto.py [--dims 300,500,1000] [--markdown]

Each target is N(m, S) with S = Q diag(logspace(-a, a, d)) Q^T (Q a random rotation, condition
number 1e2a; a = 1.5 in d = 300, else 1), m standard normal, log Z exact. Printed: the
optimizer of the Gaussian stage, the chosen family, verdict, log Z error, ELBO gap and wall
seconds.
"""

from __future__ import annotations

import argparse
import time

import jax.numpy as jnp
import numpy as np

import vifit


def target(d: int) -> tuple[vifit.Target, float]:
    rng = np.random.default_rng(0)
    rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a = 1.5 if d == 300 else 1.0
    cov = (rot * np.logspace(-a, a, d)) @ rot.T
    prec, mean = jnp.asarray(np.linalg.inv(cov)), jnp.asarray(rng.normal(size=d))
    log_z = 0.5 * np.linalg.slogdet(2 * np.pi * cov)[1]
    return vifit.Target(lambda z: -0.5 * (z - mean) @ prec @ (z - mean), dim=d,
                        name=f"gauss{d}"), float(log_z)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", default="300,500,1000")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    cols = ["d", "gaussian stage", "chose", "verdict", "log Z err", "log Z - ELBO", "s"]
    if args.markdown:
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for d in (int(x) for x in args.dims.split(",")):
        t, log_z = target(d)
        t0 = time.perf_counter()
        fit = vifit.fit(t, "auto", seed=0, progress=False)
        rows = {r["stage"]: r for r in fit.info["auto"]["decisions"]}
        cells = [d, rows["fullrank"].get("optimizer"), fit.family.name, fit.verdict.label,
                 f"{fit.log_z - log_z:+.3f}", f"{log_z - fit.elbo:.3f}",
                 f"{time.perf_counter() - t0:.1f}"]
        print(("| " + " | ".join(map(str, cells)) + " |") if args.markdown
              else "  ".join(map(str, cells)), flush=True)


if __name__ == "__main__":
    main()
