"""The ``vifit`` command line: ``vifit fit MODEL``, ``vifit list``; ``vifit evidence`` and
``vifit compare`` live in ``vifit.cli.evidence``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from vifit.errors import VifitError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Variational inference and evidence estimation: fit q(z) to p(z|x) and report log Z.",
)
out_console = Console()


def _fail(message: str) -> None:
    """One clear line on stderr, exit status 1, no traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(1)


@app.command("list")
def list_examples() -> None:
    """List the built-in example models."""
    from vifit.examples import describe_examples

    table = Table(title="built-in examples", show_header=True)
    table.add_column("name")
    table.add_column("description")
    for name, desc in describe_examples().items():
        table.add_row(name, desc)
    out_console.print(table)


@app.command("fit")
def fit_command(
    model: Annotated[str, typer.Argument(help="A built-in example (see `vifit list`) or a .py file "
                                              "defining log_density and dim or init.")],
    family: Annotated[str, typer.Option(help="meanfield, fullrank or lowrank.")] = "fullrank",
    estimator: Annotated[Optional[str], typer.Option(
        help="score, reparam or stl (default: stl; score for non-differentiable models).")] = None,
    optimizer: Annotated[str, typer.Option(help="adam, sgd, adagrad or rmsprop.")] = "adam",
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-2,
    schedule: Annotated[str, typer.Option(
        help="constant, cosine, exponential or warmup_cosine.")] = "constant",
    steps: Annotated[int, typer.Option(help="Most optimizer steps.")] = 10_000,
    draws: Annotated[Optional[int], typer.Option(
        help="Monte Carlo draws per step (default 16; 64 for score).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same numbers.")] = 0,
    tol: Annotated[float, typer.Option(help="Stopping tolerance on the windowed ELBO, nats.")] = 1e-3,
    rank: Annotated[int, typer.Option(help="Rank of the lowrank family.")] = 2,
    baseline: Annotated[bool, typer.Option(help="score: leave-one-out baseline.")] = True,
    cv: Annotated[bool, typer.Option(help="score: control variate on the score.")] = True,
    out: Annotated[Optional[Path], typer.Option(
        help="Write result.json, draws.nc, elbo.png and report.md here.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Fit a variational approximation to MODEL and print the summary and log Z."""
    try:
        _fit(model, family, estimator, optimizer, lr, schedule, steps, draws, seed, tol, rank,
             baseline, cv, out, progress)
    except VifitError as exc:
        _fail(str(exc))


def _fit(model, family, estimator, optimizer, lr, schedule, steps, draws, seed, tol, rank,
         baseline, cv, out, progress) -> None:
    import vifit
    from vifit.cli.models import load_model
    from vifit.estimators import ScoreFunction, get_estimator
    from vifit.families import LowRank, get_family

    fam = LowRank(rank=rank) if family == "lowrank" else get_family(family)
    est = None
    if estimator is not None:
        est = (ScoreFunction(baseline=baseline, control_variate=cv) if estimator == "score"
               else get_estimator(estimator))
    target, origin = load_model(model)
    out_console.print(f"[bold]{target.name}[/]: {origin}, d = {target.dim}")
    result = vifit.fit(target, fam, estimator=est, optimizer=optimizer, lr=lr, schedule=schedule,
                       steps=steps, draws=draws, seed=seed, tol=tol, progress=progress)
    print_result(result)
    if out is not None:
        from vifit.report import write_report

        paths = write_report(result, out)
        out_console.print("wrote " + ", ".join(str(p) for p in paths.values()))


def print_result(result) -> None:
    table = Table(title=f"posterior summary ({result.family.name}, {result.estimator})")
    table.add_column("param")
    for col in ("mean", "sd", "q5", "q50", "q95"):
        table.add_column(col, justify="right")
    for name, row in result.summary(result.seed).iterrows():
        table.add_row(name, *(f"{row[c]:.4g}" for c in ("mean", "sd", "q5", "q50", "q95")))
    out_console.print(table)
    ev = result.evidence
    out_console.print(
        f"stopped: {result.stop_reason} after {result.steps} steps "
        f"({result.rejected} rejected), {result.seconds:.2f} s"
    )
    out_console.print(f"ELBO   = {result.elbo:.4f} ± {result.elbo_se:.4f}  (lower bound on log Z)")
    out_console.print(f"log Z  = {ev.log_z:.4f} ± {ev.se:.4f}  "
                      f"(Pareto-smoothed importance sampling, {ev.n} draws)")
    if "log_z" in result.target.exact:
        out_console.print(f"exact log Z = {result.target.exact['log_z']:.4f}")
    colour = {"good": "green", "usable with care": "yellow"}.get(ev.verdict.label, "red")
    out_console.print(f"k-hat  = {ev.khat:.3f}: [{colour}]{ev.verdict.label}[/] — {ev.verdict.text}")


from vifit.cli.evidence import register as _register_evidence  # noqa: E402

_register_evidence(app)  # vifit evidence, vifit compare


def main() -> None:
    app()


if __name__ == "__main__":
    main()
