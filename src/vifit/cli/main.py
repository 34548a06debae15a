"""The ``vifit`` command line: ``vifit fit MODEL``, ``vifit list``; ``vifit evidence`` and
``vifit compare`` live in ``vifit.cli.evidence``."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vifit.errors import ConfigError, VifitError

class _OneLineErrors(TyperGroup):
    """Usage errors (an option of the wrong type, an unknown option, a missing argument) end
    like every other vifit error: one line starting ``error:`` on stderr and exit status 1,
    not a boxed panel with status 2. ``vifit`` alone still prints the help."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        from typer._click.exceptions import ClickException, NoArgsIsHelpError

        # --verbose is the root command's, but users put it after the subcommand too.
        args = list(sys.argv[1:] if args is None else args)
        if "--verbose" in args[:args.index("--") if "--" in args else len(args)]:
            args = ["--verbose"] + [a for a in args if a != "--verbose"]
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except ClickException as exc:
            message = " ".join(exc.format_message().split())
            command = getattr(getattr(exc, "ctx", None), "command_path", "vifit")
            print(f"error: {message} (see `{command} --help`)", file=sys.stderr)
            sys.exit(1)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Variational inference and evidence estimation: fit q(z) to p(z|x) and report log Z.",
)
out_console = Console()

from vifit.cli.vae import app as _vae_app  # noqa: E402

app.add_typer(_vae_app, name="vae")


@app.callback()
def _root(cache: Annotated[bool, typer.Option(
        "--cache/--no-cache",
        help="Keep compiled programs on disk so a second run compiles nothing it compiled "
             "before ($VIFIT_CACHE_DIR, default ~/.cache/vifit/jax; VIFIT_NO_CACHE=1 turns "
             "it off).")] = True,
        verbose: Annotated[bool, typer.Option(
            "--verbose",
            help="Print other libraries' warnings as they come (else they go to "
                 "warnings.log in --out, or in ~/.cache/vifit; VIFIT_VERBOSE=1).")] = False,
        ) -> None:
    from vifit.cache import enable, fast_compile
    from vifit.cli.quiet import install

    install(verbose)
    fast_compile()
    if cache:
        enable()


def _fail(message: str) -> None:
    """One clear line on stderr, exit status 1, no traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(1)


@app.command("list")
def list_examples() -> None:
    """List the built-in models (the catalog, with its reference answers)."""
    from vifit.catalog import describe

    table = Table(title="built-in models (vifit fit NAME, vifit bench NAME)", show_header=True)
    table.add_column("name")
    table.add_column("description")
    for name, desc in describe().items():
        table.add_row(name, desc)
    out_console.print(table)


@app.command("fit")
def fit_command(
    model: Annotated[str, typer.Argument(help="A built-in model (see `vifit list`) or a .py file "
                                              "defining a NumPyro `model`, a PyMC `model`, or "
                                              "log_density and dim or init.")],
    family: Annotated[Optional[str], typer.Option(
        help="meanfield, fullrank, lowrank, mixture, realnvp, spline or auto; bernoulli, "
             "categorical for discrete models (default: auto; fullrank when an estimator, "
             "optimizer, lr, schedule, objective or init is given; the discrete one); "
             "settings as 'mixture:k=4,component=meanfield' or 'spline:layers=6,width=64'.")
    ] = None,
    objective: Annotated[str, typer.Option(
        help="elbo, iwae, renyi, chi2 or forward_kl (see docs/objectives.md).")] = "elbo",
    k: Annotated[Optional[int], typer.Option(
        "--K", help="iwae, renyi, chi2: draws per group.")] = None,
    alpha: Annotated[Optional[float], typer.Option(help="renyi: the order alpha.")] = None,
    estimator: Annotated[Optional[str], typer.Option(
        help="score, score_plain, reparam, stl, dreg, snis, rb, relaxed or stratified (default: "
             "the family's or the objective's: reparam, dreg or snis; score for "
             "non-differentiable models).")] = None,
    optimizer: Annotated[Optional[str], typer.Option(
        help="adam, sgd, adagrad, rmsprop; natgrad (natural gradient, Gaussian families), "
             "lbfgs-fixed (L-BFGS on fixed draws) or pathfinder (default: adam; natgrad for "
             "a data model on minibatches).")] = None,
    lr: Annotated[Optional[str], typer.Option(
        help="Learning rate, or 'auto' for a pilot search (default 1e-2; natgrad 0.2).")] = None,
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
        help="Write result.json, draws.nc, elbo.png, report.md and report.html here.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    method: Annotated[str, typer.Option(help="vi, or ep: expectation propagation (MODEL must "
                                             "declare its factors; see docs/ep.md).")] = "vi",
    ep_schedule: Annotated[str, typer.Option(help="ep: sequential or parallel.")] = "sequential",
    damping: Annotated[float, typer.Option(help="ep: initial damping in [0, 1).")] = 0.0,
    max_sweeps: Annotated[int, typer.Option(help="ep: most sweeps.")] = 200,
    auto: Annotated[bool, typer.Option(
        "--auto", help="Choose the family: Pathfinder, full-rank, then a flow if needed.")] = False,
    init: Annotated[Optional[str], typer.Option(help="'pathfinder': start from its Gaussian.")
                    ] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        help="Save the fit's state in this folder as it runs; rerunning the same command "
             "resumes from it (same numbers as an uninterrupted run).")] = None,
    checkpoint_every: Annotated[float, typer.Option(
        help="Seconds between checkpoint saves (and once at the end of each stage).")] = 10.0,
    batch_size: Annotated[Optional[str], typer.Option(
        help="Data models: rows per step, 'full' for the full data, or 'auto' (the default: "
             "the full data up to 20,000 rows, else 1024).")] = None,
    control_variate: Annotated[bool, typer.Option(
        help="Data models on minibatches: the Taylor control variate.")] = True,
    devices: Annotated[Optional[int], typer.Option(
        help="Data models: shard the rows over this many devices (default: all of them "
             "for 100,000 rows or more on minibatches, else one).")] = None,
    coordinator: Annotated[Optional[str], typer.Option(
        help="Distributed fit: HOST:PORT of process 0 (or JAX_COORDINATOR_ADDRESS).")] = None,
    num_processes: Annotated[Optional[int], typer.Option(
        help="Distributed fit: number of processes (or JAX_NUM_PROCESSES).")] = None,
    process_id: Annotated[Optional[int], typer.Option(
        help="Distributed fit: this process's id, 0..P-1 (or JAX_PROCESS_ID).")] = None,
) -> None:
    """Fit a variational approximation to MODEL and print the summary and log Z."""
    from vifit.cli.quiet import log_to

    try:
        if out is not None and out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file; give a directory for result.json and the "
                              "other outputs (it is created if missing).")
        log_to(out)
        if method != "vi":
            from vifit.cli.ep import check_method, fit_ep

            check_method(method)
            return fit_ep(model, ep_schedule, damping, max_sweeps, seed, out)
        from vifit.cli.extras import parse_lr

        from vifit.cli.extras import data_options

        family = "auto" if auto else family
        data = data_options(batch_size, control_variate, devices, coordinator, num_processes,
                            process_id)
        _fit(model, family, estimator, optimizer, parse_lr(lr), schedule, steps, draws, seed, tol,
             rank, baseline, cv, out, progress, objective, k, alpha, init, checkpoint,
             checkpoint_every, data)
    except VifitError as exc:
        _fail(str(exc))
    except (typer.Exit, typer.Abort):
        raise
    except OSError as exc:
        where = None if exc.filename is None else Path(exc.filename)
        if out is None or where is None or not (where == out or out in where.parents
                                                or where in out.parents):
            raise
        _fail(f"could not write the results to --out {out}: {exc.strerror or exc} "
              f"({exc.filename}); give a directory you can write to.")
    except Exception as exc:
        # The user's own code (log_density, constrain, a host callback) raising at some z
        # during the fit: one line naming it. Anything else is vifit's bug: keep the traceback.
        from vifit.cli.models import user_code_error

        message = user_code_error(exc, model)
        if message is None:
            raise
        _fail(message)


def _fit(model, family, estimator, optimizer, lr, schedule, steps, draws, seed, tol, rank,
         baseline, cv, out, progress, objective="elbo", k=None, alpha=None, init=None,
         checkpoint=None, checkpoint_every=10.0, data=None) -> None:
    import vifit
    from vifit.cli.models import load_model
    from vifit.estimators import ScoreFunction, get_estimator
    from vifit.cli.extras import cli_family
    from vifit.objectives import get_objective

    fam = family if family == "auto" else cli_family(family, rank)
    obj = get_objective(objective, K=k, alpha=alpha)
    est = None
    if estimator is not None:
        est = (ScoreFunction(baseline=baseline, control_variate=cv) if estimator == "score"
               else get_estimator(estimator))
    data = dict(data or {})
    process = data.pop("process", (0, 1))
    target, origin = load_model(model, process)
    lead = process[0] == 0  # in a distributed fit only process 0 prints and writes
    console = out_console if lead else Console(quiet=True)
    console.print(f"[bold]{escape(target.name)}[/]: {escape(str(origin))}, d = {target.dim}")
    from vifit.data import DataTarget

    if not isinstance(target, DataTarget):
        if any(v not in (None, "auto") for k, v in data.items() if k != "control_variate"):
            raise ConfigError("--batch-size, --devices and the distributed options are for "
                              "data models (a file defining log_prior, log_lik and data).")
        data = {}
    chosen = optimizer not in (None, "adam") or (objective, estimator, lr, schedule, init) != (
        "elbo", None, None, "constant", None)
    if family == "auto" and chosen:
        raise ConfigError("--auto (family auto) chooses the estimator, optimizer, learning rate, "
                          "schedule, objective and start itself; drop those options, or pick a "
                          "--family.")
    if family is None and not chosen and not target.discrete and target.differentiable:
        # auto beat every fixed choice in `vifit bench` (docs/bench.md), so it is the default
        # when nothing else is asked for; naming any method settings keeps the full-rank one.
        family = "auto"
        console.print("family: auto (the default; --family fullrank for one Gaussian)")
    resume = dict(checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    if lead:
        from vifit.cli.prefetch import OUTPUT_MODULES, start

        # Without --out only the printed summary's pandas is needed: importing the rest would
        # hold the GIL against the fit's tracing for nothing.
        start(OUTPUT_MODULES if out is not None else ("pandas",))
    if checkpoint is not None and any(Path(checkpoint).glob("*.npz")):
        out_console.print(f"resuming from the checkpoint in {checkpoint}")
    try:
        progress = progress and lead
        from vifit.ahead import expecting_outputs

        outputs = expecting_outputs() if out is not None and lead else contextlib.nullcontext()
        if _own_process:
            import gc

            gc.freeze()  # the libraries and the model, imported: never garbage here
        with outputs:
            if family == "auto":
                result = vifit.fit(target, "auto", steps=steps, draws=draws, seed=seed,
                                   tol=tol, progress=progress, **resume, **data)
            else:
                result = vifit.fit(target, fam, objective=obj, estimator=est,
                                   optimizer=optimizer, lr=lr, schedule=schedule, steps=steps,
                                   draws=draws, seed=seed, tol=tol, progress=progress,
                                   init=init, **resume, **data)
    except KeyboardInterrupt:
        # Outside the compiled loop (Pathfinder, the final evaluation): nothing finished.
        print("interrupted before a fit finished; nothing was written"
              + (f" (the checkpoint in {checkpoint} is kept)" if checkpoint else "") + ".",
              file=sys.stderr)
        raise typer.Exit(130) from None
    if not lead:  # the other processes of a distributed fit: same result, nothing to add
        return
    print_result(result)
    from vifit.cli.extras import print_info

    print_info(result, out_console)
    if out is not None:
        from vifit.report import write_report

        try:
            paths = write_report(result, out)
        except KeyboardInterrupt:
            print(f"interrupted while writing the outputs: {out} is incomplete; rerun the "
                  "command to write them all.", file=sys.stderr)
            raise typer.Exit(130) from None
        # Paths are never wrapped: they are copied into other commands.
        out_console.print("wrote " + ", ".join(str(p) for p in paths.values()), soft_wrap=True)
        out_console.print(f"report: [bold]{paths['html']}[/] (open it in a browser)",
                          soft_wrap=True)
    if result.stop_reason in ("diverged", "non-finite"):
        _fail(result.verdict.text)
    if result.stop_reason == "interrupted":
        print("interrupted: the outputs hold the last good state"
              + (f"; rerun the same command to resume from {checkpoint}" if checkpoint else "")
              + ".", file=sys.stderr)
        raise typer.Exit(130)
    if (result.info.get("auto") or {}).get("interrupted"):
        print(f"interrupted: auto reports the last stage it finished ({result.family.name})"
              + (", and the outputs hold it" if out is not None else "") + ".",
              file=sys.stderr)
        raise typer.Exit(130)


def print_result(result) -> None:
    summary = result.summary(result.seed)
    how = {"psis": "; importance-weighted toward p (PSIS, ESS "
                   f"{summary.attrs['ess']:.0f})",
           "defensive": "; q's tails too light: draws of q widened by Cauchy tails, "
                        f"importance-weighted toward p (ESS {summary.attrs['ess']:.0f})"}.get(
        summary.attrs["weighting"], "; draws of q")
    table = Table(title=f"posterior summary ({result.family.name}, {result.estimator}{how})")
    table.add_column("param")
    for col in ("mean", "sd", "q5", "q50", "q95"):
        table.add_column(col, justify="right")
    for name, row in summary.iterrows():
        table.add_row(name, *(f"{row[c]:.4g}" for c in ("mean", "sd", "q5", "q50", "q95")))
    out_console.print(table)
    ev = result.evidence
    for note in result.notes:
        out_console.print(f"note: {escape(note)}")
    out_console.print(
        f"stopped: {result.stop_reason} after {result.steps} steps "
        f"({result.rejected} rejected), {result.seconds:.2f} s"
    )
    if result.info.get("timing"):
        from vifit.clock import Timing

        t = result.info["timing"]
        out_console.print("time   = " + Timing(t["seconds"], t["compile_seconds"]).text()
                          + " (the whole fit)")
    out_console.print(f"ELBO   = {result.elbo:.4f} ± {result.elbo_se:.4f}  (lower bound on log Z)")
    if result.objective != "elbo":
        how = "maximized" if result.direction > 0 else "minimized"
        out_console.print(f"{result.objective} = {result.objective_value:.4f} ± "
                          f"{result.objective_se:.4f}  (the fitted objective, {how})")
    out_console.print(f"log Z  = {ev.log_z:.4f} ± {ev.se:.4f}  "
                      f"(Pareto-smoothed importance sampling, {ev.n} draws)")
    summed = result.info.get("enumeration")
    if summed:
        out_console.print(f"exact log Z = {summed['log_z']:.4f} (p summed over all "
                          f"{summed['states']:,} states)")
    elif "log_z" in result.target.exact:
        out_console.print(f"exact log Z = {result.target.exact['log_z']:.4f}")
    lower = result.bracket["lower"]
    if summed:
        out_console.print(f"bracket: log Z = {summed['log_z']:.6f} ± {summed['rounding']:.2g} "
                          "(the sum over every state, ± the rounding of log p)")
    else:
        out_console.print("bracket: " + (f"log Z >= {lower:.4f} (the ELBO, ± "
                                         f"{result.elbo_se:.4f})" if lower is not None
                                         else "no finite lower bound")
                          + "; upper: none from a fit (`vifit evidence` adds IWAE, AIS and "
                          "CUBO)", soft_wrap=True)
    out_console.print(f"k-hat  = {ev.khat:.3f} ({ev.verdict.label})")
    verdict = result.verdict
    colour = {"good": "green", "usable with care": "yellow"}.get(verdict.label, "red")
    out_console.print(f"verdict: [{colour}]{verdict.label}[/] — {escape(verdict.text)}",
                      soft_wrap=True)


from vifit.cli.gradvar import gradvar_command  # noqa: E402

app.command("gradvar")(gradvar_command)

from vifit.cli.cavi import cavi_app  # noqa: E402

app.add_typer(cavi_app, name="cavi")

from vifit.cli.bench import bench_command  # noqa: E402

app.command("bench")(bench_command)

from vifit.cli.evidence import register as _register_evidence  # noqa: E402

_register_evidence(app)  # vifit evidence, vifit compare


# Python's collector, for a command that runs one job and exits: JAX and its libraries leave
# some 350,000 objects that every full collection walks again (7 of them, 0.56-0.70 s of an
# eight-schools run); collections every 20,000 allocations instead of 700, and the objects
# alive when the fit starts frozen out of them (``gc.freeze``), took all collecting to 0.13 s.
GC_THRESHOLDS = (20_000, 20, 20)
# Set by main(): this process is the command itself, not a host that called the app (a test).
_own_process = False


def main() -> None:
    import gc

    global _own_process
    _own_process = True
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    _leave(code)


def _leave(code) -> None:
    """Exit with ``code`` as ``sys.exit`` would, but without the interpreter's teardown: the
    exit handlers run (the warnings log, JAX's own clean-up, logging) and the standard streams
    are flushed, then the process ends. Freeing every module and compiled program one by one
    took half a second of each command's wall time, for nothing."""
    import atexit
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        # The command's work is done (or was stopped): a Ctrl-C now would only interrupt the
        # exit handlers, and JAX's printed a KeyboardInterrupt traceback after the report
        # had been written.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    ahead = sys.modules.get("vifit.ahead")
    if ahead is not None:  # a compile still running: let it finish writing its cache entry
        ahead.shutdown()
    run_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_handlers is None:  # an interpreter without it: the ordinary exit
        sys.exit(code)
    run_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe: nothing left to say
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
