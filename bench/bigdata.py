"""Bayesian logistic regression on large synthetic data: vifit on minibatches against vifit on
the full data and against NumPyro's subsampled SVI, by time to accuracy.

The data (seeded): ``X ~ N(0, 1)`` float32 of shape (N, d), ``beta ~ N(0, I / d)``,
``y ~ Bernoulli(sigmoid(X beta))``; the model's prior is ``beta ~ N(0, I)``. X is generated
in chunks of rows into one preallocated array, so peak memory stays near the data's size.

The reference for each size is the Laplace approximation at the mode, by Newton's method in
float64 with ``X^T W X`` accumulated over chunks of rows. It is exact enough: at N = 1e5,
4000 importance draws from it keep an effective sample size of 3945 (d = 100) and 3998
(d = 20), so it matches the posterior to within their Monte Carlo error (0.016 sd), and larger
N only brings it closer. References are cached in ``bench/.cache/`` by (N, d, seed): at
1e7 x 100 each Newton pass reads 4 GB.

Methods (each in its own process, so that peak RSS, ``ru_maxrss``, is the method's own; it
includes the data, whose size the header prints):

* ``vifit mb``: ``vifit.fit(DataTarget(...), "fullrank", batch_size=B)`` for B in 256, 1024,
  4096, with the defaults of a minibatch Gaussian fit (natural gradient, Taylor control
  variate); at B = 1024 also ``control_variate=False`` (``mb no-cv``) and
  ``optimizer="adam"`` (``mb adam``).
* ``vifit full``: ``batch_size=None`` (the full data at every step; its default optimizer,
  Adam). Skipped above N = 1e6 unless ``--all``: every step is 16 draws x N rows.
  ``--methods ...,full-natgrad`` adds the full data with ``optimizer="natgrad"``, the
  minibatch fits' optimizer: few steps, but each is 16 draws x d Hessian-vector products over
  all N rows (at 1e5 x 20: 0.25 s a step, 0.1 sd after 200 steps; d = 100 costs ~5x more).
* ``numpyro``: ``numpyro.plate("data", N, subsample_size=B)``, AutoMultivariateNormal,
  ``Trace_ELBO()``, Adam at lr 1e-2 and 1e-3 (the better is shown, its lr in the name; the
  other is listed under the table). Steps run 100 at a time in a jitted ``lax.scan``; after
  each 100 the guide's mean is compared with the reference, and the run stops there once it
  is within 0.1 sd, else after 20 epochs or 20000 steps, whichever comes first
  (``--numpyro-epochs``, ``--numpyro-steps``), or at ``--max-seconds``.

Columns. ``t->acc``: wall seconds from the data in memory (so the DataTarget's checks and
the compilations count) to the first window (100 steps) whose mean parameters put q's mean
within 0.1 reference sd of the reference in every coordinate. It is an oracle's stopping
time: neither library knows the reference. For vifit the parameters of each window are read
by wrapping ``vifit.optim.loop.make_chunk`` in this process (vifit's callback gets only the
step count and the objective); the numbers the fit computes are unchanged. ``fit->acc``: the
fit's own total wall time when its final mean is within 0.1 sd (it stopped by its own rule),
else "no". ``mean err``: the final max |mean - ref| / ref sd; ``log sd``: the final max
|log(sd / ref sd)|. ``opt s``: the optimizer loop's seconds (``result.seconds``; NumPyro's
loop); ``total s``: everything from the data in memory, the final full-data evaluation of vifit
included. ``rows/s``: data rows per second of the loop (steps x B / opt s; vifit draws 16
samples of q per row, NumPyro one). ``verdict / stop``: vifit's ``result.verdict.label`` and
``stop_reason``; for NumPyro ``accurate`` or ``budget``.

    .venv/bin/python bench/bigdata.py [--quick] [--sizes 1e5x20,1e6x100] [--all]
        [--methods mb,full,full-natgrad,numpyro] [--numpyro-batch 1024] [--steps 10000]

``--quick`` (N = 1e5, d = 20 and 100) takes about 8 minutes on one core; the 1e6 sizes
roughly 40 more (the full-batch fits most of it), the 1e7 sizes hours: NumPyro's subsampling
is O(N) per step on CPU (a Fisher-Yates pass over ``arange(N)``), and each of its runs may take
up to ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SEED = 0
TOL_SD = 0.1  # "accurate": every coordinate's mean within this many reference sds
CHUNK_ROWS = 1 << 16  # rows per chunk, for generating the data and for Newton
SIZES = [(100_000, 20), (100_000, 100), (1_000_000, 20), (1_000_000, 100),
         (10_000_000, 20), (10_000_000, 100)]
QUICK = SIZES[:2]
FULL_BATCH_MAX_N = 1_000_000
CACHE = Path(__file__).resolve().parent / ".cache"
BATCHES = (256, 1024, 4096)
NUMPYRO_LRS = (1e-2, 1e-3)
WINDOW = 100


# --- data and reference ----------------------------------------------------------------------


def data_bytes(n: int, d: int) -> int:
    return n * (d + 1) * 4  # X and y, float32


def make_data(n: int, d: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """X (n, d) and y (n,), float32, filled chunk by chunk from per-chunk seeds (so the rows of
    a smaller N are the first rows of a larger one with the same d)."""
    beta = np.random.default_rng([seed, d]).normal(0.0, 1.0 / np.sqrt(d), d)
    x = np.empty((n, d), dtype=np.float32)
    y = np.empty(n, dtype=np.float32)
    for c, start in enumerate(range(0, n, CHUNK_ROWS)):
        stop = min(n, start + CHUNK_ROWS)
        rng = np.random.default_rng([seed, d, c])
        x[start:stop] = rng.standard_normal((stop - start, d), dtype=np.float32)
        p = 1.0 / (1.0 + np.exp(-(x[start:stop] @ beta)))
        y[start:stop] = rng.random(stop - start) < p
    return x, y


def newton_laplace(x: np.ndarray, y: np.ndarray, max_iter: int = 50
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Mode and covariance (inverse Hessian there) of the log posterior, float64, one pass
    over the rows per Newton step."""
    n, d = x.shape
    beta = np.zeros(d)
    for it in range(1, max_iter + 1):
        grad, hess = -beta, np.eye(d)
        for start in range(0, n, CHUNK_ROWS):
            xc = x[start:start + CHUNK_ROWS].astype(np.float64)
            p = 1.0 / (1.0 + np.exp(-(xc @ beta)))
            grad = grad + xc.T @ (y[start:start + CHUNK_ROWS] - p)
            hess = hess + xc.T @ (xc * (p * (1.0 - p))[:, None])
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step) * np.sqrt(np.diag(hess))) < 1e-8:
            # the Hessian was taken 1e-8 sd away from the mode: as good as at it
            return beta, np.linalg.inv(hess), it
    raise RuntimeError(f"Newton did not converge in {max_iter} iterations")


def reference_path(n: int, d: int, seed: int) -> Path:
    return CACHE / f"logreg_n{n}_d{d}_seed{seed}.npz"


def run_reference(spec: dict) -> dict:
    n, d, seed = spec["n"], spec["d"], spec["seed"]
    x, y = make_data(n, d, seed)
    t0 = time.perf_counter()
    mean, cov, iters = newton_laplace(x, y)
    seconds = time.perf_counter() - t0
    CACHE.mkdir(parents=True, exist_ok=True)
    path = reference_path(n, d, seed)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, mean=mean, sd=np.sqrt(np.diag(cov)), iters=iters, seconds=seconds)
    os.replace(tmp, path)
    return {"iters": iters, "seconds": seconds}


def load_reference(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    ref = np.load(reference_path(n, d, seed))
    return ref["mean"], ref["sd"]


def errors(mean: np.ndarray, sd: np.ndarray, ref_mean: np.ndarray, ref_sd: np.ndarray
           ) -> tuple[float, float]:
    """max |mean - ref| / ref sd, and max |log(sd / ref sd)|."""
    return (float(np.max(np.abs(mean - ref_mean) / ref_sd)),
            float(np.max(np.abs(np.log(sd / ref_sd)))))


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


# --- one method, in its own process ----------------------------------------------------------


def install_window_recorder() -> list[tuple[float, Any]]:
    """Wrap vifit's compiled chunk so that each call's (time, window-mean params) is kept.

    ``run_loop`` looks ``make_chunk`` up in its module at every fit, so replacing it there
    reaches every runner (optax and natgrad alike); the wrapped chunk returns what it did."""
    import jax

    import vifit.optim.loop as loop

    record: list[tuple[float, Any]] = []
    original = loop.make_chunk

    def make_chunk(step, length, probe=None):
        chunk = original(step, length, probe)

        def recorded(*args):
            out = chunk(*args)
            mean_params = jax.device_get(out[1])  # waits for the chunk
            record.append((time.perf_counter(), mean_params))
            return out

        return recorded

    loop.make_chunk = make_chunk
    return record


def run_vifit(spec: dict) -> dict:
    import jax
    import jax.numpy as jnp

    import vifit

    n, d = spec["n"], spec["d"]
    ref_mean, ref_sd = load_reference(n, d, spec["seed"])
    x, y = make_data(n, d, spec["seed"])
    record = install_window_recorder()
    steps_at: list[tuple[int, float]] = []

    def log_prior(z):
        return -0.5 * jnp.sum(z**2)

    def log_lik(z, batch):
        logits = batch["X"] @ z
        return batch["y"] * logits - jax.nn.softplus(logits)

    def callback(steps_done: int, window_mean: float) -> None:
        steps_at.append((steps_done, time.perf_counter()))

    kwargs: dict[str, Any] = {"batch_size": spec["batch"], "seed": 0, "progress": False,
                              "callback": callback, "steps": spec["steps"]}
    if not spec.get("cv", True):
        kwargs["control_variate"] = False
    if spec.get("optimizer"):
        kwargs["optimizer"] = spec["optimizer"]
    t0 = time.perf_counter()
    target = vifit.DataTarget(log_prior, log_lik, {"X": x, "y": y}, dim=d)
    t_target = time.perf_counter() - t0
    result = vifit.fit(target, "fullrank", **kwargs)
    total = time.perf_counter() - t0

    mean = result.mean()
    sd = np.sqrt(np.diag(result.covariance()))
    mean_err, sd_err = errors(mean, sd, ref_mean, ref_sd)
    t_acc, steps_acc = None, None
    for i, (t, params) in enumerate(record):
        err = np.max(np.abs(np.asarray(result.family.mean(params)) - ref_mean) / ref_sd)
        if err <= TOL_SD:
            t_acc = t - t0
            steps_acc = steps_at[i][0] if i < len(steps_at) else (i + 1) * WINDOW
            break
    rows = result.steps * (spec["batch"] or n)
    info = result.info.get("minibatch", {})
    return {
        "t_acc": t_acc, "steps_acc": steps_acc,
        "fit_acc": total if mean_err <= TOL_SD else None,
        "mean_err": mean_err, "sd_err": sd_err, "opt_s": result.seconds, "total_s": total,
        "target_s": t_target, "steps": result.steps, "rows_per_s": rows / result.seconds,
        "verdict": result.verdict.label, "stop": result.stop_reason,
        "optimizer": result.optimizer, "refreshes": info.get("reference_refreshes"),
        "epochs": info.get("epochs", result.steps if spec["batch"] is None else None),
        "notes": list(result.notes),
    }


def run_numpyro(spec: dict) -> dict:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoMultivariateNormal

    n, d, batch = spec["n"], spec["d"], spec["batch"]
    ref_mean, ref_sd = load_reference(n, d, spec["seed"])
    x_np, y_np = make_data(n, d, spec["seed"])
    t0 = time.perf_counter()
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)
    del x_np, y_np  # one copy of the data, as a NumPyro user would keep

    def model(x, y):
        beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([d]).to_event(1))
        with numpyro.plate("data", n, subsample_size=batch) as idx:
            numpyro.sample("obs", dist.Bernoulli(logits=x[idx] @ beta), obs=y[idx])

    guide = AutoMultivariateNormal(model)
    svi = SVI(model, guide, numpyro.optim.Adam(spec["lr"]), Trace_ELBO())
    state = svi.init(jax.random.key(0), x, y)

    @jax.jit
    def chunk(state, x, y):
        return jax.lax.scan(lambda s, _: svi.update(s, x, y), state, None, length=WINDOW)

    t_loop = time.perf_counter()
    steps, t_acc, steps_acc = 0, None, None
    mean_err = sd_err = float("nan")
    budget = min(spec["numpyro_steps"], int(spec["numpyro_epochs"] * n / batch))
    while steps < budget:
        state, _ = chunk(state, x, y)
        steps += WINDOW
        params = svi.get_params(state)
        mean = np.asarray(params["auto_loc"], dtype=np.float64)
        tril = np.asarray(params["auto_scale_tril"], dtype=np.float64)
        mean_err, sd_err = errors(mean, np.sqrt(np.sum(tril**2, axis=1)), ref_mean, ref_sd)
        if mean_err <= TOL_SD:
            t_acc, steps_acc = time.perf_counter() - t0, steps
            break
        if time.perf_counter() - t0 > spec["max_seconds"]:
            break
    now = time.perf_counter()
    return {"t_acc": t_acc, "steps_acc": steps_acc, "fit_acc": None, "mean_err": mean_err,
            "sd_err": sd_err, "opt_s": now - t_loop, "total_s": now - t0, "steps": steps,
            "rows_per_s": steps * batch / (now - t_loop), "verdict": "",
            "stop": "accurate" if t_acc is not None else "budget", "notes": []}


def child(spec: dict) -> None:
    runners = {"reference": run_reference, "vifit": run_vifit, "numpyro": run_numpyro}
    try:
        out = runners[spec["kind"]](spec)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    out["rss_gb"] = peak_rss_gb()
    print("RESULT " + json.dumps(out), flush=True)


# --- the parent: sizes x methods, the table --------------------------------------------------


@dataclass
class Row:
    n: int
    d: int
    method: str
    batch: int | None
    out: dict = field(default_factory=dict)
    error: str = ""  # why there is no result (skipped, did not fit, failed)


def spawn(spec: dict, timeout: float) -> tuple[dict | None, str]:
    """Run one spec in a fresh interpreter: (its result, "") or (None, why not)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):]), ""
    if proc.returncode < 0:
        return None, f"killed by signal {-proc.returncode} (out of memory?)"
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    return None, f"failed (exit {proc.returncode}):\n{tail}"


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def method_specs(n: int, d: int, args) -> list[tuple[str, dict]]:
    base = {"n": n, "d": d, "seed": SEED, "steps": args.steps}
    specs: list[tuple[str, dict]] = []
    if "mb" in args.methods:
        for b in BATCHES:
            specs.append(("vifit mb", {**base, "kind": "vifit", "batch": b}))
        specs.append(("vifit mb no-cv", {**base, "kind": "vifit", "batch": 1024, "cv": False}))
        specs.append(("vifit mb adam", {**base, "kind": "vifit", "batch": 1024,
                                        "optimizer": "adam"}))
    if "full" in args.methods:
        specs.append(("vifit full", {**base, "kind": "vifit", "batch": None}))
    if "full-natgrad" in args.methods:
        specs.append(("vifit full natgrad", {**base, "kind": "vifit", "batch": None,
                                             "optimizer": "natgrad"}))
    if "numpyro" in args.methods:
        for lr in NUMPYRO_LRS:
            specs.append((f"numpyro lr={lr:g}", {**base, "kind": "numpyro",
                                                  "batch": args.numpyro_batch, "lr": lr,
                                                  "numpyro_steps": args.numpyro_steps,
                                                  "numpyro_epochs": args.numpyro_epochs,
                                                  "max_seconds": args.max_seconds}))
    return specs


def better(a: Row, b: Row) -> tuple[Row, Row]:
    """(the better NumPyro run, the other): reached accuracy sooner, else smaller error."""
    def key(r: Row):
        if not r.out:
            return (2, 0.0)
        t = r.out["t_acc"]
        return (0, t) if t is not None else (1, r.out["mean_err"])
    return (a, b) if key(a) <= key(b) else (b, a)


def run_size(n: int, d: int, args) -> tuple[list[Row], list[Row]]:
    """The rows of one size, and the NumPyro runs not shown (the worse learning rate)."""
    # vifit holds the data twice (the DataTarget keeps the NumPy arrays, and JAX on CPU copies
    # them into its own buffers), plus JAX itself and a method's working arrays.
    need = 2 * data_bytes(n, d) + 3 * 2**29
    if need > mem_available():
        print(f"# {n:.0e} x {d}: does not fit (needs ~{need / 2**30:.1f} GB, "
              f"{mem_available() / 2**30:.1f} GB available); skipped", flush=True)
        return [Row(n, d, "all", None, error="does not fit in memory")], []
    if not reference_path(n, d, SEED).exists():
        t = time.perf_counter()
        out, why = spawn({"kind": "reference", "n": n, "d": d, "seed": SEED}, args.timeout)
        if out is None:
            print(f"# {n:.0e} x {d}: reference {why}", flush=True)
            return [Row(n, d, "reference", None, error=why)], []
        print(f"# {n:.0e} x {d}: reference by Newton, {out['iters']} iterations, "
              f"{time.perf_counter() - t:.0f} s, cached in {reference_path(n, d, SEED)}",
              flush=True)
    rows: list[Row] = []
    for method, spec in method_specs(n, d, args):
        row = Row(n, d, method, spec["batch"])
        if spec["kind"] == "vifit" and spec["batch"] is None and n > FULL_BATCH_MAX_N \
                and not args.all:
            row.error = f"skipped above N = {FULL_BATCH_MAX_N:.0e} (--all runs it)"
        else:
            t = time.perf_counter()
            out, row.error = spawn(spec, args.timeout)
            row.out = out or {}
            print(f"# {n:.0e} x {d} {method} B={spec['batch']}: "
                  f"{time.perf_counter() - t:.0f} s{' ' + row.error if row.error else ''}",
                  file=sys.stderr, flush=True)
        rows.append(row)
    hidden: list[Row] = []
    np_rows = [r for r in rows if r.method.startswith("numpyro")]
    if len(np_rows) == 2:
        shown, other = better(*np_rows)
        rows.remove(other)
        hidden.append(other)
    return rows, hidden


def fmt(v: Any, spec: str = ".3g", none: str = "-") -> str:
    if v is None:
        return none
    return format(v, spec) if isinstance(v, float) else str(v)


def print_table(rows: list[Row]) -> None:
    print("| N | d | method | B | steps | t->acc (s) | fit->acc (s) | mean err (sd) | log sd | "
          "opt s | total s | rows/s | peak RSS (GB) | verdict / stop |")
    print("|" + "---|" * 14)
    for r in rows:
        o = r.out
        head = f"| {r.n:.0e} | {r.d} | {r.method} | {fmt(r.batch, none='all')} |"
        if not o:
            print(head + f" {r.error.splitlines()[0] if r.error else '?'} |" + " |" * 9)
            continue
        t_acc = (f"{o['t_acc']:.1f} ({o['steps_acc']} st)" if o["t_acc"] is not None
                 else "not reached")
        print(head + f" {o['steps']} | {t_acc} | {fmt(o['fit_acc'], '.1f', 'no')} | "
              f"{o['mean_err']:.3f} | {o['sd_err']:.3f} | {o['opt_s']:.1f} | "
              f"{o['total_s']:.1f} | {o['rows_per_s']:.3g} | {o['rss_gb']:.2f} | "
              f"{o['verdict'] + ' / ' if o.get('verdict') else ''}{o['stop']} |")


def is_method(r: Row, method: str) -> bool:
    """``method`` exactly, or for ``"numpyro"`` any of its learning rates."""
    return r.method == method or (method == "numpyro" and r.method.startswith("numpyro"))


def t_acc(rows: list[Row], n: int, d: int, method: str, batch=None) -> float | None:
    for r in rows:
        if (r.n, r.d) == (n, d) and is_method(r, method) and r.out \
                and (batch is None or r.batch == batch):
            return r.out["t_acc"]
    return None


def ratio(a: float | None, b: float | None, peer: str) -> str:
    """How minibatch time-to-accuracy ``a`` compares with ``peer``'s ``b``."""
    if a is None or b is None:
        return "n/a (" + ("minibatch" if a is None else peer) + " did not reach accuracy)"
    return f"{b / a:.2f}x faster" if b >= a else f"{a / b:.2f}x slower"


def print_ratios(rows: list[Row]) -> None:
    done = [r for r in rows if r.out]

    def versus(mine, n, d, method, name):
        if not any((r.n, r.d) == (n, d) and is_method(r, method) for r in done):
            return f"{name} not run at this N"
        return ratio(mine, t_acc(done, n, d, method), name)

    for d in sorted({r.d for r in done}):
        ns = sorted({r.n for r in done if r.d == d})
        n_max = ns[-1]
        print(f"\nd = {d}, largest N run = {n_max:.0e}:")
        for b in BATCHES:
            if not any((r.n, r.d, r.method, r.batch) == (n_max, d, "vifit mb", b)
                       for r in done):
                continue
            mine = t_acc(done, n_max, d, "vifit mb", b)
            print(f"- vifit mb B={b}: t->acc {fmt(mine, '.1f', 'not reached')} s; "
                  f"vs vifit full batch (Adam): "
                  f"{versus(mine, n_max, d, 'vifit full', 'full batch')}"
                  + ("; vs full batch natgrad: "
                     + versus(mine, n_max, d, 'vifit full natgrad', 'full natgrad')
                     if any(r.method == 'vifit full natgrad' for r in done) else "")
                  + f"; vs NumPyro: {versus(mine, n_max, d, 'numpyro', 'NumPyro')}")
            if len(ns) > 1:
                small = t_acc(done, ns[0], d, "vifit mb", b)
                growth = (f"{mine / small:.2f}x" if mine is not None and small is not None
                          else "n/a")
                print(f"  t->acc growth N={ns[0]:.0e} -> {n_max:.0e} "
                      f"({n_max / ns[0]:.0f}x the rows): {growth}")
        if len(ns) > 1:
            a, b = t_acc(done, ns[0], d, "numpyro"), t_acc(done, n_max, d, "numpyro")
            print(f"- NumPyro t->acc growth N={ns[0]:.0e} -> {n_max:.0e}: "
                  + (f"{b / a:.2f}x" if a is not None and b is not None else "n/a"))


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        n, d = item.lower().split("x")
        sizes.append((int(float(n)), int(d)))
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=parse_sizes, default=None,
                    help="NxD,... e.g. 1e5x20,1e6x100 (default: all six)")
    ap.add_argument("--quick", action="store_true", help="1e5x20,1e5x100")
    ap.add_argument("--all", action="store_true",
                    help=f"run the full-batch fit above N = {FULL_BATCH_MAX_N:.0e} too")
    ap.add_argument("--methods", default="mb,full,numpyro",
                    type=lambda s: set(s.split(",")),
                    help="of mb,full,full-natgrad,numpyro (default mb,full,numpyro)")
    ap.add_argument("--steps", type=int, default=10_000, help="vifit's step limit")
    ap.add_argument("--numpyro-batch", type=int, default=1024)
    ap.add_argument("--numpyro-steps", type=int, default=20_000)
    ap.add_argument("--numpyro-epochs", type=float, default=20.0)
    ap.add_argument("--max-seconds", type=float, default=1800.0,
                    help="NumPyro's wall-time budget per run")
    ap.add_argument("--timeout", type=float, default=7200.0, help="per process, seconds")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        child(json.loads(args.one))
        return
    sizes = QUICK if args.quick else (args.sizes or SIZES)
    print(f"# bigdata: logistic regression, seed {SEED}; CPUs {len(os.sched_getaffinity(0))} "
          f"(of {os.cpu_count()}), load {os.getloadavg()[0]:.2f}; "
          f"{mem_available() / 2**30:.1f} GB available; data (X, y float32): "
          + ", ".join(f"{n:.0e}x{d} {data_bytes(n, d) / 2**30:.2f} GB" for n, d in sizes),
          flush=True)
    t0 = time.perf_counter()
    rows, hidden = [], []
    for n, d in sizes:
        r, h = run_size(n, d, args)
        rows += r
        hidden += h
    print()
    print_table(rows)
    for r in hidden:
        o = r.out
        print(f"\nnot shown: {r.n:.0e} x {r.d} {r.method}: "
              + (f"t->acc {fmt(o['t_acc'], '.1f', 'not reached')}, mean err "
                 f"{o['mean_err']:.3f}, log sd {o['sd_err']:.3f}, {o['steps']} steps"
                 if o else r.error.splitlines()[0]))
    failures = [r for r in rows + hidden if r.error and "\n" in r.error]
    for r in failures:
        print(f"\n{r.n:.0e} x {r.d} {r.method} B={r.batch}: {r.error}")
    print_ratios(rows)
    print(f"\n# {time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
