"""Benchmark: log Z error and wall time of every evidence estimator on targets with exactly
known log Z, with NumPyro's and BlackJAX Pathfinder's ELBO as peers. One table.

    PYTHONPATH=src python bench/evidence.py                 # all targets (several minutes)
    PYTHONPATH=src python bench/evidence.py funnel_10d      # some of them
    PYTHONPATH=src python bench/evidence.py --markdown      # the table as Markdown
    PYTHONPATH=src python bench/evidence.py --seed=1        # another seed for vifit.evidence

Rows per target:
- vifit: the fit (``vifit.fit(target, "auto")``, what ``vifit evidence`` does by default:
  Pathfinder, the natural-gradient full-rank Gaussian, the mode search, a mixture or a flow
  when needed), then ``vifit.evidence`` with its defaults: ELBO, IWAE-64, PSIS, AIS/SMC,
  CUBO, and "best" = the estimate vifit recommends. "kind" is the kind vifit stands behind
  (``EvidenceResult.kind``: "unverified" for a bound that fails its checks);
- numpyro: SVI with AutoMultivariateNormal and Trace_ELBO (Adam, lr 0.01, 20000 steps), then the
  ELBO from 16384 particles;
- pathfinder: BlackJAX's Pathfinder from init (L-BFGS up to 1000 iterations), its ELBO
  estimate (1000 draws).
Times are wall seconds on this machine, compilation included (noisy on a shared machine);
"fit s" is the fit, shared by the vifit rows. "within 0.1" says whether |error| < 0.1 nats.
"""

from __future__ import annotations

import os
import sys
import time

import jax

import numpy as np

import vifit
from vifit.evidence.testbeds import TESTBEDS


def vifit_rows(name, target, seed=0):
    t0 = time.perf_counter()
    fit = vifit.fit(target, "auto", seed=0, progress=False)
    fit_s = time.perf_counter() - t0
    ev = vifit.evidence(target, fit, seed=seed)
    rows = []
    for est_name, e in ev.estimates.items():
        label = est_name
        if est_name == "ais":
            label = f"{e.details['method']} ({e.details['temperatures']} temps)"
        rows.append(("vifit", label, ev.kind(est_name), e.estimate, e.se, e.seconds, fit_s))
    best = ev.estimates[ev.recommended]
    rows.append(("vifit", f"best = {ev.recommended} [{ev.verdict.label}]",
                 ev.kind(ev.recommended),
                 best.estimate, best.se, best.seconds, fit_s))
    return rows


def numpyro_row(target, steps=20_000):
    from vifit.bench.peers import log_weights, numpyro_svi

    fit = numpyro_svi(target, "AutoMultivariateNormal", steps=steps, draws=1, lr=0.01, seed=0,
                      n=16384)
    logw = log_weights(target, fit.z, fit.logq)
    return ("numpyro", "SVI Trace_ELBO (AutoMVN)", "lower", float(logw.mean()),
            float(logw.std(ddof=1) / np.sqrt(logw.size)), fit.seconds, float("nan"))


def pathfinder_row(target):
    import blackjax

    t0 = time.perf_counter()
    # maxiter raised from BlackJAX's default of 30, which stops far short on the d = 100 target.
    state, _ = blackjax.vi.pathfinder.approximate(jax.random.key(0), target.log_density,
                                                  target.init, num_samples=1000, maxiter=1000)
    elbo = float(state.elbo)
    return ("blackjax", "Pathfinder ELBO", "lower", elbo, float("nan"),
            time.perf_counter() - t0, float("nan"))


def run(names, seed=0):
    rows = []
    for name in names:
        target = TESTBEDS[name]()
        truth = float(target.exact["log_z"])
        target_rows = vifit_rows(name, target, seed)
        for peer in (numpyro_row, pathfinder_row):
            try:
                target_rows.append(peer(target))
            except Exception as exc:  # a peer failing is a result, not a crash
                target_rows.append((peer.__name__.split("_")[0], f"failed: {type(exc).__name__}",
                                    "", float("nan"), float("nan"), float("nan"), float("nan")))
        for lib, est, kind, value, se, secs, fit_s in target_rows:
            rows.append((name, truth, lib, est, kind, value - truth, se, secs, fit_s))
        print_rows(rows[-len(target_rows):], header=(len(rows) == len(target_rows)))
    return rows


COLS = ("target", "log Z", "library", "estimator", "kind", "error", "se", "s", "fit s",
        "within 0.1")


def _fmt(row):
    name, truth, lib, est, kind, err, se, secs, fit_s = row
    ok = "yes" if np.isfinite(err) and abs(err) < 0.1 else "no"
    return (name, f"{truth:.3f}", lib, est, kind, f"{err:+.3f}", f"{se:.3f}", f"{secs:.1f}",
            f"{fit_s:.1f}", ok)


def print_rows(rows, header=False):
    widths = (14, 9, 9, 34, 6, 9, 7, 7, 7, 10)
    if header:
        print(" ".join(c.ljust(w) for c, w in zip(COLS, widths)))
    for row in rows:
        print(" ".join(str(c).ljust(w) for c, w in zip(_fmt(row), widths)), flush=True)


def markdown(rows):
    lines = ["| " + " | ".join(COLS) + " |", "|" + "---|" * len(COLS)]
    lines += ["| " + " | ".join(_fmt(r)) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    if hasattr(os, "sched_setaffinity"):
        # Pathfinder's L-BFGS while-loop has hung in XLA's CPU runtime on these machines;
        # pinning to one core avoided it (see the project notes).
        os.sched_setaffinity(0, {0})
    seed = next((int(a.split("=")[1]) for a in sys.argv if a.startswith("--seed=")), 0)
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    names = args or list(TESTBEDS)
    rows = run(names, seed)
    best = [r for r in rows if r[3].startswith("best")]
    print(f"\nvifit's best estimate within 0.1 nats on {sum(abs(r[5]) < 0.1 for r in best)} of "
          f"{len(best)} targets.")
    if "--markdown" in sys.argv:
        print("\n" + markdown(rows))

