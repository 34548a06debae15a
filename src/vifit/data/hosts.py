"""One data fit across several processes (machines), with JAX's own runtime: every process
runs the same program (``jax.distributed``), holds only its own range of rows, and the mesh of
``vifit.data.devices`` spans all their devices.

Rows are numbered as if the processes' rows were concatenated in process order ("logical"
rows, the numbering a one-process fit of the whole data set uses), so the batch schedule
draws the same minibatches whatever the number of processes. On the mesh each process's rows
are padded to the same count (a multiple of its device count) with copies of its first row;
``global_index`` maps logical row numbers to positions in that padded array, and no batch ever
reads a padding row. Full passes (the control variate's reference, the final evaluation) sum
each process's own rows and add the parts across processes.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from vifit.errors import ConfigError

ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Join this process to a multi-process run (``jax.distributed.initialize``), from the
    arguments or else the standard variables ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``. Must run before any JAX computation; calling it
    again is a no-op."""
    if is_initialized():
        return
    coordinator = coordinator or os.environ.get(ENV[0])
    num_processes = num_processes if num_processes is not None else _env_int(ENV[1])
    process_id = process_id if process_id is not None else _env_int(ENV[2])
    missing = [name for name, v in zip(("coordinator", "num_processes", "process_id"),
                                       (coordinator, num_processes, process_id)) if v is None]
    if missing:
        raise ConfigError(
            f"a distributed fit needs the coordinator's HOST:PORT, the number of processes and "
            f"this process's id; missing {', '.join(missing)}. Pass --coordinator, "
            f"--num-processes and --process-id (or set {', '.join(ENV)}).")
    if not 0 <= process_id < num_processes:
        raise ConfigError(f"process_id must be in 0..{num_processes - 1}, got {process_id}.")
    try:
        jax.distributed.initialize(coordinator_address=coordinator,
                                   num_processes=int(num_processes),
                                   process_id=int(process_id))
    except RuntimeError as exc:
        if "before" in str(exc) or "already" in str(exc):
            raise ConfigError(
                "jax.distributed must start before any JAX computation: call "
                "vifit.data.hosts.initialize(...) at the top of the script, before building "
                "the DataTarget (its checks run JAX).") from exc
        raise


def is_initialized() -> bool:
    from jax._src import distributed

    return distributed.global_state.client is not None


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer.") from None


def row_range(n_rows: int, process_id: int, num_processes: int) -> tuple[int, int]:
    """The rows ``[start, stop)`` that process ``process_id`` of ``num_processes`` reads of a
    file of ``n_rows`` rows: contiguous, in process order, sizes differing by at most one."""
    base, extra = divmod(n_rows, num_processes)
    start = process_id * base + min(process_id, extra)
    return start, start + base + (process_id < extra)


def sum_over_processes(x: Any) -> Any:
    """``x`` (NumPy-convertible) summed over all processes; ``x`` itself in one process."""
    if jax.process_count() == 1:
        return x
    from jax.experimental import multihost_utils

    return jax.tree.map(lambda a: np.asarray(multihost_utils.process_allgather(
        np.asarray(a))).sum(0), x)


class HostRows:
    """How the processes' rows make up the global data: counts, offsets, padded layout."""

    def __init__(self, local_rows: int, devices_per_process: int = 1):
        from jax.experimental import multihost_utils

        counts = np.asarray(multihost_utils.process_allgather(np.asarray([local_rows])))
        self.counts = counts.reshape(-1).astype(np.int64)
        if np.any(self.counts < 1):
            raise ConfigError(f"every process needs at least one row; rows per process: "
                              f"{self.counts.tolist()}.")
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.n_rows = int(self.counts.sum())
        self.set_layout(devices_per_process)

    def set_layout(self, devices_per_process: int) -> None:
        """Pad each process's rows to the same count, a multiple of its devices on the mesh."""
        per = int(devices_per_process)
        self.padded = int(-(-int(self.counts.max()) // per) * per)  # rows per process, padded

    def global_index(self, logical: np.ndarray) -> np.ndarray:
        """Positions in the padded global array of logical row numbers."""
        process = np.searchsorted(self.offsets, logical, side="right") - 1
        return (process * self.padded + (logical - self.offsets[process])).astype(logical.dtype)

    def place_rows(self, local: Any, sharding: Any) -> Any:
        """This process's rows as its part of global arrays sharded along the rows."""
        def place(a):
            a = np.asarray(a)
            pad = self.padded - a.shape[0]
            if pad:
                a = np.concatenate([a, np.repeat(a[:1], pad, 0)])
            shape = (self.padded * jax.process_count(),) + a.shape[1:]
            return jax.make_array_from_process_local_data(sharding, a, shape)

        return jax.tree.map(place, local)
