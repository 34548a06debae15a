"""``vifit gradvar MODEL``: the gradient-variance report of every applicable estimator."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console(width=max(Console().width, 100))  # the table needs ~90 columns


def gradvar_command(
    model: Annotated[str, typer.Argument(help="A built-in example or a .py model file.")],
    family: Annotated[Optional[str], typer.Option(
        help="Family (default: fullrank, or bernoulli/categorical for discrete models).")] = None,
    objective: Annotated[str, typer.Option(help="elbo, iwae, renyi, chi2 or forward_kl.")] = "elbo",
    k: Annotated[Optional[int], typer.Option(
        "--K", help="iwae, renyi, chi2: draws per group.")] = None,
    alpha: Annotated[Optional[float], typer.Option(help="renyi: the order alpha.")] = None,
    estimators: Annotated[Optional[str], typer.Option(
        help="Comma-separated estimator names (default: every applicable one).")] = None,
    budget: Annotated[int, typer.Option(
        help="Target evaluations per gradient estimate, the same for every estimator.")] = 256,
    reps: Annotated[int, typer.Option(help="Independent estimates per estimator.")] = 200,
    at: Annotated[str, typer.Option(
        help="init (the starting q), fit (q after a default fit) or both.")] = "both",
    steps: Annotated[int, typer.Option(help="Most steps of the fit for --at fit.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Print the variance of each gradient estimator on MODEL at the same cost."""
    from vifit.cli.main import _fail
    from vifit.errors import VifitError

    try:
        _gradvar(model, family, objective, k, alpha, estimators, budget, reps, at, steps, seed)
    except VifitError as exc:
        _fail(str(exc))


def _gradvar(model, family, objective, k, alpha, estimators, budget, reps, at, steps, seed):
    import vifit
    from vifit.cli.models import load_model
    from vifit.errors import ConfigError
    from vifit.objectives import get_objective

    if at not in ("init", "fit", "both"):
        raise ConfigError(f"--at must be init, fit or both, not {at!r}.")
    target, origin = load_model(model)
    obj = get_objective(objective, K=k, alpha=alpha)
    names = [s.strip() for s in estimators.split(",") if s.strip()] if estimators else None
    console.print(f"[bold]{target.name}[/]: {origin}, d = {target.dim}; objective "
                  f"{obj.label()}; {budget} target evaluations per estimate, {reps} estimates")
    points = []
    if at in ("init", "both"):
        points.append(("initial q", None))
    if at in ("fit", "both"):
        result = vifit.fit(target, family, objective=obj, steps=steps, seed=seed, progress=False)
        points.append((f"fitted q ({result.estimator}, {result.steps} steps, "
                       f"ELBO {result.elbo:.3f})", result))
    for title, params in points:
        table = vifit.gradient_variance(target, family, params, objective=obj, estimators=names,
                                        budget=budget, reps=reps, seed=seed)
        print_table(table, f"gradient variance at the {title}")


def print_table(table, title: str) -> None:
    out = Table(title=title)
    for col in ["estimator", "draws", "evals", "total_variance ± se", "relative", "bias", "mse"]:
        out.add_column(col, justify="left" if col == "estimator" else "right")
    notes = []
    for _, row in table.iterrows():
        label = row["estimator"]
        if row["note"]:
            notes.append(f"{label}: {row['note']}")
            label += f" [{len(notes)}]"
        out.add_row(label, str(row["draws"]), str(row["target_evals"]),
                    f"{row['total_variance']:.4g} ± {row['variance_se']:.2g}",
                    f"{row['relative']:.3g}", f"{row['bias']:.3g}", f"{row['mse']:.4g}")
    console.print(out)
    for i, note in enumerate(notes, 1):
        console.print(f"  [{i}] {note}", highlight=False)
