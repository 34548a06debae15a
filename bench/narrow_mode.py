"""Benchmark: how often the mode search finds a narrow mode beside a wide one, by dimension.

The target, in d dimensions (u the unit diagonal, so the modes are 16 apart):

    p(z) = 0.2 N(z; -8u, 0.5^2 I) + 0.8 N(z; 8u, 2^2 I)      (log Z = 0)

The narrow mode is 8 of the wide one's sds away and has a quarter of its sd. Far from both the
wide component owns log p, so the narrow mode's basin is a ball about 4.5 across, which an
over-dispersed start around the wide mode seldom lands in (docs/evidence.md, "Screened
starts").

    PYTHONPATH=src python bench/narrow_mode.py search [--dims 3,4,5,6,8] [--keys 10]
    PYTHONPATH=src python bench/narrow_mode.py evidence [--dims 4,5] [--seeds 5]

The narrow component's weight and sd come from ``W_NARROW`` and ``SD_NARROW`` in the
environment (default 0.2 and 0.5; docs/evidence.md also measures 0.1 and 0.2).

``search``: ``vifit.modes.search_modes`` around the wide mode itself (its exact mean and
covariance, as a Gaussian fit on it would give), with search keys 0..keys-1: in how many the
narrow mode is among the modes found, and the median seconds of a search once compiled.

``evidence``: what a user gets: ``vifit.fit(t, "auto", seed=s)`` then ``vifit.evidence(t, fit,
seed=s)`` for s in 0..seeds-1: the fit's family, modes found, verdicts and log Z errors.
A row where a verdict is "good" and its log Z is 0.1 nats or more off is marked WRONG.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import vifit
from vifit.modes import search_modes

W_NARROW = float(os.environ.get("W_NARROW", 0.2))
SD_NARROW = float(os.environ.get("SD_NARROW", 0.5))
SD_WIDE, HALF = 2.0, 8.0


def target(d: int) -> vifit.Target:
    """The two-mode target in ``d`` dimensions (log Z = 0)."""
    u = np.ones(d) / math.sqrt(d)
    m_narrow, m_wide = jnp.asarray(-HALF * u), jnp.asarray(HALF * u)

    def log_component(z, m, sd, w):
        return (math.log(w) - 0.5 * jnp.sum((z - m) ** 2) / sd**2 - d * math.log(sd)
                - 0.5 * d * math.log(2 * math.pi))

    def log_density(z):
        return jnp.logaddexp(log_component(z, m_narrow, SD_NARROW, W_NARROW),
                             log_component(z, m_wide, SD_WIDE, 1 - W_NARROW))

    return vifit.Target(log_density, dim=d, name=f"narrow_beside_wide_{d}d",
                        exact={"log_z": 0.0})


def search_rows(dims: list[int], keys: int) -> None:
    print("| d | narrow mode found | search s (median, compiled) | screened / full climbs |")
    print("|---|---|---|---|")
    for d in dims:
        t = target(d)
        narrow = -HALF * np.ones(d) / math.sqrt(d)
        mean = jnp.asarray(HALF * np.ones(d) / math.sqrt(d), t.init.dtype)
        cov = jnp.asarray(SD_WIDE**2 * np.eye(d), t.init.dtype)
        hits, seconds = 0, []
        for k in range(keys):
            t0 = time.perf_counter()
            res = search_modes(t, mean, cov, key=jax.random.key(k))
            seconds.append(time.perf_counter() - t0)
            hits += any(np.linalg.norm(m.location - narrow) < SD_NARROW for m in res.modes)
        med = float(np.median(seconds[1:] if keys > 1 else seconds))
        print(f"| {d} | {hits} / {keys} | {med:.2f} | {res.screened} / {res.starts} |",
              flush=True)


def evidence_rows(dims: list[int], seeds: int) -> None:
    print("| d | seed | fit family | modes found | fit verdict | fit log Z err | evidence "
          "verdict | evidence log Z err | bracket | |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for d in dims:
        t = target(d)
        for s in range(seeds):
            fit = vifit.fit(t, "auto", progress=False, seed=s)
            ev = vifit.evidence(t, fit, seed=s)
            wrong = any(label == "good" and abs(err) >= 0.1 for label, err in
                        ((fit.verdict.label, fit.log_z), (ev.verdict.label, ev.log_z)))
            # a bound vifit stands behind on the wrong side of log Z = 0 beyond 4 of its
            # standard errors
            bad = [f"{n} ({e.kind})" for n, e in ev.estimates.items()
                   if ev.kind(n) in ("lower", "upper") and
                   (e.estimate - 4 * e.se > 0 if ev.kind(n) == "lower" else
                    e.estimate + 4 * e.se < 0)]
            low, up = ev.bracket["lower"], ev.bracket["upper"]
            bracket = f"({low:+.3f}, {'—' if up is None else f'{up:+.3f}'})"
            flags = (["WRONG"] if wrong else []) + [f"bound fails: {b}" for b in bad]
            print(f"| {d} | {s} | {fit.family.name} | {fit.info.get('modes', {}).get('found')} "
                  f"| {fit.verdict.label} | {fit.log_z:+.3f} | {ev.verdict.label} | "
                  f"{ev.log_z:+.3f} | {bracket} | {'; '.join(flags)} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["search", "evidence"])
    ap.add_argument("--dims", default=None, help="comma-separated dimensions")
    ap.add_argument("--keys", type=int, default=10, help="search keys per dimension")
    ap.add_argument("--seeds", type=int, default=5, help="fit seeds per dimension")
    args = ap.parse_args()
    if args.what == "search":
        search_rows([int(x) for x in (args.dims or "3,4,5,6,8").split(",")], args.keys)
    else:
        evidence_rows([int(x) for x in (args.dims or "4,5").split(",")], args.seeds)


if __name__ == "__main__":
    main()
