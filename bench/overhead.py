"""Per-step overhead of vifit's compiled fitting loop, against a floor and against NumPyro SVI.

What is measured, for each target and each number of draws per step S:

* ``floor``: one call of a jitted ``vmap(value_and_grad(log_density))`` on an (S, d) batch.
  No pathwise VI step can cost less: each needs log p and its gradient at S draws. It includes
  one Python-to-XLA dispatch, which the scanned loops below do not pay per step.
* ``floor-in-scan``: the same evaluation 100 times inside one jitted ``lax.scan``, per
  evaluation: the floor without dispatch, which is the fair floor for the scanned loops.
* ``vifit <family>/<estimator>``: vifit's own compiled loop (``make_chunk`` over ``make_step``),
  100 steps per call, divided by 100, under the classic threefry lowering of JAX's random
  numbers that ``vifit.fit`` runs its loops under (``vifit.rng.classic_threefry``). ``vifit.fit``
  runs exactly this between its Python-side stopping checks, so it is what a user pays per step.
* ``numpyro <guide>``: NumPyro SVI (``Trace_ELBO(num_particles=S, vectorize_particles=True)``,
  Adam) on a model that wraps the same log density in ``numpyro.factor``; 100 ``svi.update``
  steps in one jitted ``lax.scan``, divided by 100, under JAX's default lowering, as NumPyro
  runs (``--peer-rng classic``: under vifit's, which times the rest of the step like for like).
  The peer users would otherwise reach for. On CPU the default lowering draws the normals of
  a step 2-3x slower (d = 100, 16 draws: 32 us against 11 us a step, measured 2026-12-06).

``x floor`` is us/step over the plain floor; ``vifit/numpyro`` pairs each vifit family with its
NumPyro analogue (meanfield <-> AutoNormal, fullrank <-> AutoMultivariateNormal).

Every method is compiled and warmed up first; then the methods are timed in interleaved rounds
(one timing of each per round) so that a change in machine load during the run hits all of them
alike. us/step is the median over rounds, ``min`` the fastest round; a configuration stops
early, after at least 3 rounds, once its timing budget is spent. This is a benchmark for people,
not a test: nothing asserts, and the numbers move with the machine and its load.

The full-rank families call LAPACK/BLAS (triangular solves, Cholesky), which jaxlib on CPU
takes from scipy's OpenBLAS; its thread pool competes with XLA's for the cores and can slow a
step 100-fold. ``vifit.fit`` therefore limits BLAS to one thread while it runs
(``vifit.threads``); this benchmark times every method, NumPyro's too, under that same limit, so
the comparison is like for like. ``--blas-threads default`` times them without it.

    .venv/bin/python bench/overhead.py [--draws 16,64] [--quick] [--json PATH]
                                       [--peer-rng default|classic]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoMultivariateNormal, AutoNormal

import vifit
from vifit.optim.loop import State, make_chunk, make_step
from vifit.optim.optimizers import make_optimizer
from vifit.rng import classic_threefry
from vifit.threads import single_threaded_blas

Array = jax.Array
LogDensity = Callable[[Array], Array]
Timer = Callable[[], float]  # runs the measured thing once, blocking; returns seconds per step

CHUNK = 100  # steps per timed scan: vifit's default window, so this is the chunk fit() runs
LR = 1e-2
MIN_ROUNDS = 3

# (family, estimator) for vifit, and the NumPyro guide each family is compared with.
VIFIT_METHODS: list[tuple[str, str]] = [("meanfield", "reparam"), ("fullrank", "reparam"),
                                        ("fullrank", "stl")]
NUMPYRO_GUIDES: dict[str, type] = {"AutoNormal": AutoNormal,
                                   "AutoMultivariateNormal": AutoMultivariateNormal}
PEER_OF_FAMILY = {"meanfield": "AutoNormal", "fullrank": "AutoMultivariateNormal"}


@dataclass
class Row:
    target: str
    d: int
    draws: int
    method: str
    us_per_step: float  # median over rounds
    us_min: float  # fastest round
    rounds: int
    ratio_floor: float | None = None
    ratio_numpyro: float | None = None


# --- targets ---------------------------------------------------------------------------------


def linear_regression(d: int = 50, n: int = 1000, seed: int = 0) -> LogDensity:
    """log p(y, beta) for y ~ N(X beta, 1), beta ~ N(0, I), up to a constant."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=d) + rng.normal(size=n)
    x_j, y_j = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)

    def log_density(beta: Array) -> Array:
        resid = y_j - x_j @ beta
        return -0.5 * jnp.sum(beta**2) - 0.5 * jnp.sum(resid**2)

    return log_density


def correlated_gaussian(d: int = 100, condition: float = 1e4, seed: int = 1) -> LogDensity:
    """N(0, Q diag(lam) Q^T) with Q a random rotation and lam log-spaced over [1, condition]."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    q = q * np.sign(np.diag(r))  # the sign fix makes Q uniformly random, not merely orthogonal
    lam = np.logspace(0.0, np.log10(condition), d)
    precision = jnp.asarray((q / lam) @ q.T, jnp.float32)

    def log_density(z: Array) -> Array:
        return -0.5 * z @ (precision @ z)

    return log_density


TARGETS: dict[str, tuple[Callable[[], LogDensity], int]] = {
    "linreg": (linear_regression, 50),
    "corr-gauss": (correlated_gaussian, 100),
}


# --- timers: each compiles and warms up when built, then times one run per call ---------------


def _seconds(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def floor_timer(log_density: LogDensity, d: int, draws: int, calls: int) -> Timer:
    """Median seconds of ``calls`` single calls of the batched value-and-gradient."""
    fn = jax.jit(jax.vmap(jax.value_and_grad(log_density)))
    z = 0.1 * jax.random.normal(jax.random.key(0), (draws, d))
    jax.block_until_ready(fn(z))
    # One call is ~0.1 ms, too short to time alone against clock and scheduler jitter.
    return lambda: statistics.median(_seconds(lambda: fn(z)) for _ in range(calls))


def floor_in_scan_timer(log_density: LogDensity, d: int, draws: int) -> Timer:
    """Seconds per batched value-and-gradient when CHUNK of them run in one scan."""
    vg = jax.vmap(jax.value_and_grad(log_density))

    @jax.jit
    def run(zs: Array) -> Array:
        # Fresh draws per iteration (as xs) so XLA cannot hoist the work out of the loop.
        def body(acc: Array, z: Array) -> tuple[Array, None]:
            value, grad = vg(z)
            return acc + jnp.sum(value) + jnp.sum(grad), None

        return jax.lax.scan(body, jnp.zeros(()), zs)[0]

    zs = 0.1 * jax.random.normal(jax.random.key(0), (CHUNK, draws, d))
    jax.block_until_ready(run(zs))
    return lambda: _seconds(lambda: run(zs)) / CHUNK


def _chained(chunk: Callable[[Any], Any], state: Any) -> Timer:
    """Time ``chunk`` carrying its state on, as a fit does, so each run starts where the last
    ended; the first (compiling) call happens here."""
    box = [jax.block_until_ready(chunk(state))[0]]

    def run() -> float:
        t0 = time.perf_counter()
        box[0] = jax.block_until_ready(chunk(box[0]))[0]
        return (time.perf_counter() - t0) / CHUNK

    return run


def vifit_timer(log_density: LogDensity, d: int, draws: int, family: str, estimator: str
                ) -> Timer:
    """Seconds per step of vifit's compiled chunk (the loop ``vifit.fit`` runs)."""
    target = vifit.Target(log_density, dim=d)
    fam = vifit.get_family(family)
    opt = make_optimizer("adam", lr=LR)
    params = fam.init(jax.random.key(0), d, loc=target.init)
    state = State(params=params, opt_state=opt.init(params), key=jax.random.key(1),
                  rejected=jnp.zeros((), jnp.int32))
    step = make_step(vifit.get_objective("elbo"), vifit.get_estimator(estimator), fam,
                     target.log_density, opt, draws)
    chunk = make_chunk(step, CHUNK)
    n_active = jnp.asarray(CHUNK)
    # Traced, compiled and run under the threefry lowering vifit.fit runs its loops under
    # (vifit.rng.classic_threefry): the step a user of vifit pays for.
    return _chained(classic_threefry(lambda st: chunk(st, n_active)), state)


def numpyro_model(log_density: LogDensity, d: int) -> Callable[[], None]:
    def model() -> None:
        z = numpyro.sample(
            "z", dist.ImproperUniform(dist.constraints.real_vector, (), event_shape=(d,)))
        numpyro.factor("lp", log_density(z))

    return model


def numpyro_timer(log_density: LogDensity, d: int, draws: int, guide: str,
                  peer_rng: str = "default") -> Timer:
    """Seconds per step of NumPyro SVI, CHUNK updates scanned in one jitted call, under JAX's
    default threefry lowering (as NumPyro runs) or, ``peer_rng="classic"``, under vifit's."""
    model = numpyro_model(log_density, d)
    svi = SVI(model, NUMPYRO_GUIDES[guide](model), numpyro.optim.Adam(LR),
              Trace_ELBO(num_particles=draws, vectorize_particles=True))

    @jax.jit
    def chunk(state: Any) -> Any:
        return jax.lax.scan(lambda s, _: svi.update(s), state, None, length=CHUNK)

    return _chained(classic_threefry(chunk) if peer_rng == "classic" else chunk,
                    svi.init(jax.random.key(0)))


# --- one run ---------------------------------------------------------------------------------


def build_timers(target: str, draws: int, floor_calls: int, peer_rng: str = "default"
                 ) -> dict[str, Timer]:
    make, d = TARGETS[target]
    log_density = make()
    timers = {"floor": floor_timer(log_density, d, draws, floor_calls),
              "floor-in-scan": floor_in_scan_timer(log_density, d, draws)}
    for family, estimator in VIFIT_METHODS:
        timers[f"vifit {family}/{estimator}"] = vifit_timer(log_density, d, draws, family,
                                                            estimator)
    for guide in NUMPYRO_GUIDES:
        timers[f"numpyro {guide}"] = numpyro_timer(log_density, d, draws, guide, peer_rng)
    return timers


def time_rounds(timers: dict[str, Timer], rounds: int, budget_s: float
                ) -> dict[str, list[float]]:
    """One timing of every method per round; the order rotates so none always goes first.

    Stops early (after at least MIN_ROUNDS) once ``budget_s`` is spent, so that a machine that
    is overloaded, or a method that is pathologically slow, cannot stretch the run without end.
    """
    names = list(timers)
    samples: dict[str, list[float]] = {name: [] for name in names}
    t0 = time.perf_counter()
    for r in range(rounds):
        if r >= MIN_ROUNDS and time.perf_counter() - t0 > budget_s:
            break
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(timers[name]())
    return samples


def measure(target: str, draws: int, rounds: int, floor_calls: int, budget_s: float,
            peer_rng: str = "default") -> list[Row]:
    """All rows for one (target, S), with ratios to the floor and to the NumPyro peer."""
    d = TARGETS[target][1]
    samples = time_rounds(build_timers(target, draws, floor_calls, peer_rng), rounds,
                          budget_s)
    us = {name: 1e6 * statistics.median(s) for name, s in samples.items()}
    floor = us["floor"]
    rows = []
    for name, s in samples.items():
        peer = None
        if name.startswith("vifit "):
            family = name.split()[1].split("/")[0]
            peer = us[f"numpyro {PEER_OF_FAMILY[family]}"]
        rows.append(Row(target, d, draws, name, us[name], 1e6 * min(s), len(s),
                        ratio_floor=us[name] / floor,
                        ratio_numpyro=None if peer is None else us[name] / peer))
    return rows


def format_table(rows: list[Row]) -> str:
    header = ("target", "d", "S", "method", "us/step", "min", "x floor", "vifit/numpyro")
    cells = [header] + [
        (r.target, str(r.d), str(r.draws), r.method, f"{r.us_per_step:.1f}", f"{r.us_min:.1f}",
         f"{r.ratio_floor:.2f}", "" if r.ratio_numpyro is None else f"{r.ratio_numpyro:.2f}")
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    left = {0, 3}  # text columns left-aligned, numbers right-aligned
    lines = ["  ".join(c.ljust(w) if i in left else c.rjust(w)
                       for i, (c, w) in enumerate(zip(cell, widths))) for cell in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """What the numbers depend on besides the code; printed so a table can be judged later."""
    return {
        "jax": jax.__version__, "numpyro": numpyro.__version__, "vifit": vifit.__version__,
        "backend": jax.default_backend(), "cpus": len(os.sched_getaffinity(0)),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        # jaxlib's CPU LAPACK/BLAS calls (the full-rank triangular solves) run in scipy's
        # OpenBLAS, whose own thread pool competes with XLA's; it is set by this variable.
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", default="16,64",
                        help="comma-separated draws per step S (default: 16,64)")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"comma-separated targets (default: {','.join(TARGETS)})")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (noisier)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    parser.add_argument("--blas-threads", choices=["one", "default"], default="one",
                        help="BLAS threads while timing: one (as vifit.fit runs) or the default")
    parser.add_argument("--peer-rng", choices=["default", "classic"], default="default",
                        help="NumPyro's threefry lowering: JAX's default (as NumPyro runs) or "
                             "the classic one vifit's loops run under (the rest of the step "
                             "like for like)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # (rounds, floor calls per round, seconds of timing per (target, S) before stopping early)
    rounds, floor_calls, budget_s = (5, 20, 5.0) if args.quick else (15, 50, 12.0)
    draws = [int(s) for s in args.draws.split(",")]
    env = environment()
    t0 = time.perf_counter()
    env["blas_threads"] = args.blas_threads
    env["numpyro_threefry"] = args.peer_rng
    limit = single_threaded_blas() if args.blas_threads == "one" else contextlib.nullcontext()
    with limit:
        rows = [row for target in args.targets.split(",") for s in draws
                for row in measure(target, s, rounds, floor_calls, budget_s, args.peer_rng)]
    env["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    print("; ".join(f"{k} {v}" for k, v in env.items()))
    done = sorted({r.rounds for r in rows})
    print(f"{CHUNK} steps per timed scan; us/step = median of "
          f"{'/'.join(map(str, done))} interleaved rounds (at most {rounds}; fewer when a "
          f"configuration used up its {budget_s:.0f} s); floor: median of {floor_calls} calls "
          "per round")
    if max(env["load_avg_1min"], env["load_avg_1min_end"]) > env["cpus"]:
        print("warning: load average above the CPU count; other processes shared the CPUs")
    print(format_table(rows))
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "rows": [asdict(r) for r in rows]}, f, indent=2)


if __name__ == "__main__":
    main()
