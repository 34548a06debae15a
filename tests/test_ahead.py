"""Compiling ahead on a worker thread (vifit.ahead): the later call finds the program, and a fit
gives the same result with it as without it."""

import json
import os
import subprocess
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np

from vifit.ahead import compile_ahead, ready

COMPILE = "/jax/core/compile/backend_compile_duration"


def _compiles_by_thread():
    seen: list[tuple[str, str]] = []

    def listen(event, duration, **kw):
        if event == COMPILE:
            seen.append((threading.current_thread().name, kw.get("fun_name", "")))

    jax.monitoring.register_event_duration_secs_listener(listen)
    return seen


def test_a_program_compiled_ahead_is_not_compiled_again(monkeypatch):
    monkeypatch.setenv("VIFIT_COMPILE_AHEAD", "1")
    seen = _compiles_by_thread()

    @jax.jit
    def f(x, y):
        return jnp.sin(x) @ y + jnp.cos(y).sum()

    x = jnp.arange(12.0).reshape(3, 4)
    y = jnp.ones((4, 2))
    futures = compile_ahead([(f, (jax.ShapeDtypeStruct(x.shape, x.dtype), y))])
    assert len(futures) == 1
    ready(f)
    assert futures[0].done() and futures[0].exception() is None
    before = len(seen)
    out = f(x, y)
    main = [s for s in seen[before:] if s[1] == "jit(f)"]
    assert main == []  # the call compiled nothing: the worker's program was found
    assert any(t.startswith("vifit-ahead") and n == "jit(f)" for t, n in seen)
    np.testing.assert_allclose(np.asarray(out), np.sin(np.asarray(x)) @ np.ones((4, 2))
                               + np.cos(1.0) * 8, rtol=1e-6)  # float32


def test_ready_without_pending_work_and_untraceable_programs():
    ready(lambda: None)  # nothing pending: returns at once

    @jax.jit
    def bad(x):
        raise ValueError("no")

    assert compile_ahead([(bad, (jnp.ones(2),))]) == []  # skipped; the real call raises


_FIT = """
import json, sys, threading, jax, numpy as np, vifit
from vifit import catalog
chunks = []
def listen(event, duration, **kw):
    if event == "/jax/core/compile/backend_compile_duration" and kw.get("fun_name") == "jit(chunk)":
        chunks.append(threading.current_thread().name)
jax.monitoring.register_event_duration_secs_listener(listen)
r = vifit.fit(catalog.get_model("eight_schools"), "auto", seed=1, progress=False)
flat = np.concatenate([np.ravel(np.asarray(a, np.float64)) for a in jax.tree.leaves(r.params)])
print(json.dumps({"family": r.family.name, "elbo": r.elbo, "khat": r.khat,
                  "params": flat.tolist(), "main_chunks": chunks.count("MainThread")}))
"""


def _fit(ahead: str) -> dict:
    env = {**os.environ, "VIFIT_COMPILE_AHEAD": ahead}
    out = subprocess.run([sys.executable, "-c", _FIT], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_auto_gives_the_same_fit_with_and_without_compiling_ahead():
    """Bit for bit: the programs are the same, only the thread that compiles them differs. With
    it, both loops (natgrad's and the flow's) are compiled on the worker, none on the main
    thread."""
    on, off = _fit("1"), _fit("0")
    assert on["family"] == off["family"] == "realnvp"
    assert on["params"] == off["params"]
    assert on["elbo"] == off["elbo"] and on["khat"] == off["khat"]
    assert off["main_chunks"] == 2 and on["main_chunks"] == 0


def test_shutdown_cancels_what_has_not_started_and_waits_for_the_rest():
    """Before the command line's os._exit: no compile is cut off halfway (its persistent-cache
    entry would be left half-written), and queued ones are dropped."""
    from vifit import ahead

    def big(x):
        for i in range(60):
            x = jnp.sin(x) @ x + i
        return x

    programs = [(jax.jit(lambda x, k=k: big(x) + k), (jnp.ones((4, 4)),)) for k in range(4)]
    futures = compile_ahead(programs)
    assert len(futures) == 4
    ahead.shutdown()
    # nothing left running: each one finished cleanly or was dropped before it started
    assert all(f.done() for f in futures)
    assert all(f.cancelled() or f.exception() is None for f in futures)
    compile_ahead([(jax.jit(lambda x: x + 1), (jnp.ones(2),))])  # a new worker after it
    ahead.shutdown()
