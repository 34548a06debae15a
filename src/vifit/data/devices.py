"""Spreading a data fit over devices with ``jax.sharding``: the rows live sharded along N on a
one-axis ``Mesh`` (``NamedSharding`` on the rows), and each step's minibatch is laid out along
the same axis, so each device evaluates its ``B / K`` rows of the batch for every draw of q and
XLA sums the parts. The batches' row numbers come from the seed alone
(``vifit.data.batches``), so K devices draw the same minibatches and the same noise as one;
only the order of the sums' additions differs.

Across processes (``jax.distributed``) the mesh spans every process's devices; each process
holds only its own range of rows (``vifit.data.hosts``).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vifit.errors import ConfigError

AXIS = "rows"


def _devices(count: int) -> list:
    available = jax.devices()
    if count > len(available):
        kind = available[0].platform
        hint = (" On CPU, start Python with XLA_FLAGS=--xla_force_host_platform_device_count="
                f"{count} to split the cores into {count} devices." if kind == "cpu" else "")
        raise ConfigError(f"devices={count}, but JAX sees {len(available)} {kind} device(s)."
                          + hint)
    return available[:count]


def default_devices(n_rows: int, batch_size: int | None) -> int:
    """Devices a data fit uses when none are given: every device JAX sees when the fit runs
    on minibatches of a large data set and the batch splits evenly over them, else one."""
    count = jax.device_count()
    if batch_size is None or count == 1 or n_rows < 100_000 or batch_size % count:
        return 1
    return count


class RowSharding:
    """A one-axis mesh over ``count`` devices, for the rows of the data and of each batch."""

    def __init__(self, mesh: Mesh):
        self.mesh = mesh
        self.count = int(mesh.devices.size)
        self.rows = NamedSharding(mesh, PartitionSpec(AXIS))
        self.replicated = NamedSharding(mesh, PartitionSpec())

    @classmethod
    def make(cls, count: int | None, batch_size: int) -> RowSharding:
        """A mesh over the first ``count`` devices (None: all, across every process)."""
        if count is None:
            count = jax.device_count()
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
            raise ConfigError(f"devices must be a positive integer, got {count!r}.")
        devices = _devices(int(count))
        if batch_size % count:
            lo, hi = batch_size // count * count, -(-batch_size // count) * count
            raise ConfigError(f"batch_size={batch_size} does not split evenly over {count} "
                              f"devices; use a multiple of {count}, e.g. {hi}"
                              + (f" or {lo}." if lo else "."))
        return cls(Mesh(np.asarray(devices), (AXIS,)))

    @classmethod
    def for_processes(cls, batch_size: int) -> RowSharding:
        """A mesh over every device of every process, or over one device per process when
        the batch does not split evenly over all of them."""
        every = jax.devices()
        if batch_size % len(every) == 0:
            return cls(Mesh(np.asarray(every), (AXIS,)))
        first = {}
        for d in every:
            first.setdefault(d.process_index, d)
        count = len(first)
        if batch_size % count:
            raise ConfigError(f"batch_size={batch_size} does not split evenly over the "
                              f"{count} processes; use a multiple of {count}.")
        return cls(Mesh(np.asarray([first[p] for p in sorted(first)]), (AXIS,)))

    @property
    def per_process(self) -> int:
        """Devices of the mesh in each process."""
        return self.count // jax.process_count()

    def place_rows(self, data: Any) -> Any:
        """``data`` (host arrays, N rows) as global arrays sharded along the rows. N is
        padded up to a multiple of the device count with copies of the first row, which no
        batch index and no full pass ever reaches."""
        def place(a):
            a = np.asarray(a)
            pad = (-a.shape[0]) % self.count
            if pad:
                a = np.concatenate([a, np.repeat(a[:1], pad, 0)])
            return jax.device_put(a, self.rows)

        return jax.tree.map(place, data)

    def constrain_batch(self, batch: Any) -> Any:
        """Inside a step: lay the batch's rows out along the devices."""
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, self.rows), batch)

    def replicate(self, tree: Any) -> Any:
        """``tree`` (host or local arrays, the same in every process) copied to every device
        of the mesh: the fit's state and each chunk's batch indices. Across processes each
        one supplies its own devices' copies (``make_array_from_callback``)."""
        if jax.process_count() == 1:
            return jax.device_put(tree, self.replicated)

        def put(a):
            if jax.dtypes.issubdtype(getattr(a, "dtype", None), jax.dtypes.prng_key):
                impl = jax.random.key_impl(a)
                return jax.random.wrap_key_data(put(jax.random.key_data(a)), impl=impl)
            host = np.asarray(a)
            return jax.make_array_from_callback(host.shape, self.replicated,
                                                lambda index: host[index])

        return jax.tree.map(put, tree)

    @staticmethod
    def local(tree: Any) -> Any:
        """Replicated global arrays back as this process's own (host) copies."""
        def get(a):
            if jax.dtypes.issubdtype(getattr(a, "dtype", None), jax.dtypes.prng_key):
                return jax.random.wrap_key_data(get(jax.random.key_data(a)),
                                                impl=jax.random.key_impl(a))
            return jax.numpy.asarray(np.asarray(a.addressable_data(0)) if isinstance(
                a, jax.Array) and not a.is_fully_addressable else a)

        return jax.tree.map(get, tree)
