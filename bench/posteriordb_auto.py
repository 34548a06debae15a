"""vifit's default fit (``family="auto"``) on the catalog's posteriordb models, scored on the
unconstrained scale against the long-NUTS references.

    PYTHONPATH=src python bench/posteriordb_auto.py              # every posteriordb model
    PYTHONPATH=src python bench/posteriordb_auto.py arK nes      # some
    PYTHONPATH=src python bench/posteriordb_auto.py --csv out.csv --draws 4000 --inline
    PYTHONPATH=src python bench/posteriordb_auto.py --baseline   # and compare with the
                                                  # committed bench/baselines/posteriordb_auto.csv

Per model: ``vifit.fit(catalog.get_model(name), "auto", seed=0)``, then 4000 draws of z from q
and, against the reference's mean and sd of every coordinate of z (``Reference.z_mean``,
``z_sd``), the largest |mean_q - mean| / sd and the largest |log(sd_q / sd)|; then what a user
reads, ``result.summary()`` (weighted toward p where the fit's rule says so), against the
reference's moments of the model's own parameters (the "summary()" columns); with the fit's
k-hat, verdict, the tail check's flag with p's excess mass in q's far tail (``info["tails"]``,
``vifit.evidence.tails``), the family auto chose, its stop reason and the wall seconds of the
fit (compilation included). Any catalog model with a reference can be named; those whose
reference has no unconstrained moments (horseshoe, radon, stochastic_volatility, ...) get the
summary() columns alone. Each model runs in a process of its own (memory does not grow across
models; ``--inline`` runs them in this one). Prints a markdown table and writes a CSV
(default /tmp/pdb_auto.csv). Minutes per model on one core.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The catalog's posteriordb models (vifit.catalog.posteriordb).
NAMES = ["arK", "arma11", "hmm_drive_0", "diamonds", "earn_height", "logearn_interaction",
         "garch11", "hmm_example", "lotka_volterra", "kidscore_momhsiq", "kidscore_interaction",
         "kilpisjarvi", "low_dim_gauss_mix", "logmesquite_logvas", "nes", "blr"]
COLUMNS = ["model", "d", "status", "mean_err_sd", "log_sd_err", "worst_mean", "worst_sd",
           "sum_mean_err_sd", "sum_log_sd_err", "sum_worst_mean", "sum_worst_sd", "sum_mean_se",
           "weighting", "khat", "verdict", "tails", "family", "stop_reason", "steps", "elbo",
           "seconds"]


def score(name: str, draws: int = 4000, seed: int = 0) -> dict:
    import jax
    import numpy as np

    import vifit
    from vifit import catalog

    target = catalog.get_model(name)
    ref = catalog.reference(name)
    row = {"model": name, "d": target.dim}
    raw = ref.z_mean is not None and list(ref.z_names) == list(target.param_names)
    t0 = time.perf_counter()
    try:
        result = vifit.fit(target, "auto", seed=seed, progress=False)
    except Exception as exc:  # a failure is a result here
        return row | {"status": f"error: {type(exc).__name__}: {exc}".splitlines()[0][:200],
                      "seconds": time.perf_counter() - t0}
    seconds = time.perf_counter() - t0
    auto = result.info.get("auto", {})
    tails = result.info.get("tails") or {}
    row |= {"status": "ok"} | _summary_errors(result, ref, draws, seed)
    if raw:
        z = np.asarray(result.sample_unconstrained(jax.random.key(seed + 1), draws),
                       dtype=np.float64)
        finite = np.all(np.isfinite(z), axis=1)
        z = z[finite]
        mean_err = np.abs(z.mean(axis=0) - ref.z_mean) / ref.z_sd
        log_sd_err = np.abs(np.log(z.std(axis=0, ddof=1) / ref.z_sd))
        names = target.param_names
        row |= {
            "status": "ok" if finite.all() else f"ok ({(~finite).sum()} non-finite draws dropped)",
            "mean_err_sd": float(mean_err.max()), "log_sd_err": float(log_sd_err.max()),
            "worst_mean": names[int(mean_err.argmax())],
            "worst_sd": names[int(log_sd_err.argmax())]}
    return row | {
        "tails": (f"{tails['flag']} ({100 * tails['excess']:+.2f}%)" if "excess" in tails
                  else tails.get("flag", "-")),
        "khat": float(result.khat), "verdict": result.verdict.label,
        "family": auto.get("chosen", result.family.name), "stop_reason": result.stop_reason,
        "steps": int(result.steps), "elbo": float(result.elbo), "seconds": seconds,
    }


def _summary_errors(result, ref, draws: int, seed: int) -> dict:
    """What a user reads: ``result.summary()`` (PSIS- or defensively weighted where the fit's
    rule says so) against the reference's moments of the constrained scalars: the largest
    |mean - mean_ref| / sd_ref and |log(sd / sd_ref)|, and the weighting used. Reference
    moments from NUTS carry Monte Carlo error; ``sum_mean_se`` is the largest
    mean_se / sd_ref, the floor below which an error means nothing."""
    import numpy as np

    table = result.summary(seed + 1, draws)
    index = {n: i for i, n in enumerate(ref.names)}
    keep = [n for n in table.index if n in index]
    rows = [index[n] for n in keep]
    mean_ref, sd_ref = ref.mean[rows], ref.sd[rows]
    mean_err = np.abs(table.loc[keep, "mean"].to_numpy() - mean_ref) / sd_ref
    sd_err = np.abs(np.log(table.loc[keep, "sd"].to_numpy() / sd_ref))
    return {"sum_mean_err_sd": float(mean_err.max()), "sum_log_sd_err": float(sd_err.max()),
            "sum_worst_mean": keep[int(mean_err.argmax())],
            "sum_worst_sd": keep[int(sd_err.argmax())],
            "sum_mean_se": float(np.max(ref.mean_se[rows] / sd_ref)),
            "weighting": table.attrs["weighting"]}


def _in_child(name: str, draws: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        proc = subprocess.run([sys.executable, __file__, "--child", name, str(out),
                               "--draws", str(draws)], capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
            return {"model": name, "status": f"crashed: {tail[0][:200]}"}
        return json.loads(out.read_text())


def _f(x, digits: int = 3) -> str:
    if x is None or x == "" or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"models (default: {', '.join(NAMES)})")
    ap.add_argument("--csv", type=Path, default=Path("/tmp/pdb_auto.csv"))
    ap.add_argument("--draws", type=int, default=4000)
    ap.add_argument("--inline", action="store_true", help="run every model in this process")
    ap.add_argument("--baseline", type=Path, nargs="?", const=BASELINE, default=None,
                    help="compare with a CSV of an earlier run (default: the committed "
                         f"{BASELINE.relative_to(Path(__file__).parent.parent)})")
    ap.add_argument("--child", nargs=2, metavar=("NAME", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        name, out = args.child
        Path(out).write_text(json.dumps(score(name, args.draws)))
        return 0
    rows = []
    print("| model | d | mean err / sd | \\|log sd ratio\\| | summary(): mean err / sd | "
          "\\|log sd ratio\\| | k-hat | verdict | family | stop | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.names or NAMES:
        row = score(name, args.draws) if args.inline else _in_child(name, args.draws)
        rows.append(row)
        if not str(row.get("status", "")).startswith("ok"):
            print(f"| {name} | {row.get('d', '-')} | {row['status']} |||||||", flush=True)
            continue
        print(f"| {name} | {row['d']} | {_f(row.get('mean_err_sd'))} "
              f"({row.get('worst_mean', '-')}) | {_f(row.get('log_sd_err'))} "
              f"({row.get('worst_sd', '-')}) | {_f(row['sum_mean_err_sd'])} "
              f"({row['sum_worst_mean']}) | {_f(row['sum_log_sd_err'])} ({row['sum_worst_sd']}, "
              f"{row['weighting']}) | {_f(row['khat'], 2)} | "
              f"{row['verdict']} | {row['family']} | {row['stop_reason']} | "
              f"{row['seconds']:.0f} |", flush=True)
    with open(args.csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwrote {args.csv}")
    if args.baseline is not None:
        worse = compare(rows, args.baseline)
        print(f"\nagainst {args.baseline}: " + ("no row worse" if not worse else
                                                 f"{len(worse)} worse"))
        for line in worse:
            print(f"  {line}")
        return 1 if worse else 0
    return 0


# A row is worse than its baseline where summary()'s largest mean error grew by more than
# WORSE_MEAN sds (and by half), its largest |log sd ratio| by more than WORSE_LOG_SD (and by
# half), or its verdict or status changed: a change of seed-level noise stays below these
# (the same code gives identical rows; other random paths moved them by 0.01-0.02 here).
WORSE_MEAN = 0.05
WORSE_LOG_SD = 0.05
BASELINE = Path(__file__).parent / "baselines" / "posteriordb_auto.csv"


def compare(rows: list[dict], baseline: Path) -> list[str]:
    """What got worse in ``rows`` against the CSV ``baseline`` (models in both), one line
    each. The check that catches a regression a comparison with the last run would not: the
    baseline is committed with the numbers docs/bench.md reports."""
    with open(baseline, newline="") as fh:
        old = {r["model"]: r for r in csv.DictReader(fh)}
    worse = []
    for row in rows:
        was = old.get(row["model"])
        if was is None:
            continue
        if str(row.get("status", "")).split(" ")[0] != was["status"].split(" ")[0]:
            worse.append(f"{row['model']}: status {was['status']!r} -> {row.get('status')!r}")
            continue
        if "sum_mean_err_sd" not in row:  # failed both times, as it did then
            continue
        for key, tol, what in (("sum_mean_err_sd", WORSE_MEAN, "mean error / sd"),
                               ("sum_log_sd_err", WORSE_LOG_SD, "|log sd ratio|")):
            a, b = float(was[key]), float(row[key])
            if b > a + tol and b > 1.5 * a:
                worse.append(f"{row['model']}: summary()'s {what} {a:.3g} -> {b:.3g}")
        if row["verdict"] != was["verdict"]:
            worse.append(f"{row['model']}: verdict {was['verdict']!r} -> {row['verdict']!r}")
    return worse


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
