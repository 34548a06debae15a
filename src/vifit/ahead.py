"""Compile, in a background thread, the programs a later stage of a fit will run.

A fit's stages run one after another on one thread, and a first run spends most of its time in
XLA's compiler, which releases the GIL. So while the calling thread runs one stage (auto's
mode search, a Gaussian's loop), a worker thread compiles the next stage's programs on the
other core.

The caller traces each program on its own thread: tracing runs the user's log density, which
need not be thread-safe (a NumPyro model keeps its effect handlers in a global stack). The
worker only lowers the traced program and compiles it, under the caller's JAX settings (64-bit
mode, the threefry lowering). A program compiled ahead lands in JAX's in-process caches and in
the persistent cache, where the later call with the same argument shapes finds it; a call that
differs in any way (another shape, another setting) compiles as it would have. Nothing here
changes a result, only when the compiling happens.

``VIFIT_COMPILE_AHEAD=0`` turns it off (everything compiles on the calling thread).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax

from vifit.clock import count_compiling

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def enabled() -> bool:
    return os.environ.get("VIFIT_COMPILE_AHEAD", "1").strip().lower() not in ("0", "false", "no")


def _worker() -> concurrent.futures.ThreadPoolExecutor:
    # One worker: the calling thread compiles too, and these machines may have two cores.
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vifit-ahead")
        return _pool


def shutdown() -> None:
    """Drop the programs not yet started and wait for the one being compiled. For a process
    about to end without the interpreter's teardown (the command line's ``os._exit``): JAX
    writes a persistent-cache entry in place, and one cut off half-written would be read back
    as corrupt, and never rewritten, by every later run."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
        _pending.clear()
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _lower_and_compile(traced, x64: bool, threefry_partitionable: bool) -> None:
    with jax.enable_x64(x64), jax.threefry_partitionable(threefry_partitionable):
        traced.lower().compile()


# Draws the caller's outputs will make of the fit's q (None: no outputs expected).
_outputs: contextvars.ContextVar[int | None] = contextvars.ContextVar("vifit_ahead_outputs",
                                                                     default=None)


@contextlib.contextmanager
def expecting_outputs(n: int = 4000):
    """Within the block, a fit also compiles ahead what writing its files (``n`` draws of q:
    ``vifit.report.write_report``) will run. The command line, which writes them, says so; a
    script that may never ask for them does not pay for it."""
    token = _outputs.set(int(n))
    try:
        yield
    finally:
        _outputs.reset(token)


def outputs_expected() -> int | None:
    """The draws of ``expecting_outputs`` around this call, or None."""
    return _outputs.get()


# Programs being compiled ahead, by the jitted function they belong to.
_pending: dict[Any, list[concurrent.futures.Future]] = {}


def ready(fn: Callable[..., Any]) -> None:
    """Wait until the programs of ``fn`` being compiled ahead are done, so that the call
    that follows finds them instead of compiling the same program a second time meanwhile.
    A failed one is left to the call, which compiles it and raises what there is to raise.
    The wait counts as compiling in ``vifit.clock.timed``. Returns at once when nothing of
    ``fn`` is pending."""
    with _pool_lock:
        futures = _pending.pop(fn, None) if _pending else None
    if not futures:
        return
    t0 = time.perf_counter()
    concurrent.futures.wait(futures)
    count_compiling(time.perf_counter() - t0)


def compile_ahead(programs: Iterable[tuple[Callable[..., Any], tuple]]
                  ) -> list[concurrent.futures.Future]:
    """Trace each ``(jitted, args)`` here and hand its lowering and compiling to the worker;
    the later call of ``jitted`` should be preceded by ``ready(jitted)``. ``args`` are arrays
    or ``jax.ShapeDtypeStruct``s of exactly the shapes, dtypes and weak types of the later
    call's. A program that fails to trace is skipped."""
    if not enabled():
        return []
    settings = (bool(jax.config.jax_enable_x64), bool(jax.config.jax_threefry_partitionable))
    futures = []
    for fn, args in programs:
        try:
            traced = fn.trace(*args)
        except Exception:
            continue
        future = _worker().submit(_lower_and_compile, traced, *settings)
        futures.append(future)
        with _pool_lock:
            for other in [f for f, fs in _pending.items() if all(x.done() for x in fs)]:
                del _pending[other]  # finished and never asked for (a stage not run)
            _pending.setdefault(fn, []).append(future)
    return futures
