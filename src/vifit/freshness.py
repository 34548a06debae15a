"""Compiled programs kept across fits, and when they must be dropped.

vifit keeps its jitted programs (the fitting loops, the evaluation's draw program, the mode
search's climbs) from one fit to the next, keyed by the target's functions, so that a second
fit of the same model compiles nothing. JAX fixes what a function reads from outside its
arguments (a global data array, a float) when it first traces it: a user who rebinds such a
global between two fits would otherwise get the second fit run on the old values, without a
word (measured: a refit after rebinding the means of a Gaussian returned the old means, and
its ELBO was scored against the old density).

So every ``vifit.fit`` and ``vifit.evidence`` call first takes the target's fingerprint: the
program its ``log_density`` and ``constrain`` trace to at ``init``, with the values of every
array they read (a hash of them). When the same functions now trace to another program, every
kept program is dropped (``forget_all``). A trace of the density at one point costs
milliseconds, against the seconds of compiling it saves.

An array changed in place (``mu[:] = new``) is not seen: once JAX has used a NumPy array as a
constant it keeps its first values (even a fresh ``jax.jit`` of the same density computed
with the old ones), so nothing built on JAX can see that change; rebinding is seen.
"""

from __future__ import annotations

import collections
import functools
import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

_CACHES: list[Any] = []  # lru_cache-wrapped functions and dicts that forget_all clears
_LAST: collections.OrderedDict = collections.OrderedDict()  # identity -> fingerprint
_MAX_SEEN = 256


def kept(maxsize: int) -> Callable[[Callable[..., Any]], Any]:
    """``functools.lru_cache(maxsize)`` whose entries ``forget_all`` drops: for caches keyed
    by a target or its functions."""

    def wrap(fn):
        cached = functools.lru_cache(maxsize=maxsize)(fn)
        _CACHES.append(cached)
        return cached

    return wrap


def kept_dict() -> dict:
    """A dict that ``forget_all`` empties."""
    store: dict = {}
    _CACHES.append(store)
    return store


def forget_all() -> None:
    for cache in _CACHES:
        (cache.cache_clear if hasattr(cache, "cache_clear") else cache.clear)()


def fingerprint(target) -> str | None:
    """A hash of the programs ``target.log_density`` and ``target.constrain`` trace to at
    ``target.init`` and of the arrays they read (for a data target: its prior, and its
    likelihood at the first row); None when they do not trace there."""
    import jax

    h = hashlib.blake2b(digest_size=16)
    try:
        fns = [target.log_density, target.constrain]
        if hasattr(target, "log_lik") and hasattr(target, "rows"):
            # A data target: its data are an argument, not a global, and tracing the full
            # density would read out-of-core rows whole; its prior and its likelihood at one
            # row carry any global they read.
            row = target.rows(np.zeros(1, dtype=int))
            fns = [target.log_prior, lambda z: target.log_lik(z, row), target.constrain]
        for fn in fns:
            # A new function each time: JAX keeps the trace of a function it has seen, with
            # the values it read then.
            closed = jax.make_jaxpr(lambda z, fn=fn: fn(z))(target.init)
            h.update(str(closed.jaxpr).encode())
            for const in closed.consts:
                a = np.ascontiguousarray(np.asarray(const))
                h.update(f"{a.shape}{a.dtype}".encode())
                h.update(a.tobytes())
    except Exception:  # the fit itself will say what is wrong with the density
        return None
    return h.hexdigest()


def _identity(fn) -> tuple[int, int]:
    return id(getattr(fn, "__func__", fn)), id(getattr(fn, "__self__", None))


def check(target) -> None:
    """Drop every kept program when ``target``'s functions trace to another program than the
    last time they were fitted (a global they read was rebound), or cannot be traced."""
    fp = fingerprint(target)
    key = (_identity(target.log_density), _identity(target.constrain))
    last = _LAST.get(key)
    if fp is None or (last is not None and last != fp):
        forget_all()
        for attr in ("_batch_constrain", "_batch_flat", "_constrained_keys"):
            getattr(target, "__dict__", {}).pop(attr, None)
    _LAST[key] = fp
    _LAST.move_to_end(key)
    while len(_LAST) > _MAX_SEEN:
        _LAST.popitem(last=False)
