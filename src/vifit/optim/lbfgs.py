"""A deterministic L-BFGS driver on optax (``optax.lbfgs`` with its zoom line search), shared by
the fixed-draw objective and Pathfinder.

Iterations run inside ``lax.scan`` chunks with a ``done`` flag (iterations after convergence
are skipped with ``lax.cond``), so there is no unbounded ``while_loop`` of our own; optax's line
search has its own bounded one (at most ``max_linesearch_steps``).

Stopping: the gradient's infinity-norm falls below ``gtol``, or the objective changes by less
than ``ftol * (1 + |f|)`` for ``stall_limit`` iterations in a row (the float32 floor), or a
value or gradient stops being finite (the last finite iterate is kept).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class LBFGSState(NamedTuple):
    x: Any  # pytree: the current iterate
    opt_state: optax.OptState
    value: jax.Array  # () f(x)
    grad: Any  # pytree like x: grad f(x)
    done: jax.Array  # () bool
    stall: jax.Array  # () int32: consecutive iterations with a negligible decrease
    iters: jax.Array  # () int32: iterations taken
    failed: jax.Array  # () bool: stopped because something was not finite


def _max_abs(tree) -> jax.Array:
    return jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in jax.tree.leaves(tree)]))


def _finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def make_lbfgs(f: Callable[[Any], jax.Array], memory: int = 10, gtol: float = 1e-6,
               ftol: float | None = None, stall_limit: int = 5):
    """``(init, step)`` for minimizing ``f`` from a pytree ``x0``. ``ftol`` defaults to 10
    machine epsilons of the iterate's dtype."""
    opt = optax.lbfgs(memory_size=memory)
    value_and_grad = optax.value_and_grad_from_state(f)

    def init(x0) -> LBFGSState:
        value, grad = jax.value_and_grad(f)(x0)
        bad = ~(jnp.isfinite(value) & _finite(grad))
        return LBFGSState(x0, opt.init(x0), value, grad, bad, jnp.zeros((), jnp.int32),
                          jnp.zeros((), jnp.int32), bad)

    def _active(st: LBFGSState) -> LBFGSState:
        value, grad = value_and_grad(st.x, state=st.opt_state)
        updates, opt_state = opt.update(grad, st.opt_state, st.x, value=value, grad=grad,
                                        value_fn=f)
        x = optax.apply_updates(st.x, updates)
        new_value = optax.tree.get(opt_state, "value")
        new_grad = optax.tree.get(opt_state, "grad")
        ok = jnp.isfinite(new_value) & _finite(new_grad) & _finite(x)
        tol = (10 * jnp.finfo(new_value.dtype).eps) if ftol is None else ftol
        small = jnp.abs(value - new_value) <= tol * (1.0 + jnp.abs(value))
        stall = jnp.where(small, st.stall + 1, 0)
        converged = (_max_abs(new_grad) <= gtol) | (stall >= stall_limit)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        return LBFGSState(
            x=keep(x, st.x), opt_state=keep(opt_state, st.opt_state),
            value=jnp.where(ok, new_value, st.value), grad=keep(new_grad, st.grad),
            done=converged | ~ok, stall=stall, iters=st.iters + 1, failed=~ok,
        )

    def step(st: LBFGSState) -> LBFGSState:
        return jax.lax.cond(st.done, lambda s: s, _active, st)

    return init, step
