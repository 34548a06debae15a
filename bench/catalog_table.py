"""Merge `vifit bench` runs over the catalog into one table, with time to accuracy recomputed
against the bar of all merged rows (the best final ELBO on each model minus 0.1 nats), and
the summary the issue asks for: `auto` against the best fixed vifit choice and the peers.

    PYTHONPATH=src python bench/catalog_table.py RUN_DIR [RUN_DIR ...] [--accuracy 0.1]

Each RUN_DIR holds a bench.csv written by `vifit bench --out RUN_DIR` (with training curves).
The runs behind docs/bench.md ("Families and optimizers on the whole catalog"):

    vifit bench --families meanfield,fullrank,lowrank,mixture,realnvp,spline,auto \\
        --estimators default --optimizers adam --out runs/families
    vifit bench --families fullrank,meanfield --estimators default \\
        --optimizers natgrad,lbfgs-fixed,pathfinder --peers none --out runs/optimizers
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from vifit.bench.report import label, read_csv
from vifit.bench.runner import time_to_accuracy


def _f(x: float, digits: int = 2) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "-"
    if x == math.inf:
        return "never"
    return f"{x:.{digits}g}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--accuracy", type=float, default=0.1)
    args = ap.parse_args()
    by_model: dict[str, list] = {}
    for run in args.runs:
        for row in read_csv(run / "bench.csv"):
            by_model.setdefault(row.model, []).append(row)
    print("| model | method | mean err/sd | \\|log sd ratio\\| | k-hat | ELBO | s to bar | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for model, rows in by_model.items():
        bar = time_to_accuracy(rows, args.accuracy)
        for r in rows:
            if r.status != "ok":
                print(f"| {model} | {label(r)} | {r.status.splitlines()[0][:60]} ||||||")
                continue
            print(f"| {model} | {label(r)} | {_f(r.mean_err)} | {_f(r.log_sd_err)} | "
                  f"{_f(r.khat)} | {r.elbo:.2f} | {_f(r.tta)} | {r.seconds:.1f} |")
        ok = [r for r in rows if r.status == "ok" and math.isfinite(r.elbo)]
        auto = next((r for r in ok if r.family == "auto"), None)
        fixed = [r for r in ok if r.method == "vifit" and r.family != "auto"]
        best = max(fixed, key=lambda r: r.elbo) if fixed else None
        fastest = min(fixed, key=lambda r: r.tta) if fixed else None
        peers = [r for r in ok if r.method != "vifit"]
        peer = max(peers, key=lambda r: r.elbo) if peers else None
        summary.append((model, bar, auto, best, fastest, peer))

    def cell(r) -> str:
        if r is None:
            return "-"
        return (f"{label(r)}: {r.elbo:.2f}, {_f(r.mean_err)} / {_f(r.log_sd_err)}, "
                f"{_f(r.tta)} s")

    print("\nauto against the best fixed vifit choice (highest ELBO), the fastest to the bar, "
          "and the best peer; each cell: ELBO, mean err/sd / |log sd ratio|, s to the bar")
    print("| model | bar | auto | best fixed | fastest fixed | best peer |")
    print("|---|---|---|---|---|---|")
    for model, bar, auto, best, fastest, peer in summary:
        print(f"| {model} | {bar:.2f} | {cell(auto)} | {cell(best)} | {cell(fastest)} | "
              f"{cell(peer)} |")


if __name__ == "__main__":
    main()
