"""Peer methods on the same targets: NumPyro SVI (AutoNormal, AutoMultivariateNormal) and
BlackJAX Pathfinder.

Each peer sees exactly the Target vifit fits: its unconstrained log density, wrapped for
NumPyro as a model with one real vector site ``z`` and a ``numpyro.factor``. (For a catalog
model written in NumPyro this is the same unconstrained space and Jacobian that an autoguide
on the original model uses.) Each returns ``n`` draws of z with their log q, from which the
bench computes the same scores as for vifit's fits.

Pathfinder runs L-BFGS inside a jitted while-loop; on some machines such programs have hung
inside XLA's CPU runtime. So it runs in a child process, pinned to one core, under a timeout;
a hang comes back as a failed row, never as a silent gap.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vifit.target import Target


class PeerFit(NamedTuple):
    z: np.ndarray  # (n, dim) draws of q in the unconstrained space
    logq: np.ndarray  # (n,) log q at the draws
    steps: int  # optimizer iterations run
    seconds: float  # wall time of the fit and the draws, JIT compilation included
    # (seconds since the start, mean ELBO estimate of the last window) after each window of
    # steps: the training curve, for the bench's time-to-accuracy; empty when not recorded.
    curve: tuple = ()


def numpyro_svi(target: Target, guide: str, *, steps: int, draws: int, lr: float, seed: int,
                n: int, window: int = 100) -> PeerFit:
    """NumPyro SVI with ``AutoNormal`` or ``AutoMultivariateNormal`` (Trace_ELBO, Adam),
    ``draws`` particles per step, started at ``target.init``; ``steps`` rounded up to whole
    windows of ``window`` steps."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO, autoguide, init_to_value

    def model():
        z = numpyro.sample("z", dist.ImproperUniform(dist.constraints.real_vector, (),
                                                     (target.dim,)))
        numpyro.factor("log_density", target.log_density(z))

    init = init_to_value(values={"z": target.init})
    if guide == "AutoNormal":
        g = autoguide.AutoNormal(model, init_loc_fn=init)
    elif guide == "AutoMultivariateNormal":
        g = autoguide.AutoMultivariateNormal(model, init_loc_fn=init)
    else:
        raise ValueError(f"unknown NumPyro guide {guide!r}")
    svi = SVI(model, g, numpyro.optim.Adam(lr), Trace_ELBO(num_particles=draws,
                                                             vectorize_particles=True))
    t0 = time.perf_counter()
    # svi.run's own compiled loop, in windows of `window` steps, so that the time at which the
    # ELBO reached a level can be read off (the same lax.scan over svi.update it runs).
    state = svi.init(jax.random.key(seed))

    @jax.jit
    def run_window(state):
        return jax.lax.scan(lambda s, _: svi.update(s), state, None, length=window)

    curve, done = [], 0
    while done < steps:
        state, losses = run_window(state)
        done += window
        curve.append((time.perf_counter() - t0, -float(np.mean(np.asarray(losses)))))
    params = svi.get_params(state)
    if guide == "AutoNormal":
        q = dist.Normal(params["z_auto_loc"], params["z_auto_scale"]).to_event(1)
    else:
        q = g.get_posterior(params)
    z = q.sample(jax.random.key(seed + 1), (n,))
    logq = q.log_prob(z)
    z, logq = np.asarray(z), np.asarray(logq)
    return PeerFit(z, logq, done, time.perf_counter() - t0, tuple(curve))


def pathfinder_in_process(model: str, *, seed: int, n: int, maxiter: int = 1000) -> PeerFit:
    """BlackJAX Pathfinder on catalog model ``model`` in this process (no timeout)."""
    import blackjax

    from vifit import catalog

    target = catalog.get_model(model)
    t0 = time.perf_counter()
    state, info = blackjax.vi.pathfinder.approximate(
        jax.random.key(seed), target.log_density, target.init, maxiter=maxiter)
    z, logq = blackjax.vi.pathfinder.sample(jax.random.key(seed + 1), state, n)
    z, logq = np.asarray(z), np.asarray(logq)
    # The path holds one state per L-BFGS iteration run; unused slots have no finite ELBO.
    steps = int(np.sum(np.isfinite(np.asarray(info.path.elbo))))
    return PeerFit(z, logq, steps, time.perf_counter() - t0)


class PeerTimeout(Exception):
    """A peer did not finish within its time limit (a hang is reported as this)."""


def blackjax_pathfinder(model: str, *, seed: int, n: int, maxiter: int = 1000,
                        timeout: float = 300.0) -> PeerFit:
    """BlackJAX Pathfinder on catalog model ``model`` in a child Python process pinned to one
    core (``python -m vifit.bench.peers``); raises PeerTimeout after ``timeout`` seconds."""
    import importlib.util

    if importlib.util.find_spec("blackjax") is None:
        raise ImportError("BlackJAX is not installed")
    with tempfile.TemporaryDirectory(prefix="vifit-pathfinder-") as tmp:
        out = Path(tmp) / "fit.npz"
        cmd = [sys.executable, "-m", "vifit.bench.peers", model, str(seed), str(n),
               str(maxiter), str(int(bool(jax.config.jax_enable_x64))), str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            cpu = _cpu_percent(proc.pid)
            proc.kill()
            proc.communicate()
            what = "a hang" if cpu < 5 else "still computing"
            raise PeerTimeout(f"no answer after {timeout:.0f} s; the process was at "
                              f"{cpu:.0f}% CPU ({what})") from None
        if proc.returncode != 0 or not out.exists():
            lines = [ln for ln in (err or "").strip().splitlines() if ln.strip()]
            raise RuntimeError(lines[-1] if lines else f"exit code {proc.returncode}")
        with np.load(out) as f:
            return PeerFit(f["z"], f["logq"], int(f["steps"]), float(f["seconds"]))


def _child_main(argv: list[str]) -> None:
    model, seed, n, maxiter, x64, out = argv
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})  # one core: avoids the XLA CPU hang seen before
    jax.config.update("jax_enable_x64", bool(int(x64)))
    fit = pathfinder_in_process(model, seed=int(seed), n=int(n), maxiter=int(maxiter))
    np.savez(out, z=fit.z, logq=fit.logq, steps=fit.steps, seconds=fit.seconds)


def _cpu_percent(pid: int, interval: float = 1.0) -> float:
    """CPU use of a process over ``interval`` seconds, from /proc (Linux); nan elsewhere."""
    def ticks() -> int:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    try:
        a = ticks()
        time.sleep(interval)
        return 100.0 * (ticks() - a) / os.sysconf("SC_CLK_TCK") / interval
    except (OSError, ValueError, IndexError):
        return float("nan")


def log_weights(target: Target, z: np.ndarray, logq: np.ndarray) -> np.ndarray:
    """``log p(z) - log q(z)`` at draws ``z (n, dim)``, float64."""
    logp = np.asarray(jax.jit(jax.vmap(target.log_density))(jnp.asarray(z)), dtype=np.float64)
    return logp - np.asarray(logq, dtype=np.float64)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
