"""``report.html``: a self-contained page (no network; images embedded as base64 PNG) of a fit:
the verdict, the posterior summary, the ELBO trace, marginal densities of q's draws (against the
catalog reference when the model has one), a pair plot of the most correlated parameters, the
timing, notes, and the evidence table when given. Also the compact tables of
``FitResult._repr_html_`` and ``EvidenceResult._repr_html_`` for Jupyter."""

from __future__ import annotations

import base64
import io
from html import escape
from typing import Any

import numpy as np

COLOURS = {"good": "#1a7f37", "usable with care": "#b58100", "not reliable": "#cf222e",
           "failed": "#cf222e"}
MAX_MARGINALS = 12
MAX_PAIRS = 4

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1000px;color:#1f2328;line-height:1.45}
table.vifit{border-collapse:collapse;margin:0.5em 0;font-size:0.9em}
table.vifit th,table.vifit td{border:1px solid #d0d7de;padding:3px 8px;text-align:right}
table.vifit th:first-child,table.vifit td:first-child{text-align:left}
table.vifit thead th{background:#f6f8fa}
.verdict{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
img{max-width:100%;height:auto}
"""

# Sets data-images-ok on <body> once every image has decoded (naturalWidth > 0): what a
# headless browser's DOM dump shows.
_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-ok', ok === imgs.length ? 'true' : 'false');
  document.body.setAttribute('data-images-decoded', ok + '/' + imgs.length);
});
</script>
"""


def _fmt(x: Any, spec: str = ".4g") -> str:
    if x is None:
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return escape(str(x))
    return "n/a" if not np.isfinite(v) else format(v, spec)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="vifit"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


AUTO_HEADER = ["stage", "ELBO", "k-hat", "seconds", "decision", "why"]


def auto_rows(result) -> list[list[str]]:
    """What ``family="auto"`` fitted and decided, one row per stage (``AUTO_HEADER``), as
    plain text; none for a fit that auto did not choose."""
    decisions = (result.info.get("auto") or {}).get("decisions") or []

    def num(x, spec: str) -> str:
        return "" if x is None else ("n/a" if not np.isfinite(float(x)) else format(x, spec))

    return [[str(d.get("stage", "")),
             "" if d.get("elbo") is None else f"{num(d['elbo'], '.4f')} ± "
             f"{num(d.get('elbo_se'), '.4f')}",
             num(d.get("khat"), ".2f"), num(d.get("seconds"), ".1f"),
             str(d.get("decision", "")), str(d.get("why", ""))] for d in decisions]


def verdict_html(label: str, text: str = "") -> str:
    colour = COLOURS.get(label, "#cf222e")
    badge = f'<span class="verdict" style="background:{colour}">{escape(label)}</span>'
    return f'<p class="verdict-line">{badge} {escape(text)}</p>'


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return data


def _img(data: str, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def summary_rows(params: dict[str, dict[str, Any]]) -> list[list[str]]:
    return [[escape(name)] + [_fmt(v.get(c)) for c in ("mean", "sd", "q5", "q50", "q95")]
            for name, v in params.items()]


def _reference(result):
    """The catalog reference of the fit's model, by name, or None."""
    try:
        from vifit import catalog

        return catalog.reference(result.target.name)
    except Exception:
        return None


def trace_png(result, png: bytes | None = None) -> str:
    """The ELBO trace as base64 PNG; ``png``: the image already drawn (elbo.png's bytes)."""
    from vifit.report import plot_trace

    if png is None:
        _pyplot()
        buf = io.BytesIO()
        plot_trace(result, buf)
        png = buf.getvalue()
    return base64.b64encode(png).decode("ascii")


def _hist(ax, x: np.ndarray, bins: int, range=None, density: bool = False,
          label: str | None = None) -> None:
    """A filled histogram drawn as one outline: ``ax.hist`` makes a patch per bar, which
    took most of a plot's time."""
    heights, edges = np.histogram(x, bins=bins, range=range, density=density)
    ax.stairs(heights, edges, fill=True, color="tab:blue", alpha=0.6, label=label)


def marginals_png(names: list[str], draws: np.ndarray, ref=None) -> str | None:
    """Histogram densities of the first ``MAX_MARGINALS`` parameters' draws, with the
    reference mean (line) and mean ± sd (band) where ``ref`` has the parameter."""
    plt = _pyplot()
    m = min(len(names), MAX_MARGINALS)
    if m == 0:
        return None
    cols = min(m, 4)
    rows = -(-m // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.0 * rows), dpi=100,
                             squeeze=False)
    ref_at = {n: i for i, n in enumerate(ref.names)} if ref is not None else {}
    for k, ax in enumerate(axes.flat):
        if k >= m:
            ax.axis("off")
            continue
        x = draws[:, k]
        x = x[np.isfinite(x)]
        if x.size:
            lo, hi = np.percentile(x, [0.5, 99.5])
            _hist(ax, x, 40, (lo, hi) if hi > lo else None, density=True, label="q")
        i = ref_at.get(names[k])
        if i is not None:
            mu, sd = float(ref.mean[i]), float(ref.sd[i])
            ax.axvspan(mu - sd, mu + sd, color="tab:orange", alpha=0.2, label="ref ± sd",
                       zorder=0)
            ax.axvline(mu, color="tab:orange", lw=1.5, label="ref mean")
        ax.set_title(names[k], fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])
    if ref_at:
        axes.flat[0].legend(fontsize=6)
    # Fixed margins: tight_layout measured every label and cost more than drawing.
    fig.subplots_adjust(left=0.03, right=0.98, bottom=0.32 / rows, top=1 - 0.3 / rows,
                        wspace=0.15, hspace=0.55)
    return _png(fig)


def most_correlated(draws: np.ndarray, k: int = MAX_PAIRS) -> list[int]:
    """Indices of up to ``k`` parameters, taken from the pairs of largest |correlation|."""
    m = draws.shape[1]
    if m < 2:
        return []
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(draws, rowvar=False)
    corr = np.nan_to_num(np.abs(corr), nan=0.0)
    np.fill_diagonal(corr, -1.0)
    iu = np.triu_indices(m, 1)
    order = np.argsort(corr[iu])[::-1]
    chosen: list[int] = []
    for o in order:
        for j in (iu[0][o], iu[1][o]):
            if j not in chosen and len(chosen) < k:
                chosen.append(int(j))
        if len(chosen) >= k:
            break
    return chosen


def pairs_png(names: list[str], draws: np.ndarray) -> str | None:
    plt = _pyplot()
    keep = np.all(np.isfinite(draws), axis=1)
    draws = draws[keep]
    idx = most_correlated(draws)
    if len(idx) < 2:
        return None
    p = len(idx)
    fig, axes = plt.subplots(p, p, figsize=(2.2 * p, 2.2 * p), dpi=100, squeeze=False)
    sub = draws[:, idx][:2000]
    for a in range(p):
        for b in range(p):
            ax = axes[a, b]
            ax.tick_params(labelsize=6)
            if a == b:
                _hist(ax, sub[:, a], 30)
                ax.set_yticks([])
            elif a > b:
                # One line of markers, not a scatter collection: half the drawing time.
                ax.plot(sub[:, b], sub[:, a], ".", ms=1.4, alpha=0.3, color="tab:blue")
                r = np.corrcoef(sub[:, b], sub[:, a])[0, 1]
                ax.set_title(f"r = {r:.2f}", fontsize=7)
            else:
                ax.axis("off")
            if a == p - 1:
                ax.set_xlabel(names[idx[b]], fontsize=7)
            if b == 0 and a > 0:
                ax.set_ylabel(names[idx[a]], fontsize=7)
    fig.subplots_adjust(left=0.35 / p, right=0.98, bottom=0.35 / p, top=1 - 0.15 / p,
                        wspace=0.25, hspace=0.4)
    return _png(fig)


def evidence_table_html(ev) -> str:
    from vifit.evidence.api import LABELS

    rows = []
    for name, e in ev.estimates.items():
        mark = " *" if name == ev.recommended else ""
        row = [escape(LABELS.get(name, name) + mark), escape(ev.kind(name)),
               _fmt(e.estimate, ".4f"), _fmt(e.se, ".4f"), _fmt(e.seconds, ".2f")]
        if ev.exact_log_z is not None:
            row.append(_fmt(e.estimate - ev.exact_log_z, "+.4f"))
        rows.append(row)
    header = ["estimator", "kind", "log Z", "± se", "seconds"]
    if ev.exact_log_z is not None:
        header.append("error")
    summed = ev.estimates.get("enumeration")
    exact = ("" if ev.exact_log_z is None else
             f"<p>exact log Z = {_fmt(ev.exact_log_z, '.4f')} ("
             + (f"p summed over all {summed.details.get('states', 0):,} states"
                if summed is not None else "known for this target") + ")</p>")
    return (_table(header, rows) + exact
            + f"<p>log Z = {_fmt(ev.log_z, '.4f')} ± {_fmt(ev.log_z_se, '.4f')} "
              f"(* {escape(ev.recommended)})</p>"
            + verdict_html(ev.verdict.label, " ".join(ev.verdict.reasons)))


def _guarded(fn, *args) -> tuple[str | None, str | None]:
    """``fn(*args)`` or, when it fails, None and why (a plot must not sink the report)."""
    try:
        return fn(*args), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def report_html(result=None, record: dict | None = None, evidence=None,
                n_draws: int = 4000, trace: bytes | None = None) -> str:
    """The page: of a fit (``result``; ``record`` its ``to_dict()``, made when missing), of an
    evidence result, or both. ``trace``: the ELBO trace's PNG bytes when already drawn."""
    parts: list[str] = []
    title = "vifit report"
    if result is not None:
        record = record if record is not None else result.to_dict(result.seed, n_draws)
        title = f"vifit fit: {result.target.name}"
        parts.append(f"<h1>{escape(title)}</h1>")
        parts.append(
            f"<p>Family <code>{escape(result.family.name)}</code>, objective "
            f"<code>{escape(result.objective)}</code>, estimator "
            f"<code>{escape(result.estimator)}</code>, optimizer "
            f"<code>{escape(result.optimizer)}</code>, {result.draws} draws per step, seed "
            f"{result.seed}. Stopped: <b>{escape(result.stop_reason)}</b> after "
            f"{result.steps} steps ({result.rejected} rejected as non-finite) in "
            f"{result.seconds:.2f} s.</p>")
        verdict = result.verdict
        parts.append("<h2>Verdict</h2>")
        parts.append(verdict_html(verdict.label, verdict.text))
        parts.append(f"<p>Pareto k-hat = {_fmt(result.khat, '.3f')}</p>")
        rows = [["ELBO (lower bound on log Z)", _fmt(result.elbo, ".4f"),
                 _fmt(result.elbo_se, ".4f")],
                ["log Z (Pareto-smoothed importance sampling)", _fmt(result.log_z, ".4f"),
                 _fmt(result.log_z_se, ".4f")]]
        if result.objective != "elbo":
            rows.append([escape(f"objective {result.objective}"),
                         _fmt(result.objective_value, ".4f"), _fmt(result.objective_se, ".4f")])
        if "exact_log_z" in record:
            rows.append(["exact log Z (known)", _fmt(record["exact_log_z"], ".4f"), ""])
        parts.append(_table(["quantity", "estimate", "standard error"], rows))
        chosen = auto_rows(result)
        if chosen:
            parts.append("<h2>How auto chose the family</h2>")
            parts.append(_table(AUTO_HEADER, [[escape(c) for c in row] for row in chosen]))
        from vifit.result import weighting_words

        weighting = weighting_words(record.get("summary_weighting"))
        parts.append(f"<h2>Posterior summary ({escape(weighting)})</h2>")
        parts.append(_table(["param", "mean", "sd", "5%", "50%", "95%"],
                            summary_rows(record.get("params", {}))))
        parts.append("<h2>ELBO trace</h2>")
        png, why = _guarded(trace_png, result, trace)
        parts.append(_img(png, "ELBO trace") if png else f"<p>(no trace: {escape(why)})</p>")
        try:
            names, draws = result.flat_draws(result.seed, min(n_draws, 4000))
            draws = np.asarray(draws, dtype=np.float64)
        except Exception as exc:
            names, draws = [], None
            parts.append(f"<p>(no draws: {escape(type(exc).__name__)}: {escape(str(exc))})</p>")
        if draws is not None:
            ref = _reference(result)
            parts.append("<h2>Marginal densities of q's draws</h2>")
            if len(names) > MAX_MARGINALS:
                parts.append(f"<p>The first {MAX_MARGINALS} of {len(names)} parameters.</p>")
            if ref is not None:
                parts.append(f"<p>Against the catalog reference ({escape(ref.kind)}): mean "
                             "(line) and mean ± sd (band).</p>")
            png, why = _guarded(marginals_png, names, draws, ref)
            if png:
                parts.append(_img(png, "marginal densities"))
            elif why:
                parts.append(f"<p>(no marginals: {escape(why)})</p>")
            png, why = _guarded(pairs_png, names, draws)
            if png:
                parts.append("<h2>Pairs: the most correlated parameters</h2>")
                parts.append(_img(png, "pair plot"))
        timing = result.info.get("timing")
        if timing:
            parts.append("<h2>Timing</h2>")
            if isinstance(timing, dict):
                parts.append(_table(["", "seconds"], [[escape(str(k)), _fmt(v)]
                                                       for k, v in timing.items()]))
            else:
                parts.append(f"<p>{escape(str(timing))}</p>")
        if result.notes:
            parts.append("<h2>Notes</h2><ul>"
                         + "".join(f"<li>{escape(n)}</li>" for n in result.notes) + "</ul>")
    if evidence is not None:
        if result is None:
            title = f"vifit evidence: {evidence.target_name}"
            parts.append(f"<h1>{escape(title)}</h1>")
        parts.append(f"<h2>Evidence: log Z of {escape(evidence.target_name)} "
                     f"(d = {evidence.dim})</h2>")
        parts.append(evidence_table_html(evidence))
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n"
            f"<body>\n{body}\n{_SCRIPT}</body></html>\n")


def fit_repr_html(result, n: int = 1000) -> str:
    """A compact table for Jupyter: the verdict line and the posterior summary."""
    verdict = result.verdict
    try:
        table = result.summary(result.seed, n)
        params = {name: dict(row) for name, row in table.iterrows()}
        weighting = table.attrs.get("weighting", "q")
    except Exception as exc:
        params, weighting = {}, f"unavailable: {type(exc).__name__}"
    head = (f"<p><b>{escape(result.target.name)}</b>: {escape(result.family.name)}, "
            f"{escape(result.stop_reason)} after {result.steps} steps; ELBO "
            f"{_fmt(result.elbo, '.4f')} ± {_fmt(result.elbo_se, '.4f')}, log Z "
            f"{_fmt(result.log_z, '.4f')} ± {_fmt(result.log_z_se, '.4f')}, k-hat "
            f"{_fmt(result.khat, '.2f')}; summary weighting {escape(weighting)}</p>")
    return ('<div class="vifit-fit">' + head + verdict_html(verdict.label, verdict.text)
            + _table(["param", "mean", "sd", "q5", "q50", "q95"], summary_rows(params))
            + "</div>")


def evidence_repr_html(ev) -> str:
    """A compact estimates table for Jupyter."""
    return (f'<div class="vifit-evidence"><p><b>log Z of {escape(ev.target_name)}</b> '
            f"(d = {ev.dim})</p>" + evidence_table_html(ev) + "</div>")
