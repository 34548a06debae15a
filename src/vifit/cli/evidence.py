"""``vifit evidence MODEL`` and ``vifit compare MODEL_A MODEL_B ...``: fit, then estimate log Z
every way vifit can, with a verdict; or rank models of the same data by their evidence."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from vifit.errors import VifitError
from vifit.jsonio import dumps

_COLOURS = {"good": "green", "usable with care": "yellow", "not reliable": "red"}

Family = Annotated[Optional[str], typer.Option(
    help="Any family of `vifit fit` (default: fullrank; bernoulli/categorical for discrete "
         "models).")]
Estimator = Annotated[Optional[str], typer.Option(
    help="Gradient estimator of the fit (default: reparam; score for non-differentiable and "
         "discrete models).")]
Steps = Annotated[int, typer.Option(help="Most optimizer steps of the fit.")]
Lr = Annotated[Optional[float], typer.Option(
    help="Learning rate of the fit (default 1e-2; giving it fits the full-rank Gaussian).")]
Seed = Annotated[int, typer.Option(help="Random seed; same seed, same numbers.")]
Rank = Annotated[int, typer.Option(help="Rank of the lowrank family.")]
Draws = Annotated[int, typer.Option(help="Draws from q for ELBO, IWAE, PSIS and CUBO.")]
IwaeK = Annotated[int, typer.Option("--iwae-k", help="K of the IWAE-K bound.")]
Particles = Annotated[Optional[int], typer.Option(
    help="AIS/SMC particles (default: 4096, fewer above d = 16 or where log p's "
         "gradient is costly).")]
Replicates = Annotated[int, typer.Option(
    help="Independent AIS/SMC replicates (the standard error comes from them); "
         "= particles for plain AIS.")]
Ais = Annotated[bool, typer.Option(help="Run annealed importance sampling / SMC.")]
Progress = Annotated[bool, typer.Option(help="Show the fit's progress bar.")]


def register(app: typer.Typer) -> None:
    """Add the ``evidence`` and ``compare`` commands to the ``vifit`` app."""
    app.command("evidence")(evidence_command)
    app.command("compare")(compare_command)


def evidence_command(
    model: Annotated[str, typer.Argument(help="A built-in example (see `vifit list`) or a .py "
                                              "file defining log_density and dim or init.")],
    family: Family = None, estimator: Estimator = None, steps: Steps = 10_000,
    lr: Lr = None, seed: Seed = 0, rank: Rank = 2, draws: Draws = 16_384, iwae_k: IwaeK = 64,
    particles: Particles = None, replicates: Replicates = 32, ais: Ais = True,
    out: Annotated[Optional[Path], typer.Option(
        help="Write evidence.json, evidence_details.json and report.html here.")] = None,
    progress: Progress = True,
) -> None:
    """Fit MODEL, then estimate its log evidence log Z: ELBO and IWAE (lower bounds), PSIS and
    AIS/SMC (point estimates), CUBO (upper bound), each with its standard error, and a verdict."""
    from vifit.cli.main import _fail
    from vifit.cli.quiet import log_to
    from vifit.errors import VifitError

    log_to(out)
    try:
        with _interrupted("before the evidence was estimated; nothing was written."):
            result = _evidence(model, family, estimator, steps, lr, seed, rank, draws, iwae_k,
                               particles, replicates, ais, progress)
        print_evidence(result)
        if out is not None:
            with _interrupted(f"while writing the outputs: {out} is incomplete; rerun the "
                              "command to write them all."):
                write_evidence(result, out)
    except VifitError as exc:
        _fail(str(exc))


@contextlib.contextmanager
def _interrupted(when: str):
    """A Ctrl-C inside says what it left (``when``) and exits 130, as `vifit fit` does: it
    ended `vifit evidence` with status 130 and no word, after minutes of fitting and AIS."""
    try:
        yield
    except KeyboardInterrupt:
        print(f"interrupted {when}", file=sys.stderr)
        raise typer.Exit(130) from None


def compare_command(
    models: Annotated[list[str], typer.Argument(help="Two or more models of the same data: "
                                                     "built-in examples or .py files.")],
    family: Family = None, estimator: Estimator = None, steps: Steps = 10_000,
    lr: Lr = None, seed: Seed = 0, rank: Rank = 2, draws: Draws = 16_384, iwae_k: IwaeK = 64,
    particles: Particles = None, replicates: Replicates = 32, ais: Ais = True,
    out: Annotated[Optional[Path], typer.Option(help="Write compare.json here.")] = None,
    progress: Progress = True,
) -> None:
    """Rank models of the same data by their evidence: log Bayes factors against the best, with
    standard errors and a plain-language reading (Kass & Raftery)."""
    from vifit.cli.main import _fail, out_console
    from vifit.errors import VifitError
    from vifit.evidence.compare import rank_models

    if len(models) < 2:
        _fail("compare needs at least two models, e.g. `vifit compare model_a.py model_b.py`.")
    if len(set(models)) < len(models):
        _fail("the same model is named twice; name each model once.")
    try:
        results = {}
        for spec in models:
            with _interrupted(f"while estimating the evidence of {spec}; nothing was "
                              "written."):
                res = _evidence(spec, family, estimator, steps, lr, seed, rank, draws,
                                iwae_k, particles, replicates, ais, progress)
            print_evidence(res)
            # Models by their short names (a file's stem), by the argument when those clash.
            results[res.target_name if res.target_name not in results else spec] = res
        rows = rank_models(results)
    except VifitError as exc:
        _fail(str(exc))
    table = Table(title="evidence, best first")
    for col in ("model", "log Z", "± se", "by", "verdict", "log BF vs best", "± se"):
        table.add_column(col, justify="left" if col in ("model", "by", "verdict") else "right")
    ordered = sorted(results.items(), key=lambda kv: kv[1].log_z, reverse=True)
    by_worse = {row.worse: row for row in rows}
    for name, res in ordered:
        row = by_worse.get(name)
        colour = _COLOURS.get(res.verdict.label, "red")
        table.add_row(name, f"{res.log_z:.3f}", f"{res.log_z_se:.3f}", res.recommended,
                      f"[{colour}]{res.verdict.label}[/]",
                      "0 (best)" if row is None else f"{-row.log_bf:.3f}",
                      "" if row is None else f"{row.se:.3f}")
    out_console.print(table)
    for row in rows:
        out_console.print(escape(row.reading), soft_wrap=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        record = {"models": {name: res.to_dict() for name, res in results.items()},
                  "bayes_factors": [row._asdict() for row in rows]}
        (out / "compare.json").write_text(dumps(record))
        out_console.print(f"wrote {out / 'compare.json'}")


def _evidence(model, family, estimator, steps, lr, seed, rank, draws, iwae_k, particles,
              replicates, ais, progress):
    import vifit
    from vifit.cli.main import out_console
    from vifit.cli.models import load_model
    from vifit.estimators import get_estimator
    from vifit.evidence.api import default_ais_for
    from vifit.cli.extras import cli_family

    fam = cli_family(family, rank)
    est = None if estimator is None else get_estimator(estimator)
    target, origin = load_model(model)
    out_console.print(f"[bold]{escape(target.name)}[/]: {escape(str(origin))}, d = {target.dim}")
    if (family, estimator, lr) == (None, None, None) and not target.discrete \
            and target.differentiable:
        # The same default as `vifit fit`: auto, whose Gaussian stage is natural-gradient VI,
        # so that on a Gaussian target the ELBO reaches log Z to its error.
        fam = "auto"
        out_console.print("family: auto (the default, as for vifit fit)")
    if fam == "auto":
        fit = vifit.fit(target, "auto", steps=steps, seed=seed, progress=progress)
    else:
        fit = vifit.fit(target, fam, estimator=est, lr=lr, steps=steps, seed=seed,
                        progress=progress)
    if fit.stop_reason == "interrupted" or (fit.info.get("auto") or {}).get("interrupted"):
        raise KeyboardInterrupt  # Ctrl-C inside a fit's loop ends the fit (or auto's stage)
    if fit.stop_reason in ("diverged", "non-finite"):
        raise FitFailed(fit.verdict.text)
    config = False
    if ais and not target.differentiable:
        out_console.print("AIS skipped: its HMC moves need the gradient of log p, and this "
                          "model is " + ("discrete." if target.discrete
                                         else "marked differentiable=False."))
    elif ais:
        config = default_ais_for(target)
        if particles is not None:
            config = config._replace(particles=particles)
        config = config._replace(replicates=replicates)
    return vifit.evidence(target, fit, seed=seed, draws=draws, iwae_k=iwae_k, ais=config)


class FitFailed(VifitError):
    """The fit that evidence would start from failed (diverged or non-finite)."""


def print_evidence(result) -> None:
    from vifit.cli.main import out_console
    from vifit.evidence.api import LABELS

    exact = result.exact_log_z
    table = Table(title=f"log Z of {result.target_name} (d = {result.dim})")
    for col in ("estimator", "kind", "log Z", "± se", "seconds"):
        table.add_column(col, justify="left" if col in ("estimator", "kind") else "right")
    if exact is not None:
        table.add_column("error", justify="right")
    for name, e in result.estimates.items():
        label = LABELS.get(name, name)
        if name == "iwae":
            label = f"IWAE-{e.details.get('k', '?')}"
        if name == "ais":
            d = e.details
            label = (f"{d.get('method', 'ais').upper()} ({d.get('particles')} particles, "
                     f"{d.get('replicates')} replicates, {d.get('temperatures')} temperatures)")
        mark = " *" if name == result.recommended else ""
        row = [label + mark, result.kind(name), f"{e.estimate:.4f}", f"{e.se:.4f}",
               f"{e.seconds:.2f}"]
        if exact is not None:
            row.append(f"{e.estimate - exact:+.4f}")
        table.add_row(*row)
    out_console.print(table)
    summed = result.estimates.get("enumeration")
    if summed is not None:
        out_console.print(f"exact log Z = {summed.estimate:.4f} (p summed over all "
                          f"{summed.details.get('states', 0):,} states)")
    elif exact is not None:
        out_console.print(f"exact log Z = {exact:.4f} (known for this target)")
    colour = _COLOURS.get(result.verdict.label, "red")
    out_console.print(f"log Z = {result.log_z:.4f} ± {result.log_z_se:.4f} (* {result.recommended})")
    br = result.bracket
    fmt = lambda x: "none" if x is None else f"{x:.4f}"  # noqa: E731
    out_console.print(f"bracket: lower {fmt(br['lower'])}, upper {fmt(br['upper'])} "
                      "(bounds vifit stands behind)")
    for name, why in result.verdict.unverified.items():
        out_console.print(f"unverified {name}: {escape(why)}", soft_wrap=True)
    out_console.print(f"verdict: [{colour}]{result.verdict.label}[/] — "
                      f"{escape(' '.join(result.verdict.reasons))}", soft_wrap=True)


def write_evidence(result, out: Path) -> None:
    from vifit.cli.main import out_console
    from vifit.report_html import report_html

    out.mkdir(parents=True, exist_ok=True)
    (out / "evidence.json").write_text(dumps(result.to_dict()))
    (out / "evidence_details.json").write_text(dumps(result.details()))
    (out / "report.html").write_text(report_html(evidence=result), encoding="utf-8")
    out_console.print(f"wrote {out / 'evidence.json'}, {out / 'evidence_details.json'}, "
                      f"{out / 'report.html'}")
