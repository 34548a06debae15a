"""``vifit bench``: the grid of families x estimators (x optimizers x objectives) and the peer
methods over the catalog, scored against the references; a table, bench.csv, bench.md, bench.png."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def bench_command(
    models: Annotated[Optional[list[str]], typer.Argument(
        help="Catalog models (see `vifit list`); default: all (two small ones with --quick)."
    )] = None,
    families: Annotated[str, typer.Option(help="Comma-separated families.")] = "meanfield,fullrank",
    estimators: Annotated[str, typer.Option(
        help="Comma-separated estimators; 'default': each family's own.")] = "stl,score",
    optimizers: Annotated[str, typer.Option(
        help="Comma-separated optimizers: adam, sgd, ..., natgrad, lbfgs-fixed, pathfinder."
    )] = "adam",
    objectives: Annotated[str, typer.Option(help="Comma-separated objectives.")] = "elbo",
    peers: Annotated[str, typer.Option(
        help="Comma-separated peers: numpyro.AutoNormal, numpyro.AutoMultivariateNormal, "
             "blackjax.pathfinder; 'none' for none.")] =
        "numpyro.AutoNormal,numpyro.AutoMultivariateNormal,blackjax.pathfinder",
    steps: Annotated[int, typer.Option(help="Most optimizer steps per fit.")] = 10_000,
    lr: Annotated[float, typer.Option(help="Learning rate (vifit and NumPyro SVI).")] = 1e-2,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    peer_timeout: Annotated[float, typer.Option(
        help="Seconds before a Pathfinder run is reported as hung.")] = 300.0,
    quick: Annotated[bool, typer.Option(
        help="CI size: eight_schools and banana, stl only, at most 1000 steps.")] = False,
    accuracy: Annotated[float, typer.Option(
        help="Nats below a model's best final ELBO that count as reached (time to accuracy)."
    )] = 0.1,
    out: Annotated[Path, typer.Option(help="Write bench.csv, bench.md, bench.png here.")] =
        Path("bench-out"),
) -> None:
    """Score fits of every catalog model against its reference, with peer methods alongside."""
    from vifit.errors import VifitError

    try:
        _bench(models, families, estimators, optimizers, objectives, peers, steps, lr, seed,
               peer_timeout, quick, out, accuracy)
    except VifitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None


def _bench(models, families, estimators, optimizers, objectives, peers, steps, lr, seed,
           peer_timeout, quick, out, accuracy=0.1) -> None:
    from vifit.bench import PEERS, BenchConfig, run_bench, write_outputs
    from vifit.bench.report import HEADER, table_rows
    from vifit.catalog import catalog_names
    from vifit.errors import ConfigError
    from vifit.estimators import get_estimator
    from vifit.families import get_family
    from vifit.objectives import get_objective
    from vifit.optim.optimizers import make_optimizer
    from vifit.optim.runner import get_runner

    peer_list = [] if peers.strip().lower() == "none" else _split(peers)
    unknown = [p for p in peer_list if p not in PEERS]
    if unknown:
        raise ConfigError(f"unknown peer {unknown[0]!r}; choose from {', '.join(PEERS)} or 'none'.")
    bad = [m for m in models or [] if m not in catalog_names()]
    if bad:
        raise ConfigError(f"unknown model {bad[0]!r}; see `vifit list` for the catalog.")
    # Unknown names fail here, before the first fit, not as a column of failed rows.
    for name in _split(families):
        if name != "auto":
            get_family(name)
    for name in _split(estimators):
        if name != "default":
            get_estimator(name)
    for name in _split(objectives):
        get_objective(name)
    for name in _split(optimizers):
        if get_runner(name) is None:  # natgrad, lbfgs-fixed, pathfinder run their own loops
            make_optimizer(name, lr=lr, steps=steps)
    cfg = BenchConfig(
        models=models or (), families=_split(families),
        estimators=["stl"] if quick and estimators == "stl,score" else _split(estimators),
        optimizers=_split(optimizers), objectives=_split(objectives), peers=peer_list,
        steps=min(steps, 1000) if quick else steps, lr=lr, seed=seed,
        n_eval=2000 if quick else 4000, peer_timeout=peer_timeout, quick=quick,
        accuracy=accuracy,
    )
    n_configs = (len(cfg.families) * len(cfg.estimators) * len(cfg.optimizers)
                 * len(cfg.objectives))
    console.print(f"bench: {len(cfg.resolved_models())} models x {n_configs} vifit "
                  f"configurations + {len(cfg.peers)} peers")

    def show(row) -> None:
        cells = table_rows([row])[0]
        console.print("  " + "  ".join(cells[:2]) + ": " + ", ".join(
            f"{h} {c}" for h, c in zip(HEADER[2:], cells[2:])), highlight=False)

    t0 = time.perf_counter()
    rows = run_bench(cfg, on_row=show)
    seconds = time.perf_counter() - t0
    table = Table(title="vifit bench (scores against the catalog references)")
    for h in HEADER:
        table.add_column(h, justify="left" if h in ("model", "method", "stop") else "right")
    for cells in table_rows(rows):
        table.add_row(*cells)
    console.print(table)
    from vifit.bench.report import ratios

    for method, base, t, e, n in ratios(rows):
        console.print(f"{method} vs {base}: wall time x{t}, mean error x{e} (median of {n} models)")
    command = "vifit " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    paths = write_outputs(rows, cfg, out, seconds, command)
    console.print(f"{len(rows)} fits in {seconds:.0f} s; wrote " +
                  ", ".join(str(p) for p in paths.values()))
