"""Draw docs/bench.png from the table of docs/bench.md, "Families and optimizers on the whole
catalog": per model, how far each of `auto`, the best fixed vifit choice and the best peer
fell short of the best ELBO any method reached (nats), and its largest posterior-mean error
(in reference sds).

    PYTHONPATH=src python bench/plot_catalog_table.py [--doc docs/bench.md] [--out docs/bench.png]

The table is the one `bench/catalog_table.py` prints; the figure is redrawn from the table as
published, so the picture and the numbers beside it cannot disagree.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

SECTION = "## Families and optimizers on the whole catalog"
COLUMNS = ("auto", "best fixed", "best peer")
# A cell reads "method: ELBO, mean err / sd err, N s to the bar".
CELL = re.compile(r"^(?P<method>[^:]+): (?P<elbo>-?[\d.]+), (?P<mean>[\d.]+) / (?P<sd>[\d.]+)")


def read_table(doc: Path) -> list[dict]:
    """The rows of the section's table: model, bar, and per column (method, ELBO, mean err)."""
    text = doc.read_text()
    start = text.index(SECTION)
    lines = text[start:].splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| model | bar |"))
    names = [c.strip() for c in lines[header].strip("|").split("|")]
    rows = []
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        cells = dict(zip(names, (c.strip() for c in line.strip("|").split("|"))))
        row = {"model": cells["model"], "bar": float(cells["bar"])}
        for col in COLUMNS:
            m = CELL.match(cells[col])
            if m is None:
                raise ValueError(f"cannot read {col!r} cell of {row['model']}: {cells[col]!r}")
            row[col] = (m["method"], float(m["elbo"]), float(m["mean"]))
        rows.append(row)
    return rows


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = [r["model"] for r in rows]
    y = np.arange(len(models))
    colours = {"auto": "tab:blue", "best fixed": "tab:green", "best peer": "tab:orange"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.45 * len(models) + 1.6), sharey=True,
                                   dpi=120)
    for k, col in enumerate(COLUMNS):
        best = np.array([max(r[c][1] for c in COLUMNS) for r in rows])
        short = best - np.array([r[col][1] for r in rows])
        mean = np.array([r[col][2] for r in rows])
        off = (k - 1) * 0.27
        ax1.barh(y + off, np.maximum(short, 1e-3), 0.25, color=colours[col], label=col)
        ax2.barh(y + off, mean, 0.25, color=colours[col], label=col)
    ax1.set_xscale("log")
    ax1.axvline(0.1, color="black", ls=":", lw=1)
    ax1.set_xlabel("ELBO below the best of any method (nats; 0.001: the best; dotted: 0.1)")
    ax2.set_xscale("log")
    ax2.set_xlabel("largest posterior-mean error (reference sds)")
    ax1.set_yticks(y, models)
    ax1.invert_yaxis()
    ax2.legend(fontsize=8, loc="upper right")
    fig.suptitle("vifit auto, the best fixed vifit method and the best peer, per catalog model",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--doc", type=Path, default=Path("docs/bench.md"))
    ap.add_argument("--out", type=Path, default=Path("docs/bench.png"))
    args = ap.parse_args()
    rows = read_table(args.doc)
    plot(rows, args.out)
    print(f"wrote {args.out} ({len(rows)} models)")


if __name__ == "__main__":
    main()
