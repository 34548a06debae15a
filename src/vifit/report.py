"""Files a fit leaves behind: result.json (stable keys), draws.nc (ArviZ), elbo.png, report.md,
report.html (self-contained: images embedded)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from vifit.jsonio import dumps
from vifit.result import FitResult, weighting_words


def plot_trace(result: FitResult, path: Path | io.BytesIO) -> None:
    """The per-step objective (ELBO by default) with its running mean over the stopping-rule
    window, the final value, and the importance-sampling log Z where it shares the units."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trace = result.trace
    steps = np.arange(1, trace.size + 1)
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=120)
    ax.plot(steps, trace, lw=0.6, alpha=0.45, color="tab:blue",
            label=f"{result.objective} per step")
    window = min(100, max(trace.size // 10, 1))
    finite = np.where(np.isfinite(trace), trace, np.nan)
    if not np.isfinite(finite).any():
        finite = np.zeros(0)
    if finite.size >= window:
        kernel = np.ones(window) / window
        smooth = np.convolve(np.nan_to_num(finite, nan=np.nanmean(finite)), kernel, mode="valid")
        ax.plot(steps[window - 1:], smooth, color="tab:blue", lw=1.8,
                label=f"running mean ({window} steps)")
    is_elbo = result.objective == "elbo"
    final = result.elbo if is_elbo else result.objective_value
    if np.isfinite(final):
        ax.axhline(final, color="black", ls=":", lw=1,
                   label=f"final {'ELBO' if is_elbo else result.objective} {final:.3f}")
    # A KL(p || q) estimate is not on the log Z scale; every bound is.
    on_log_z_scale = not result.objective.startswith("forward_kl")
    if np.isfinite(result.log_z) and on_log_z_scale:
        ax.axhline(result.log_z, color="tab:red", ls="--", lw=1,
                   label=f"IS log Z {result.log_z:.3f} (k-hat {result.khat:.2f})")
    # The first steps are far below the rest; show the part where the fit is decided.
    tail = finite[finite.size // 5:]
    if np.isfinite(tail).any():
        lo = min(np.nanpercentile(tail, 1), result.log_z if on_log_z_scale
                 and np.isfinite(result.log_z) else np.inf)
        hi = max(np.nanmax(tail), result.log_z if on_log_z_scale
                 and np.isfinite(result.log_z) else -np.inf)
        pad = 0.1 * (hi - lo + 1e-9)
        if np.isfinite(lo - pad) and np.isfinite(hi + pad) and hi + pad > lo - pad:
            ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("step")
    ax.set_ylabel("nats")
    ax.set_title(f"{result.target.name}: {result.family.name} / {result.estimator} "
                 f"({result.stop_reason} after {result.steps} steps)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(result: FitResult, out: str | Path, n_draws: int = 4000,
                 evidence=None) -> dict[str, Path]:
    """Write the fit's files into ``out`` (created if missing); return their paths.
    ``evidence`` (a ``vifit.EvidenceResult``): its estimates table joins report.html."""
    from vifit.arviz_groups import write_netcdf
    from vifit.report_html import report_html

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "result": out / "result.json",
        "draws": out / "draws.nc",
        "trace": out / "elbo.png",
        "report": out / "report.md",
        "html": out / "report.html",
    }
    record = result.to_dict(result.seed, n_draws)
    paths["result"].write_text(dumps(record))
    write_netcdf(result, paths["draws"], result.seed, n_draws)  # no ArviZ import: 2 s
    buf = io.BytesIO()  # drawn once: elbo.png and the page's trace are the same image
    plot_trace(result, buf)
    paths["trace"].write_bytes(buf.getvalue())
    paths["report"].write_text(_markdown(result, record))
    paths["html"].write_text(report_html(result, record, evidence, n_draws, buf.getvalue()),
                             encoding="utf-8")
    return paths


def _num(x, spec: str = ".4g") -> str:
    """A number for the report: JSON's null (an infinite or NaN value) reads as n/a."""
    return "n/a" if x is None else format(x, spec)


def _markdown(result: FitResult, record: dict) -> str:
    rows = "\n".join(
        f"| {name} | " + " | ".join(_num(v[c]) for c in ("mean", "sd", "q5", "q50", "q95"))
        + " |"
        for name, v in record["params"].items()
    )
    objective_row = ("" if result.objective == "elbo" else
                     f"| objective {result.objective}, "
                     f"{'maximized' if result.direction > 0 else 'minimized'} | "
                     f"{result.objective_value:.4f} | {result.objective_se:.4f} |\n")
    exact = (f"\nExact log Z (known for this target): {_num(record['exact_log_z'], '.4f')}\n"
             if "exact_log_z" in record else "")
    verdict = result.verdict
    weighting = weighting_words(record.get("summary_weighting"))
    notes = "".join(f"\n- {n}" for n in result.notes)
    notes = f"\nNotes:{notes}\n" if notes else ""
    from vifit.report_html import AUTO_HEADER, auto_rows

    chosen = auto_rows(result)
    auto = ("" if not chosen else "\n## How auto chose the family\n\n| "
            + " | ".join(AUTO_HEADER) + " |\n|" + "---|" * len(AUTO_HEADER) + "\n"
            + "".join("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |\n"
                      for row in chosen))
    return f"""# vifit fit: {result.target.name}

Family `{result.family.name}`, objective `{result.objective}`, estimator `{result.estimator}`,
optimizer `{result.optimizer}`, {result.draws} draws per step, seed {result.seed}.
Stopped: **{result.stop_reason}** after {result.steps} steps ({result.rejected} rejected as
non-finite) in {result.seconds:.2f} s.

| quantity | estimate | standard error |
|---|---|---|
| ELBO (lower bound on log Z) | {result.elbo:.4f} | {result.elbo_se:.4f} |
| log Z (Pareto-smoothed importance sampling) | {result.log_z:.4f} | {result.log_z_se:.4f} |
{objective_row}
Verdict: **{verdict.label}**. {verdict.text} (Pareto k-hat = {result.khat:.3f}.)
{exact}{notes}{auto}
## Posterior summary ({weighting})

| param | mean | sd | 5% | 50% | 95% |
|---|---|---|---|---|---|
{rows}

![ELBO trace](elbo.png)
"""
