"""``vifit fit MODEL --method ep``: expectation propagation from the command line.

MODEL is a built-in EP model (``probit_regression``, ``logistic_vaso``,
``gp_classification``) or a Python file that defines ``ep_model = vifit.ep.Factorized(...)``.
Prints the same summary table, ELBO, importance-sampling log Z and k-hat as a VI fit, plus the
EP log Z and how the iteration went; ``--out DIR`` writes result.json, draws.nc and report.md.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from vifit.errors import ConfigError, ModelFileError
from vifit.jsonio import dumps


def check_method(method: str) -> None:
    if method != "ep":
        raise ConfigError(f"unknown method {method!r}; choose vi or ep.")


def load_ep_model(spec: str):
    """A vifit.ep.Factorized and a one-line description of where it came from."""
    from vifit.cli.models import import_model_file
    from vifit.ep import Factorized
    from vifit.examples import EP_MODELS

    if spec in EP_MODELS:
        return EP_MODELS[spec](), f"built-in EP model {spec!r}"
    path, module = import_model_file(
        spec, f"a built-in EP model ({', '.join(EP_MODELS)})",
        "give a Python file that defines ep_model = vifit.ep.Factorized(...).")
    model = getattr(module, "ep_model", None)
    if not isinstance(model, Factorized):
        raise ModelFileError(
            f"{path} defines no `ep_model`; --method ep needs the model's factors: add "
            "`ep_model = vifit.ep.Factorized(term, data, design, prior_sd=...)`."
        )
    return model, f"ep_model from {path}"


def fit_ep(spec: str, schedule: str, damping: float, max_sweeps: int, seed: int,
           out: Path | None) -> None:
    from vifit import ep
    from vifit.cli.main import out_console, print_result

    model, origin = load_ep_model(spec)
    out_console.print(f"[bold]{model.name}[/]: {origin}, d = {model.dim}, "
                      f"{model.n} {model.term.name} terms")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ep.EPWarning)
        res = ep.fit(model, schedule=schedule, damping=damping, max_sweeps=max_sweeps)
    for w in caught:
        out_console.print(f"[yellow]warning:[/] {w.message}")
    fit = res.to_fit_result(seed=seed)
    print_result(fit)
    out_console.print(
        f"EP     : {res.status} after {res.sweeps} sweeps ({res.schedule}, damping "
        f"{res.damping:.3g}, {res.skipped} site updates skipped, {res.negative_sites} negative "
        f"site precisions)")
    out_console.print(f"EP log Z = {res.log_z:.4f}  (EP's own estimate; the log Z line above is "
                      "importance sampling from the EP Gaussian)")
    if out is not None:
        paths = write_ep_report(res, fit, out)
        out_console.print("wrote " + ", ".join(str(p) for p in paths))


def write_ep_report(res, fit, out: Path) -> list[Path]:
    """result.json (FitResult's stable keys plus an ``ep`` block), draws.nc, report.md."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = fit.to_dict(fit.seed)
    record["ep"] = {
        "log_z": res.log_z if res.log_z == res.log_z else "nan", "sweeps": res.sweeps,
        "converged": res.converged, "status": res.status, "schedule": res.schedule,
        "damping": res.damping, "damping_raised_at": list(res.damping_raised_at),
        "skipped": res.skipped, "negative_sites": res.negative_sites,
        "site_change": [float(x) for x in res.history], "tol": res.tol,
    }
    paths = [out / "result.json", out / "draws.nc", out / "report.md"]
    paths[0].write_text(dumps(record))
    fit.to_arviz(fit.seed).to_netcdf(str(paths[1]))
    rows = "\n".join(f"| {k} | {v['mean']:.4g} | {v['sd']:.4g} | {v['q5']:.4g} | {v['q50']:.4g} "
                     f"| {v['q95']:.4g} |" for k, v in record["params"].items())
    paths[2].write_text(
        f"# vifit EP: {res.model.name}\n\n"
        f"Expectation propagation ({res.schedule}), {res.status} after {res.sweeps} sweeps, "
        f"damping {res.damping:.3g}, {res.seconds:.2f} s.\n\n"
        f"| quantity | estimate | standard error |\n|---|---|---|\n"
        f"| log Z (EP) | {res.log_z:.4f} | |\n"
        f"| log Z (importance sampling from the EP Gaussian) | {fit.log_z:.4f} | "
        f"{fit.log_z_se:.4f} |\n"
        f"| ELBO of the EP Gaussian | {fit.elbo:.4f} | {fit.elbo_se:.4f} |\n\n"
        f"Pareto k-hat = {fit.khat:.3f}: **{fit.evidence.verdict.label}**. "
        f"{fit.evidence.verdict.text}\n\n"
        f"| param | mean | sd | 5% | 50% | 95% |\n|---|---|---|---|---|---|\n{rows}\n")
    return paths
