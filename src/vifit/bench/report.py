"""Bench outputs: a CSV of every row, a markdown report with the table, and a plot."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vifit.bench.runner import BenchConfig, Row

COLUMNS = ["model", "dim", "method", "family", "estimator", "optimizer", "objective", "status",
           "mean_err", "log_sd_err", "log_z", "log_z_err", "khat", "seconds", "steps",
           "stop_reason", "worst", "elbo", "elbo_se", "tta", "z_mean_err", "z_sd_err", "z_pass",
           "zw_mean_err", "zw_sd_err", "zw_pass", "curve"]


def label(row: Row) -> str:
    """The method as one short string: ``fullrank/stl`` or ``numpyro.AutoNormal``."""
    if row.method != "vifit":
        return row.method
    parts = [row.family, row.estimator]
    if row.optimizer not in ("", "adam"):
        parts.append(row.optimizer)
    if row.objective not in ("", "elbo"):
        parts.append(row.objective)
    return "/".join(parts)


def fmt(x: float, digits: int = 3) -> str:
    if isinstance(x, float) and not math.isfinite(x):
        return "-" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def table_rows(rows: Sequence[Row]) -> list[list[str]]:
    """The printed table: one line per fit, numbers rounded, failures spelled out."""
    out = []
    for r in rows:
        if r.status != "ok":
            out.append([r.model, label(r)] + ["-"] * 8 + [r.status.splitlines()[0][:90]])
            continue
        tta = ("never" if r.tta == np.inf else fmt(r.tta, 2) if np.isfinite(r.tta) else "-")
        out.append([r.model, label(r), fmt(r.mean_err, 2), fmt(r.log_sd_err, 2),
                    fmt(r.log_z_err, 2), fmt(r.khat, 2), f"{r.elbo:.3f}", tta,
                    f"{r.seconds:.1f}", str(r.steps), r.stop_reason])
    return out


HEADER = ["model", "method", "mean err/sd", "|log sd ratio|", "log Z err", "k-hat", "ELBO",
          "s to ELBO bar", "wall s", "steps", "stop"]


def read_csv(path: str | Path) -> list[Row]:
    """The rows of a ``bench.csv`` (to redraw a report, or to merge runs, without refitting)."""
    ints, strs = {"dim", "steps"}, {"model", "method", "family", "estimator", "optimizer",
                                    "objective", "status", "stop_reason", "worst", "z_pass",
                                    "zw_pass"}

    def value(k: str, v: str):
        if k == "curve":
            return tuple(tuple(p) for p in json.loads(v)) if v else ()
        return v if k in strs else int(v) if k in ints else float(v) if v else float("nan")

    with open(path, newline="") as f:
        return [Row(**{k: value(k, v) for k, v in rec.items() if k in COLUMNS})
                for rec in csv.DictReader(f)]


def write_csv(rows: Sequence[Row], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            rec = {k: v for k, v in r.as_dict().items() if k in COLUMNS}
            # The training curve (seconds, ELBO) per window: merged runs recompute time to
            # accuracy against their common bar from it.
            rec["curve"] = json.dumps([[round(t, 3), v] for t, v in r.curve])
            writer.writerow(rec)


def plot(rows: Sequence[Row], path: Path) -> None:
    """Two panels per method: max mean error and max |log sd ratio|, by model (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.status == "ok"]
    models = list(dict.fromkeys(r.model for r in rows))
    methods = list(dict.fromkeys(label(r) for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(models) + 2.0), dpi=110, sharey=True)
    markers = "osD^v<>phX*"
    for k, method in enumerate(methods):
        for ax, metric in zip(axes, ("mean_err", "log_sd_err")):
            pts = [(max(getattr(r, metric), 1e-3), models.index(r.model))
                   for r in ok if label(r) == method and np.isfinite(getattr(r, metric))]
            if pts:
                x, y = zip(*pts)
                offset = (k - (len(methods) - 1) / 2) * 0.08
                ax.scatter(x, np.asarray(y) + offset, marker=markers[k % len(markers)], s=28,
                           label=method if ax is axes[0] else None, alpha=0.85)
    for ax, title in zip(axes, ("max |mean error| / posterior sd", "max |log(sd / reference sd)|")):
        ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.axvline(0.1, color="grey", lw=0.8, ls=":")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(models)))
    axes[0].set_yticklabels(models, fontsize=8)
    axes[0].invert_yaxis()
    fig.legend(loc="lower center", ncol=min(len(methods), 4), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07 + 0.02 * (len(methods) // 4), 1, 1))
    fig.savefig(path)
    plt.close(fig)


def ratios(rows: Sequence[Row]) -> list[list[str]]:
    """Per method, the median over models of its wall time and its mean error divided by those
    of the baseline, vifit's ``fullrank/stl`` (or the first vifit configuration) on the same
    model; how many models entered the median."""
    ok = [r for r in rows if r.status == "ok"]
    vifit_labels = [label(r) for r in ok if r.method == "vifit"]
    if not vifit_labels:
        return []
    base = "fullrank/stl" if "fullrank/stl" in vifit_labels else vifit_labels[0]
    by_model = {(r.model, label(r)): r for r in ok}
    out = []
    for method in dict.fromkeys(label(r) for r in ok):
        if method == base:
            continue
        t, e = [], []
        for (model, m), r in by_model.items():
            b = by_model.get((model, base))
            if m != method or b is None:
                continue
            t.append(r.seconds / b.seconds)
            if b.mean_err > 0 and np.isfinite(r.mean_err):
                e.append(r.mean_err / b.mean_err)
        if t:
            out.append([method, base, f"{np.median(t):.2g}", f"{np.median(e):.2g}" if e else "-",
                        str(len(t))])
    return out


def pass_counts(rows: Sequence[Row]) -> list[list[str]]:
    """Per method: on how many models (of those whose reference has unconstrained moments) it
    meets the bar (every mean within 0.1 sd, every sd within 10%, on z), from q's draws and
    from the same draws PSIS-weighted; and which models it misses (weighted)."""
    scored = [r for r in rows if r.z_pass or r.status != "ok"]
    models = sorted({r.model for r in rows if r.z_pass})
    out = []
    for method in dict.fromkeys(label(r) for r in scored):
        mine = {r.model: r for r in scored if label(r) == method and r.model in models}
        raw = sum(r.z_pass == "yes" for r in mine.values())
        weighted = sum(r.zw_pass == "yes" for r in mine.values())
        missed = [m for m in models if m not in mine or mine[m].zw_pass != "yes"]
        out.append([method, f"{raw} / {len(models)}", f"{weighted} / {len(models)}",
                    ", ".join(missed) or "-"])
    return out


def markdown(rows: Sequence[Row], cfg: BenchConfig, seconds: float, command: str) -> str:
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in HEADER) + " |",
             "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in table_rows(rows)]
    ratio_lines = ["| method | baseline | median wall-time ratio | median mean-err ratio "
                   "| models |", "|---|---|---|---|---|"]
    ratio_lines += ["| " + " | ".join(r) + " |" for r in ratios(rows)]
    pass_lines = ["| method | passes (q's draws) | passes (PSIS-weighted) | missed (weighted) |",
                  "|---|---|---|---|"]
    pass_lines += ["| " + " | ".join(r) + " |" for r in pass_counts(rows)]
    failed = [r for r in rows if r.status != "ok"]
    failures = "\n".join(f"- {r.model} / {label(r)}: {r.status}" for r in failed) or "- none"
    return f"""# vifit bench

Command: `{command}`

{len(rows)} fits in {seconds:.0f} s. vifit: families {', '.join(cfg.families)}; estimators
{', '.join(cfg.estimators)}; optimizers {', '.join(cfg.optimizers)}; objectives
{', '.join(cfg.objectives)}; at most {cfg.steps} steps, learning rate {cfg.lr}, seed {cfg.seed}.
Peers on the same targets: {', '.join(cfg.peers) or 'none'} (NumPyro SVI: Adam at the same
learning rate for all {cfg.steps} steps with 16 particles; Pathfinder: BlackJAX defaults,
at most 1000 L-BFGS iterations, in a child process with a {cfg.peer_timeout:.0f} s limit).

Scores, from {cfg.n_eval} draws of each fitted q, on the model's constrained parameters:
**mean err/sd** = max over parameters of |mean error| / reference sd; **|log sd ratio|** =
max |log(sd / reference sd)|; **log Z err** = Pareto-smoothed IS log Z - exact log Z (exact
references only); **k-hat** = Pareto k of the importance weights (< 0.7 usable);
**ELBO** from the same draws; **s to ELBO bar** = wall seconds from the start of the fit until
its training ELBO (mean of a window of steps) first reached the model's bar, the best final
ELBO of any row on the model minus {cfg.accuracy} nats ("never": the final ELBO stayed below
it; one-shot methods count their whole time); **wall s** = wall-clock seconds of the fit and its draws, JIT compilation included (timings on
a shared machine are noisy).

{chr(10).join(lines)}

Pass counts: models on which each method meets the bar (every posterior mean within 0.1
posterior sd and every sd within 10%, on the unconstrained z, against long-NUTS references;
models whose reference has no unconstrained moments are left out), from q's own draws and
from the same draws weighted by Pareto-smoothed importance weights (what `FitResult.summary()`
shows when k-hat < 0.7). A failed fit counts as a miss.

{chr(10).join(pass_lines)}

Ratios to the baseline on the same model (median over models; below 1 means faster or more
accurate than the baseline):

{chr(10).join(ratio_lines)}

Rows without scores:
{failures}

![scores by model](bench.png)
"""


def write_outputs(rows: Sequence[Row], cfg: BenchConfig, out: str | Path, seconds: float,
                  command: str) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "bench.csv", "report": out / "bench.md", "plot": out / "bench.png"}
    write_csv(rows, paths["csv"])
    plot(rows, paths["plot"])
    paths["report"].write_text(markdown(rows, cfg, seconds, command))
    return paths
