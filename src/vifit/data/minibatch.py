"""The minibatch estimate of ``log p(x, z)`` that a data fit's steps differentiate.

Plain: ``log_prior(z) + (N / B) sum_{i in batch} log_lik(z, x_i)``, unbiased for the full
density, so any gradient estimator built on it (reparam, stl, score, ...) stays unbiased.

With the control variate (a first-order Taylor expansion of each row's log-likelihood around
a reference point ``r``, as in the difference estimators of Bardenet, Doucet & Holmes, 2017,
and Dubey et al., 2016), the full sum is split into its linearization, computed exactly from
one full pass at ``r`` (``L = sum_i l_i(r)``, ``G = sum_i grad l_i(r)``), and the remainder,
estimated from the batch:

    sum_i l_i(z) = L + G.(z - r) + sum_i [l_i(z) - l_i(r) - grad l_i(r).(z - r)]
                 ~ L + G.(z - r) + (N / B) sum_{i in batch} [same].

Still unbiased for any ``r``; near ``r`` each remainder is second order in ``z - r``, so the
subsampling noise, which otherwise grows like N / sqrt(B), all but vanishes once q is
concentrated near ``r``. The per-row linear terms come from one forward-mode ``jvp`` (no
per-row gradients are stored). ``r`` is refreshed (one more full pass) when q's mean moves
more than ``REFRESH_SD`` of q's own standard deviations away from it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vifit.data.batches import BatchSchedule
from vifit.data.passes import lik_value_and_grad
from vifit.data.target import DataTarget

Array = jax.Array
# Move q's mean this many of its standard deviations (in the worst coordinate) from the
# reference point and the reference is refreshed.
REFRESH_SD = 0.5


class Reference(NamedTuple):
    point: Array  # (dim,) r
    value: Array  # () sum_i l_i(r)
    grad: Array  # (dim,) sum_i grad l_i(r)


class Minibatch:
    """A DataTarget fitted ``batch_size`` rows per step: the batches' row numbers for each
    chunk of steps (``inputs``), and the step's density (``at``). ``aux`` holds what every
    step of a chunk shares: the device data and the control variate's reference."""

    def __init__(self, target: DataTarget, batch_size: int, seed: int, *,
                 control_variate: bool = True, sharding: Any = None, hosts: Any = None):
        self.target = target
        self.hosts = hosts  # vifit.data.hosts.HostRows: this process holds part of the rows
        self.n_rows = target.n_rows if hosts is None else hosts.n_rows
        self.schedule = BatchSchedule(self.n_rows, batch_size, seed)
        self.control_variate = bool(control_variate)
        self.sharding = sharding  # vifit.data.devices.RowSharding or None
        self.host = target.out_of_core and hosts is None
        data = None
        if hosts is not None:
            data = hosts.place_rows(target.data, sharding.rows)
        elif not self.host:
            data = target.device_data(sharding)
        self.refreshes = 0
        self.reference: Reference | None = None
        self.aux = {"data": data, "ref": None}

    @property
    def batch_size(self) -> int:
        return self.schedule.batch_size

    def inputs(self, start: int, length: int, window: int) -> Any:
        """What the chunk of steps ``start .. start + length - 1`` scans over (padded to
        ``window`` steps): the batches' row numbers, or for memory-mapped data the rows
        themselves, read here."""
        index = self.schedule.indices(start, length)
        if length < window:
            index = np.concatenate([index, np.repeat(index[-1:], window - length, 0)])
        if self.hosts is not None:
            return self.sharding.replicate(self.hosts.global_index(index))
        if not self.host:
            return (jnp.asarray(index) if self.sharding is None
                    else self.sharding.replicate(index))
        rows = self.target.rows(index.reshape(-1))
        return jax.tree.map(lambda a: jnp.asarray(a.reshape((window, -1) + a.shape[1:])), rows)

    def at(self, x: Any, aux: Any):
        """The step's estimate of ``log p(x, z)``, a function of one z."""
        target, scale = self.target, self.schedule.scale
        batch = x if self.host else jax.tree.map(lambda a: jnp.take(a, x, axis=0), aux["data"])
        if self.sharding is not None:
            batch = self.sharding.constrain_batch(batch)
        ref: Reference | None = aux["ref"]
        if ref is None:
            return target.minibatch_log_density(batch, scale)

        def log_density(z: Array) -> Array:
            dz = z - ref.point
            at_ref, slope = jax.jvp(lambda u: target.log_lik(u, batch), (ref.point,), (dz,))
            rest = target.log_lik(z, batch) - at_ref - slope
            return (target.log_prior(z) + ref.value + jnp.dot(ref.grad, dz)
                    + scale * jnp.sum(rest))

        return log_density

    def prepare(self, tree: Any) -> Any:
        """The loop's state as the compiled chunks take it: across processes, replicated on
        the global mesh; else unchanged."""
        return tree if self.hosts is None else self.sharding.replicate(tree)

    def local(self, tree: Any) -> Any:
        """Parameters the loop returns, as this process's own arrays."""
        return tree if self.hosts is None else self.sharding.local(tree)

    def before_chunk(self, family: Any, params: Any) -> bool:
        """Refresh the control variate's reference when q's mean has moved away from it (or
        there is none yet); returns whether it did."""
        if not self.control_variate:
            return False
        mean = np.asarray(family.mean(params), dtype=np.float64)
        if self.reference is not None:
            sd = np.sqrt(np.maximum(np.diag(np.asarray(family.covariance(params))), 1e-300))
            moved = np.abs(mean - np.asarray(self.reference.point)) / sd
            if not np.max(moved) > REFRESH_SD:
                return False
        point = jnp.asarray(mean, dtype=self.target.init.dtype)
        value, grad = lik_value_and_grad(self.target, point)
        if not (np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))):
            return False  # keep the old reference (or none): the estimate stays unbiased
        self.reference = Reference(point, value, grad)
        if self.hosts is not None:
            self.reference = self.sharding.replicate(self.reference)
        self.aux = {**self.aux, "ref": self.reference}
        self.refreshes += 1
        return True
