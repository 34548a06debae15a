"""Time to the first answer: from a cold process to the printed result, vifit against its peers.

For each catalog model, in one run, every method in its own fresh Python process:

* ``vifit auto`` and ``vifit fullrank``: the command line a user types (``vifit fit MODEL``,
  ``vifit fit MODEL --family fullrank``: it prints the fit, the summary and log Z and writes
  nothing), once with an empty persistent compilation cache (**cold**) and once more with the
  cache that first run filled (**warm**); then the same fit with ``--out`` (its five files:
  result.json gives the accuracy columns), and auto with ``--out`` from an empty cache (the
  last columns: what writing the report adds).
* ``numpyro``: NumPyro SVI with ``AutoMultivariateNormal``, 10,000 Adam steps (lr 0.01, one
  particle: NumPyro's defaults), on a model that wraps the same log density in
  ``numpyro.factor``, then 4,000 draws of its q for the ELBO and the posterior summary. NumPyro
  has no cache of its own on by default, so each of its runs is cold.
* ``pathfinder``: BlackJAX Pathfinder, then 4,000 draws.

Peers need the model, which lives in vifit's catalog: their process imports vifit to get it,
and the seconds that import and the model's set-up take (after JAX's own import, which the
peer pays too) are subtracted from the peer's wall time, so the peers are timed as if the
model had been typed into their own script.

Accuracy: the ELBO of the final q (4,000 draws; vifit's own is the one it prints), and where the
catalog has a reference, the largest error of a posterior mean in reference sds and of a
posterior sd (relative), over the model's constrained parameters, from the summary each method
reports (vifit's is PSIS-weighted where its k-hat allows, as it prints).

    .venv/bin/python bench/first_answer.py [MODEL ...] [--json PATH]

The default models are eight_schools and the small posteriordb ones (d <= 30). This is a
benchmark for people, not a test: the times move with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_MODELS = ("eight_schools", "kidscore_momhsiq", "earn_height", "arK", "garch11",
                  "kilpisjarvi", "nes", "logmesquite_logvas")
NUMPYRO_STEPS = 10_000
N_DRAWS = 4000


def _child(method: str, model: str, out: str) -> None:
    """One peer's run in this fresh process; writes its record to ``out`` (JSON)."""
    import jax  # the peer's own cost: its script imports JAX too
    import jax.numpy as jnp

    t_setup = time.perf_counter()
    from vifit import catalog

    target = catalog.get_model(model)
    names, flat = target.constrained_names()
    setup = time.perf_counter() - t_setup
    t0 = time.perf_counter()
    if method == "numpyro":
        import numpyro
        import numpyro.distributions as dist
        from numpyro.infer import SVI, Trace_ELBO, autoguide, init_to_value

        def m():
            z = numpyro.sample("z", dist.ImproperUniform(dist.constraints.real_vector, (),
                                                         (target.dim,)))
            numpyro.factor("log_density", target.log_density(z))

        guide = autoguide.AutoMultivariateNormal(m, init_loc_fn=init_to_value(
            values={"z": target.init}))
        svi = SVI(m, guide, numpyro.optim.Adam(0.01), Trace_ELBO())
        run = svi.run(jax.random.key(0), NUMPYRO_STEPS, progress_bar=False)
        q = guide.get_posterior(run.params)
        z = q.sample(jax.random.key(1), (N_DRAWS,))
        logq = q.log_prob(z)
    elif method == "pathfinder":
        import blackjax

        state, _ = blackjax.vi.pathfinder.approximate(jax.random.key(0), target.log_density,
                                                      target.init, maxiter=1000)
        z, logq = blackjax.vi.pathfinder.sample(jax.random.key(1), state, N_DRAWS)
    else:
        raise SystemExit(f"unknown method {method!r}")
    logp = jax.jit(jax.vmap(target.log_density))(jnp.asarray(z))
    logw = np.asarray(logp, np.float64) - np.asarray(logq, np.float64)
    x = np.asarray(jax.jit(jax.vmap(flat))(jnp.asarray(z)), np.float64)
    elbo = float(np.mean(logw[np.isfinite(logw)])) if np.isfinite(logw).any() else -np.inf
    seconds = time.perf_counter() - t0
    params = {n: {"mean": float(np.nanmean(x[:, i])), "sd": float(np.nanstd(x[:, i], ddof=1))}
              for i, n in enumerate(names)}
    Path(out).write_text(json.dumps({"setup_seconds": setup, "seconds": seconds,
                                     "elbo": elbo, "params": params}))


def _errors(params: dict, model: str) -> tuple[float, float]:
    """(largest |mean error| in reference sds, largest |sd / ref sd - 1|), nan without one."""
    from vifit import catalog

    try:
        ref = catalog.reference(model)
    except (KeyError, FileNotFoundError, ValueError):
        return float("nan"), float("nan")
    mean_err, sd_err = [], []
    for name, m, s in zip(ref.names, ref.mean, ref.sd):
        if name in params:
            mean_err.append(abs(params[name]["mean"] - m) / s)
            sd_err.append(abs(params[name]["sd"] / s - 1.0))
    return (max(mean_err), max(sd_err)) if mean_err else (float("nan"), float("nan"))


def _vifit(model: str, family: str, cache: Path, files: bool = False) -> dict:
    """One ``vifit fit MODEL`` in a fresh process: the plain command (``files`` False: the
    printed result, nothing written, as NumPyro's run here), or with ``--out`` (the five
    files too), whose result.json gives the posterior summary for the accuracy columns."""
    env = dict(os.environ, VIFIT_CACHE_DIR=str(cache))
    env.pop("VIFIT_NO_CACHE", None)
    with tempfile.TemporaryDirectory(prefix="vifit-first-") as tmp:
        cmd = [sys.executable, "-m", "vifit", "fit", model, "--no-progress"]
        if files:
            cmd += ["--out", tmp]
        if family != "auto":
            cmd += ["--family", family]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"wall": wall, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
        printed = re.search(r"^ELBO\s+=\s+(\S+)", proc.stdout, flags=re.M)
        if not files:
            return {"wall": wall, "elbo": float(printed.group(1)) if printed else np.nan}
        rec = json.loads((Path(tmp) / "result.json").read_text())
    timing = rec.get("timing") or {}
    return {"wall": wall, "elbo": rec["elbo"], "verdict": rec["verdict_label"],
            "family": rec["family"], "compile": timing.get("compile_seconds"),
            "params": rec["params"]}


def _peer(model: str, method: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="vifit-peer-") as tmp:
        out = Path(tmp) / "peer.json"
        cmd = [sys.executable, __file__, "--child", method, model, str(out)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return {"wall": 600.0, "error": "no answer in 600 s"}
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            return {"wall": wall, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
        rec = json.loads(out.read_text())
    return {"wall": wall - rec["setup_seconds"], "elbo": rec["elbo"], "params": rec["params"],
            "setup": rec["setup_seconds"]}


def run_model(model: str) -> dict:
    """The plain command cold and warm (auto and fullrank), then the same fit writing its files
    (warm: its accuracy is the plain runs' too, the same seed giving the same fit, which the
    printed ELBOs confirm), and auto writing its files from a cold cache."""
    row: dict = {"model": model}
    for family in ("auto", "fullrank"):
        with tempfile.TemporaryDirectory(prefix="vifit-cache-") as cache:
            row[f"{family}_cold"] = _vifit(model, family, Path(cache))
            row[f"{family}_warm"] = _vifit(model, family, Path(cache))
            record = _vifit(model, family, Path(cache), files=True)
        for when in ("cold", "warm"):
            rec = row[f"{family}_{when}"]
            if "error" not in rec and "error" not in record:
                rec["same_fit"] = bool(np.isclose(rec["elbo"], record["elbo"], atol=1e-4))
                rec.update({k: record[k] for k in ("params", "verdict", "family")})
    with tempfile.TemporaryDirectory(prefix="vifit-cache-") as cache:
        row["auto_files_cold"] = _vifit(model, "auto", Path(cache), files=True)
    row["numpyro"] = _peer(model, "numpyro")
    row["pathfinder"] = _peer(model, "pathfinder")
    for key, rec in row.items():
        if isinstance(rec, dict) and "params" in rec:
            rec["mean_err"], rec["sd_err"] = _errors(rec.pop("params"), model)
    return row


def _cell(rec: dict) -> str:
    if "error" in rec:
        return f"failed ({rec['error'][:40]})"
    if "mean_err" not in rec:  # a plain run whose record failed
        return f"{rec['wall']:.1f} s (ELBO {rec['elbo']:.2f})"
    err = "" if np.isnan(rec["mean_err"]) else f", {rec['mean_err']:.2f} sd / {rec['sd_err']:.0%}"
    other = "" if rec.get("same_fit", True) else "; NOT the recorded fit"
    return f"{rec['wall']:.1f} s (ELBO {rec['elbo']:.2f}{err}{other})"


def table(rows: list[dict]) -> str:
    head = ("| model | vifit auto cold | auto warm | fullrank cold | fullrank warm | "
            "NumPyro AutoMVN cold | Pathfinder cold | NumPyro / auto cold | "
            "NumPyro / auto warm | auto cold, writing --out | NumPyro / that |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        def ratio(a: str) -> str:
            if "error" in r["numpyro"] or "error" in r[a]:
                return "-"
            return f"{r['numpyro']['wall'] / r[a]['wall']:.2f}x"

        lines.append(f"| {r['model']} | {_cell(r['auto_cold'])} | {_cell(r['auto_warm'])} | "
                     f"{_cell(r['fullrank_cold'])} | {_cell(r['fullrank_warm'])} | "
                     f"{_cell(r['numpyro'])} | {_cell(r['pathfinder'])} | "
                     f"{ratio('auto_cold')} | {ratio('auto_warm')} | "
                     f"{_cell(r['auto_files_cold'])} | {ratio('auto_files_cold')} |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=list(DEFAULT_MODELS))
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    for model in args.models:
        t0 = time.perf_counter()
        rows.append(run_model(model))
        print(f"{model}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(table(rows))
    print("\nTimes: wall seconds from a fresh process to the printed result: `vifit fit MODEL "
          "--no-progress` as typed (peers: less the seconds their process spent importing "
          "vifit for the model); the last two columns: auto from a cold cache writing its five "
          "files too (`--out`). In brackets: the ELBO of the final q, and the largest "
          "posterior-mean error (reference sds) / sd error against the catalog's reference "
          "(vifit's from the run with --out, the same fit). Ratios above 1: vifit answered "
          "first.")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
