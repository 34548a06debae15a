"""Adam in each mixture component's own units (the optimizer ``"component-adam"``).

Adam moves every parameter by about its learning rate per step, whatever the parameter's
scale. A mixture component much narrower than the rate does not survive that: started exactly
on 0.3 N(10 u, (1e-3)^2 I) + 0.7 N(0, I) in d = 2 (its ELBO within 1e-5 nats of log Z), Adam
at the default rate 0.01 moved the narrow component's location by ten of its sds in the first
steps, its weight fell to 1e-4, and the fit ended log 0.7 = 0.357 nats below log Z (auto's
mixture of the modes its search had found, 2026-12-07). Here each full-rank component steps
in its own frame at the start of the fit, its Cholesky factor L0 there: the fit's location
and factor are reparameterised as loc = loc0 + L0 v and L = L0 M, and Adam steps v and M (M
with log diagonal), so that a component moves by about the rate along its own axes, a
rotated one too. (The first version scaled each coordinate's steps by the component's
marginal sd there; a rotated component with sds 1e-4 and 0.7, a float32 spike-and-slab
posterior's cross mode, was still thrown off its mode, since both its marginal sds are
about 0.5.) A mean-field component's location steps in its sds; the log-scales and the
weights' logits are already relative and keep Adam's step. Parameters that are not a
mixture's components keep plain Adam.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import optax

from vifit.families.gaussian import _cholesky


class UnitsState(NamedTuple):
    units: optax.Params  # per-entry multipliers of the updates, fixed at init


def component_units(params: optax.Params) -> optax.Params:
    """Per-entry multipliers for ``params``: for a mixture's mean-field ``components`` (``loc``
    ``(K, d)``, ``log_scale`` ``(K, d)``) each component's sds for ``loc``; 1 everywhere else
    (full-rank components step in their frames instead: ``_framed``)."""
    ones = jax.tree.map(jnp.ones_like, params)
    comps = params.get("components") if isinstance(params, dict) else None
    if not isinstance(comps, dict) or "loc" not in comps or "log_scale" not in comps:
        return ones
    return dict(ones, components=dict(ones["components"], loc=jnp.exp(comps["log_scale"])))


def scale_by_component_units() -> optax.GradientTransformation:
    """Multiply updates by ``component_units`` of the parameters the optimizer starts from."""

    def init(params):
        return UnitsState(jax.lax.stop_gradient(component_units(params)))

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, s: u * s, updates, state.units), state

    return optax.GradientTransformation(init, update)


class FrameState(NamedTuple):
    frames: Any  # (K, d, d) each full-rank component's Cholesky factor at the start, or None


def _factor(raw):
    """Each component's lower Cholesky factor ``(K, d, d)`` from its unconstrained ``raw``
    (the full-rank family's own map, per component)."""
    return jax.vmap(_cholesky)(raw)


def _start_frames(params):
    comps = params.get("components") if isinstance(params, dict) else None
    if not isinstance(comps, dict) or "chol" not in comps or "loc" not in comps:
        return None
    return jax.lax.stop_gradient(_factor(comps["chol"]))


def _in_frames(updates, frames, params, forward: bool):
    """The components' entries of ``updates`` mapped between the fitted parameters (loc, raw
    factor R of L) and each component's frame at the start, L0: loc = loc0 + L0 v and
    L = L0 M, M with log diagonal. ``forward``: gradients to the frame's (g_v = L0^T g_loc,
    g_M = L0^T g_L); else the frame's steps back to the parameters' (L0 dv, and R(L0 (M + dM))
    - R). Exact reparameterisations: Adam, between the two, steps every component by about
    its rate in its own units along its own axes."""
    comps, cur = updates["components"], params["components"]
    eye = jnp.eye(frames.shape[-1], dtype=bool)
    lower = jnp.tril(jnp.ones(frames.shape[-2:], dtype=bool), -1)
    chol = _factor(cur["chol"])
    m = jax.scipy.linalg.solve_triangular(frames, chol, lower=True)  # L0^-1 L
    diag_m = jnp.diagonal(m, axis1=-2, axis2=-1)
    if forward:
        g_loc = jnp.einsum("kij,ki->kj", frames, comps["loc"])
        g_l = jnp.where(eye, comps["chol"] / jnp.where(eye, chol, 1.0), comps["chol"])
        g_m = jnp.einsum("kli,klj->kij", frames, jnp.where(eye | lower, g_l, 0.0))
        g_raw = jnp.where(eye, g_m * diag_m[..., None, :], jnp.where(lower, g_m, 0.0))
        return dict(updates, components=dict(comps, loc=g_loc, chol=g_raw))
    d_loc = jnp.einsum("kij,kj->ki", frames, comps["loc"])
    new_m = jnp.where(eye, m * jnp.exp(comps["chol"]), jnp.where(lower, m + comps["chol"], 0.0))
    new_l = frames @ new_m
    new_raw = jnp.where(eye, jnp.log(jnp.where(eye, new_l, 1.0)), jnp.where(lower, new_l, 0.0))
    return dict(updates, components=dict(comps, loc=d_loc, chol=new_raw - cur["chol"]))


def _framed(forward: bool) -> optax.GradientTransformation:
    def init(params):
        return FrameState(_start_frames(params))

    def update(updates, state, params=None):
        if state.frames is None:
            return updates, state
        if params is None:
            raise ValueError("component-adam needs the parameters in update(updates, state, "
                             "params): its steps are taken in each component's frame")
        return _in_frames(updates, state.frames, params, forward), state

    return optax.GradientTransformation(init, update)


def component_adam(learning_rate) -> optax.GradientTransformation:
    """Adam whose steps of a mixture's components are in each component's own units (see the
    module docstring); ``learning_rate`` as for ``optax.adam``."""
    return optax.chain(_framed(True), optax.scale_by_adam(), scale_by_component_units(),
                       optax.scale_by_learning_rate(learning_rate), _framed(False))
