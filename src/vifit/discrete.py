"""Targets over integer states: binary spins, categorical labels.

A DiscreteTarget is a Target whose ``z`` is a vector of ``n_sites`` integers in
``{0, ..., n_states - 1}``; its ``log_prob(states)`` is an unnormalized log probability. It may
also carry ``relaxed_log_prob(soft)``, the same function extended to points of the simplex
(``soft`` of shape ``(n_sites, n_states)``, rows summing to one, equal to ``log_prob`` at
one-hot rows), which the relaxed (Gumbel-softmax) estimator needs. ``log_density`` accepts both:
integer states ``(n_sites,)`` or relaxed points ``(n_sites, n_states)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp

from vifit.errors import TargetError
from vifit.freshness import kept
from vifit.target import Array, Target, _identity_constrain


def _dispatch(log_prob: Callable, relaxed: Callable | None) -> Callable[[Array], Array]:
    def log_density(x: Array) -> Array:
        x = jnp.asarray(x)
        if x.ndim == 2:  # a relaxed point on the simplex (the shape is static under jit)
            if relaxed is None:
                raise TargetError("this DiscreteTarget has no relaxed_log_prob; give one to use "
                                  "the relaxed estimator.")
            return relaxed(x)
        return log_prob(x.astype(jnp.int32) if not jnp.issubdtype(x.dtype, jnp.integer) else x)

    return log_density


class DiscreteTarget(Target):
    """An unnormalized log probability over ``n_sites`` integer sites with ``n_states`` each.

    ``DiscreteTarget(log_prob, n_sites=16, n_states=2)``; optional ``relaxed_log_prob``,
    ``init`` (a state where ``log_prob`` is finite; default all zeros), ``site_names``,
    ``name`` and ``exact`` (e.g. ``{"log_z": ..., "marginals": (n_sites, n_states)}``).
    Fitted with the discrete families (``bernoulli``, ``categorical``).
    """

    discrete = True

    def __init__(
        self,
        log_prob: Callable[[Array], Array],
        n_sites: int,
        n_states: int = 2,
        *,
        relaxed_log_prob: Callable[[Array], Array] | None = None,
        init: Any = None,
        site_names: Sequence[str] | None = None,
        name: str = "discrete",
        exact: dict[str, Any] | None = None,
        check: bool = True,
    ):
        if not callable(log_prob):
            raise TargetError("log_prob must be a function of integer states (n_sites,) -> scalar.")
        if not (isinstance(n_sites, (int, np.integer)) and n_sites >= 1):
            raise TargetError(f"n_sites must be a positive integer, got {n_sites!r}.")
        if not (isinstance(n_states, (int, np.integer)) and n_states >= 2):
            raise TargetError(f"n_states must be an integer >= 2, got {n_states!r}.")
        init_arr = (jnp.zeros(n_sites, jnp.int32) if init is None
                    else jnp.asarray(init, dtype=jnp.int32))
        if init_arr.shape != (n_sites,):
            raise TargetError(f"init must be a state of shape ({n_sites},), got {init_arr.shape}.")
        if bool(jnp.any((init_arr < 0) | (init_arr >= n_states))):
            raise TargetError(f"init has values outside 0..{n_states - 1}.")
        names = (tuple(f"x[{i}]" for i in range(n_sites)) if site_names is None
                 else tuple(str(s) for s in site_names))
        if len(names) != n_sites:
            raise TargetError(f"site_names has {len(names)} names for {n_sites} sites.")
        self.log_prob = log_prob
        self.relaxed_log_prob = relaxed_log_prob
        self.n_states = int(n_states)
        self.log_density = _dispatch(log_prob, relaxed_log_prob)
        self.dim = int(n_sites)
        self.init = init_arr
        self.param_names = names
        self.constrain = _identity_constrain(names)
        self.differentiable = False
        self.name = name
        self.exact = dict(exact or {})
        if check:
            self.check()

    @property
    def relaxed(self) -> bool:
        return self.relaxed_log_prob is not None

    def check(self) -> None:
        """Evaluate ``log_prob`` (and the relaxation) at ``init``; raise TargetError if unusable."""
        try:
            value = jnp.asarray(self.log_prob(self.init))
            batch = jax.vmap(self.log_prob)(jnp.stack([self.init, self.init]))
        except Exception as exc:
            raise TargetError(
                f"log_prob failed at the initial state with {type(exc).__name__}: {exc}. It is "
                f"called with integer states of shape ({self.dim},), also under jax.vmap."
            ) from exc
        if value.shape != () or batch.shape != (2,):
            raise TargetError(f"log_prob must return a scalar, got shape {value.shape}.")
        if not bool(jnp.isfinite(value)):
            raise TargetError(f"log_prob is {float(value)} at the initial state; it must be "
                              "finite there: pass init=<a state with positive probability>.")
        if self.relaxed:
            onehot = jax.nn.one_hot(self.init, self.n_states)
            try:
                soft = jnp.asarray(self.relaxed_log_prob(onehot))
                jax.grad(self.relaxed_log_prob)(onehot)
            except Exception as exc:
                raise TargetError(
                    f"relaxed_log_prob failed ({type(exc).__name__}: {exc}); it takes a point "
                    f"of shape ({self.dim}, {self.n_states}) on the simplex and must be "
                    "differentiable."
                ) from exc
            if not bool(jnp.allclose(soft, value, rtol=1e-4, atol=1e-4)):
                raise TargetError(
                    f"relaxed_log_prob at the one-hot initial state is {float(soft)}, but "
                    f"log_prob is {float(value)}; the relaxation must agree at one-hot points."
                )

    def num_states(self) -> int:
        """Size of the state space, ``n_states ** n_sites``."""
        return self.n_states**self.dim


# A state space of at most this many states is summed by ``enumerate_exact`` by default.
ENUMERATE_MAX_STATES = 1 << 22
# States per compiled block of the sum (one program, run once per block).
_BLOCK = 1 << 16
# States whose log p is this far below the largest carry less than e^-40 of it: their
# magnitude does not enter the rounding allowance.
_NEGLIGIBLE = 40.0


def enumerate_exact(target: DiscreteTarget, max_states: int = ENUMERATE_MAX_STATES
                    ) -> dict[str, Any]:
    """log Z and the exact marginals ``(n_sites, n_states)`` by summing p over every state,
    in float64, block by block (memory for one block of states, not for all of them). Also
    ``states`` (how many were summed), ``seconds`` and ``rounding``: an allowance in nats for
    the floating-point rounding of log p itself (16 ulps of log p's dtype at the largest
    |log p| among states of non-negligible mass), within which log Z is exact. Refuses state
    spaces larger than ``max_states``."""
    import time

    total = target.num_states()
    if total > max_states:
        raise TargetError(f"{target.name!r} has {total} states; exact enumeration is limited to "
                          f"{max_states}.")
    t0 = time.perf_counter()
    k, d = target.n_states, target.dim
    chunk = min(total, _BLOCK)
    with jax.enable_x64(True):
        powers = jnp.asarray(k ** np.arange(d), dtype=jnp.int64)
        out_dtype = jax.eval_shape(target.log_prob,
                                   jax.ShapeDtypeStruct((d,), jnp.int32)).dtype

        @jax.jit
        def block(start):
            """(max log p, log sum over the block, (d, K) log sums by site and state, largest
            |log p| within _NEGLIGIBLE of the block's max) for states start..start+chunk."""
            i = start + jnp.arange(chunk, dtype=jnp.int64)
            states = ((i[:, None] // powers) % k).astype(jnp.int32)
            logp = jax.vmap(target.log_prob)(states).astype(jnp.float64)
            logp = jnp.where((i < total) & ~jnp.isnan(logp), logp, -jnp.inf)
            top = jnp.max(logp)
            shift = jnp.where(jnp.isfinite(top), top, 0.0)
            w = jnp.exp(logp - shift)
            by_site = jax.vmap(lambda s: jax.ops.segment_sum(w, s, num_segments=k))(states.T)
            big = jnp.max(jnp.where(logp > top - _NEGLIGIBLE, jnp.abs(logp), 0.0))
            return top, shift + jnp.log(jnp.sum(w)), shift + jnp.log(by_site), big

        parts = [tuple(np.asarray(a, np.float64) for a in block(s))
                 for s in range(0, total, chunk)]
    tops = np.array([p[0] for p in parts])
    log_z = float(logsumexp(np.array([p[1] for p in parts])))
    with np.errstate(divide="ignore"):
        marginals = np.exp(logsumexp(np.stack([p[2] for p in parts]), axis=0) - log_z)
    top = float(np.max(tops))
    big = max((p[3] for p, t in zip(parts, tops) if t > top - _NEGLIGIBLE), default=0.0)
    rounding = 16.0 * float(jnp.finfo(out_dtype).eps) * max(1.0, float(big)) \
        if jnp.issubdtype(out_dtype, jnp.floating) else 0.0
    return {"log_z": log_z, "marginals": marginals, "states": int(total),
            "rounding": rounding, "seconds": time.perf_counter() - t0}


def enumerable(target: Target) -> bool:
    """Whether vifit sums p over every state of ``target`` on its own (the fit's check of the
    mass q misses, ``vifit evidence``'s "enumeration" estimate): a discrete target of at most
    ``ENUMERATE_MAX_STATES`` states whose sum costs no more flops than the mode search's budget
    (``vifit.modes.SEARCH_FLOPS``; one evaluation of log p counted by XLA's cost analysis)."""
    if not getattr(target, "discrete", False) or target.num_states() > ENUMERATE_MAX_STATES:
        return False
    from vifit.modes import SEARCH_FLOPS

    return target.num_states() * eval_flops(target.log_prob, target.dim) <= SEARCH_FLOPS


@kept(8)
def eval_flops(log_prob: Callable[[Array], Array], n_sites: int) -> float:
    """Floating-point operations of one evaluation of ``log_prob`` at a state of ``n_sites``
    sites (XLA's cost analysis, nothing compiled; at least 1), kept: the fit's search over
    states, its sum over every state and ``vifit evidence`` all ask."""
    from vifit.modes import program_flops

    return max(1.0, program_flops(log_prob, jax.ShapeDtypeStruct((n_sites,), jnp.int32)))
