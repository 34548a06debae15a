"""``vifit cavi gmm DATA --k K`` and ``vifit cavi linreg DATA --y COLUMN``: coordinate ascent VI
for the two conjugate models, on a CSV file (header row, numeric columns) or a .npy array."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console

from vifit.errors import ModelFileError, VifitError

cavi_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Coordinate ascent VI for conjugate models (closed-form updates, "
                            "exact ELBO checked after every update).")
console = Console()


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(1)


def _load(path: Path) -> tuple[list[str], np.ndarray]:
    if not path.is_file():
        raise ModelFileError(f"data file {str(path)!r} not found.")
    if path.suffix == ".npy":
        arr = np.load(path)
        arr = arr[:, None] if arr.ndim == 1 else arr
        return [f"x{i}" for i in range(arr.shape[1])], arr.astype(np.float64)
    with path.open() as fh:
        header = fh.readline().strip().split(",")
    try:
        arr = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except ValueError as exc:
        raise ModelFileError(f"{path} is not a numeric CSV with one header row: {exc}") from exc
    if arr.shape[1] != len(header):
        raise ModelFileError(f"{path}: the header has {len(header)} names but rows have "
                             f"{arr.shape[1]} values.")
    return [h.strip() for h in header], arr


def _trace_line(res) -> str:
    return (f"{res.iters} sweeps, {'converged' if res.converged else 'not converged'}, "
            f"exact ELBO = {res.elbo:.6f}; never decreased (largest drop {res.max_decrease:.2e}, "
            f"rounding), {res.seconds:.2f} s")


@cavi_app.command("gmm")
def gmm_command(
    data: Annotated[Path, typer.Argument(help="CSV (header + numeric columns) or .npy (N, D).")],
    k: Annotated[int, typer.Option(help="Most mixture components (unneeded ones empty).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the starting responsibilities.")] = 0,
    max_iters: Annotated[int, typer.Option(help="Most sweeps.")] = 500,
) -> None:
    """Bayesian Gaussian mixture (Dirichlet / Normal-Wishart), Bishop sec. 10.2."""
    try:
        import jax

        jax.config.update("jax_enable_x64", True)  # the monotonicity check wants float64
        from vifit.cavi import fit_gmm

        names, x = _load(data)
        res = fit_gmm(x, k, seed=seed, max_iters=max_iters)
    except VifitError as exc:
        _fail(str(exc))
    console.print(_trace_line(res))
    order = np.argsort(-res.params["weights"])
    for j in order:
        w = res.params["weights"][j]
        if w < 1e-3:
            continue
        mean = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, res.params["means"][j]))
        sd = ", ".join(f"{v:.3g}" for v in np.sqrt(np.diag(res.params["covariances"][j])))
        console.print(f"component {j}: weight {w:.3f}, mean ({mean}), sd ({sd})")


@cavi_app.command("linreg")
def linreg_command(
    data: Annotated[Path, typer.Argument(help="CSV with a header row, or .npy with y last.")],
    y: Annotated[Optional[str], typer.Option(help="Response column (default: the last).")] = None,
    intercept: Annotated[bool, typer.Option(help="Add an intercept column.")] = True,
    structured: Annotated[bool, typer.Option(
        help="q(beta|tau) q(tau) (exact posterior) instead of mean-field q(beta) q(tau).")] = False,
    a0: Annotated[float, typer.Option(help="Gamma prior shape of the noise precision.")] = 1.0,
    b0: Annotated[float, typer.Option(help="Gamma prior rate of the noise precision.")] = 1.0,
) -> None:
    """Bayesian linear regression with unknown noise (Normal-Gamma prior)."""
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        from vifit.cavi import fit_linear_regression

        names, arr = _load(data)
        col = len(names) - 1 if y is None else (names.index(y) if y in names else -1)
        if col < 0:
            raise ModelFileError(f"no column {y!r} in {data}; columns are {', '.join(names)}.")
        yv = arr[:, col]
        xv = np.delete(arr, col, axis=1)
        xnames = [n for i, n in enumerate(names) if i != col]
        if intercept:
            xv = np.hstack([np.ones((xv.shape[0], 1)), xv])
            xnames = ["(intercept)"] + xnames
        res = fit_linear_regression(xv, yv, a0=a0, b0=b0,
                                    factorization="structured" if structured else "meanfield")
    except VifitError as exc:
        _fail(str(exc))
    console.print(_trace_line(res))
    p = res.params
    sd = np.sqrt(np.diag(p["cov_beta"]))
    for name, m, s in zip(xnames, p["mean_beta"], sd):
        console.print(f"{name}: mean {m:.5g}, sd {s:.4g}")
    console.print(f"noise sd: E[tau] = {p['a'] / p['b']:.5g} (tau ~ Gamma({p['a']:.4g}, "
                  f"{p['b']:.4g})), i.e. sigma about {np.sqrt(p['b'] / p['a']):.4g}")
