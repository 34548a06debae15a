"""Wall time split into compiling and running.

JAX reports, through ``jax.monitoring``, how long it spends tracing a function to a jaxpr,
lowering it to an XLA module and compiling that module (or reading it back from the persistent
compilation cache). ``timed()`` adds those up on the calling thread while its block runs; the
rest of the block's wall time is running (compiled programs, and the Python between them).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Iterator

# The three stages of turning a Python function into an executable, as JAX names them
# (jax/_src/dispatch.py). They do not nest: a jit inside a traced function is traced as part
# of the outer trace, so no second is counted twice.
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                  "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")

_local = threading.local()
_registered = False
_lock = threading.Lock()


@dataclass
class Timing:
    """Seconds of wall time in all, and the part of them spent compiling."""

    seconds: float = 0.0
    compile_seconds: float = 0.0

    @property
    def run_seconds(self) -> float:
        return max(self.seconds - self.compile_seconds, 0.0)

    def as_dict(self) -> dict[str, float]:
        return {"seconds": round(self.seconds, 3),
                "compile_seconds": round(self.compile_seconds, 3),
                "run_seconds": round(self.run_seconds, 3)}

    def text(self) -> str:
        return (f"{self.seconds:.2f} s in all: {self.compile_seconds:.2f} s compiling, "
                f"{self.run_seconds:.2f} s running")


def _listen(event: str, duration: float, **_: object) -> None:
    if event in COMPILE_EVENTS:
        for timing in getattr(_local, "active", ()):
            timing.compile_seconds += duration


def _register() -> None:
    global _registered
    with _lock:
        if not _registered:
            import jax.monitoring

            jax.monitoring.register_event_duration_secs_listener(_listen)
            _registered = True


@contextlib.contextmanager
def timed() -> Iterator[Timing]:
    """Time the block: ``seconds`` is its wall time, ``compile_seconds`` the part JAX spent
    tracing, lowering and compiling (cache reads included) on this thread. Blocks may nest."""
    _register()
    timing = Timing()
    active = getattr(_local, "active", None)
    if active is None:
        active = _local.active = []
    active.append(timing)
    t0 = time.perf_counter()
    try:
        yield timing
    finally:
        timing.seconds = time.perf_counter() - t0
        active.remove(timing)


def count_compiling(seconds: float) -> None:
    """Add ``seconds`` to the compile time of the blocks timing this thread: time spent
    waiting for programs that another thread compiles for it (``vifit.ahead``)."""
    for timing in getattr(_local, "active", ()):
        timing.compile_seconds += seconds
