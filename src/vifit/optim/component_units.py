"""Adam in each mixture component's own units (the optimizer ``"component-adam"``).

Adam moves every parameter by about its learning rate per step, whatever the parameter's
scale. A mixture component much narrower than the rate does not survive that: started exactly
on 0.3 N(10 u, (1e-3)^2 I) + 0.7 N(0, I) in d = 2 (its ELBO within 1e-5 nats of log Z), Adam
at the default rate 0.01 moved the narrow component's location by ten of its sds in the first
steps, its weight fell to 1e-4, and the fit ended log 0.7 = 0.357 nats below log Z (auto's
mixture of the modes its search had found, 2026-12-07). Here each step of a component's
location and of its Cholesky factor's off-diagonal entries is scaled by that component's
marginal sd in that coordinate at the start of the fit, so that a component moves
by about the rate in its own units; its log-scale diagonal and the weights' logits are already
relative and keep Adam's step. Parameters that are not a mixture's components keep plain Adam.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class UnitsState(NamedTuple):
    units: optax.Params  # per-entry multipliers of the updates, fixed at init


def component_units(params: optax.Params) -> optax.Params:
    """Per-entry multipliers for ``params``: for a mixture's ``components`` with ``loc``
    ``(K, d)`` and either ``chol`` ``(K, d, d)`` (log diagonal) or ``log_scale`` ``(K, d)``,
    each component's marginal sds for ``loc`` and for the rows of ``chol``'s strictly lower
    triangle; 1 everywhere else."""
    ones = jax.tree.map(jnp.ones_like, params)
    comps = params.get("components") if isinstance(params, dict) else None
    if not isinstance(comps, dict) or "loc" not in comps:
        return ones
    if "chol" in comps:
        raw = comps["chol"]
        eye = jnp.eye(raw.shape[-1], dtype=bool)
        # each coordinate's marginal sd, the norm of its row of L: the conditional sd (L's
        # diagonal) of a component along a curved ridge is a small part of how far it must
        # move, and stepping in it slowed auto's mixture of points along a sharp banana
        chol = jnp.where(eye, jnp.exp(raw), jnp.tril(raw, -1))
        sd = jnp.sqrt(jnp.sum(chol ** 2, axis=-1))  # (K, d)
        chol = jnp.where(eye, 1.0, sd[..., :, None]).astype(comps["chol"].dtype)
        units = dict(ones["components"], loc=sd.astype(comps["loc"].dtype), chol=chol)
    elif "log_scale" in comps:
        units = dict(ones["components"], loc=jnp.exp(comps["log_scale"]))
    else:
        return ones
    return dict(ones, components=units)


def scale_by_component_units() -> optax.GradientTransformation:
    """Multiply updates by ``component_units`` of the parameters the optimizer starts from."""

    def init(params):
        return UnitsState(jax.lax.stop_gradient(component_units(params)))

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, s: u * s, updates, state.units), state

    return optax.GradientTransformation(init, update)


def component_adam(learning_rate) -> optax.GradientTransformation:
    """Adam whose steps of a mixture's components are in each component's own units (see the
    module docstring); ``learning_rate`` as for ``optax.adam``."""
    return optax.chain(optax.scale_by_adam(), scale_by_component_units(),
                       optax.scale_by_learning_rate(learning_rate))
