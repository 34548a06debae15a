"""``from_pymc``: a Target from a PyMC model, through PyMC's own JAX log density.

PyMC already works in an unconstrained space: each free random variable has a *value
variable* on the real line (``tau_log__`` for a positive ``tau``) and ``model.logp()`` includes
the log-Jacobians of those transforms. ``pymc.sampling.jax.get_jaxified_graph`` turns that
PyTensor graph into a JAX function (the one PyMC's own NumPyro/BlackJAX samplers use); vifit
flattens the value variables into one vector z in ``model.value_vars`` order.

Needs the optional extra: ``pip install "vifit[pymc]"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import os
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from vifit.adapters.base import ModelTarget, flat_names
from vifit.errors import ConfigError, TargetError

Array = jax.Array

INSTALL_HINT = 'PyMC is not installed; install the extra with: pip install "vifit[pymc]"'


def _import_pymc():
    # PyTensor's JAX backend switches JAX to float64 for the whole process when it is first
    # imported (floatX=float64 is PyTensor's default). vifit keeps the precision the user chose
    # (float32 unless they enabled x64), so the flag is put back as it was.
    # pymc.sampling.jax also sets XLA_FLAGS to 100 host devices on import: every process
    # started afterwards (a distributed fit's peers, a test's subprocess) would see 100 CPU
    # devices. The variable is put back too.
    first = "pytensor.link.jax.dispatch.basic" not in sys.modules
    x64 = _global_x64()
    flags = os.environ.get("XLA_FLAGS")
    try:
        import pymc
        from pymc.sampling.jax import get_jaxified_graph
    except ImportError as exc:
        raise ConfigError(f"{INSTALL_HINT} ({exc}).") from exc
    finally:
        if first:
            jax.config.update("jax_enable_x64", x64)
        if flags is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = flags
    return pymc, get_jaxified_graph


def _global_x64() -> bool:
    """The process-wide x64 flag (not a ``jax.enable_x64`` context's value)."""
    try:
        from jax._src import config as jax_config

        return bool(jax_config.enable_x64.get_global())
    except (ImportError, AttributeError):  # a future JAX without this private state
        return bool(jax.config.jax_enable_x64)


def _quiet(fn):
    """PyTensor graphs cast to float64; under float32 JAX truncates and warns at every trace."""

    def wrapped(*args):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Explicitly requested dtype float64")
            return fn(*args)

    return wrapped


def _forward_graph(model, placeholders: dict):
    """PyTensor outputs: each free RV's value variable as a function of the constrained values
    of all free RVs (a transform's parameters may depend on other RVs, e.g. Uniform(0, s))."""
    from pytensor.graph.replace import clone_replace

    outs = []
    for rv in model.free_RVs:
        transform = model.rvs_to_transforms[rv]
        x = placeholders[rv]
        outs.append(x if transform is None else transform.forward(x, *rv.owner.inputs))
    return clone_replace(outs, replace=placeholders)


def from_pymc(model: Any, *, target_name: str | None = None) -> ModelTarget:
    """A Target whose z is the model's value variables (PyMC's unconstrained space).

    ``log_density(z)`` is ``model.logp()`` (Jacobians included), compiled to JAX by PyMC.
    Names come from the free random variables (``mu``, ``theta[0]``, ...), ``constrain(z)``
    returns the constrained free variables and the ``pm.Deterministic`` values, and
    ``unconstrain(values) -> z`` maps a dict of constrained free-variable values back.
    The start is PyMC's own ``model.initial_point()``.
    """
    pm, get_jaxified_graph = _import_pymc()
    if not isinstance(model, pm.Model):
        raise TargetError(f"from_pymc needs a pymc.Model, got {type(model).__name__}.")
    if model.discrete_value_vars:
        names = [v.name for v in model.discrete_value_vars]
        raise TargetError(
            f"the PyMC model has discrete free variables {names}; vifit fits continuous latent "
            "variables only (until discrete support lands). Marginalize them (e.g. "
            "pm.Mixture) or observe them."
        )
    if not model.free_RVs:
        raise TargetError("the PyMC model has no free random variables: nothing to infer.")
    value_vars = [model.rvs_to_values[rv] for rv in model.free_RVs]
    logp_graph = _quiet(get_jaxified_graph(inputs=value_vars, outputs=[model.logp()]))
    outputs = model.replace_rvs_by_values(list(model.free_RVs) + list(model.deterministics))
    constrain_graph = _quiet(get_jaxified_graph(inputs=value_vars, outputs=outputs))
    out_names = [rv.name for rv in model.free_RVs] + [d.name for d in model.deterministics]
    placeholders = {rv: rv.type() for rv in model.free_RVs}
    forward_graph = _quiet(get_jaxified_graph(inputs=list(placeholders.values()),
                                              outputs=_forward_graph(model, placeholders)))

    point = model.initial_point()
    init_values = [np.asarray(point[v.name]) for v in value_vars]
    shapes = {rv.name: x.shape for rv, x in zip(model.free_RVs, init_values)}
    sizes = [int(np.prod(s, dtype=int)) for s in shapes.values()]
    splits = np.cumsum(sizes)[:-1].tolist()
    init = np.concatenate([x.ravel() for x in init_values])

    def unflatten(z: Array) -> list[Array]:
        return [part.reshape(shape) for part, shape in
                zip(jnp.split(z, splits), shapes.values())]

    # Jitted, so that Target's checks and eager calls compile one program each.
    @jax.jit
    def log_density(z: Array) -> Array:
        return logp_graph(*unflatten(z))[0]

    @jax.jit
    def constrain(z: Array) -> dict[str, Array]:
        return dict(zip(out_names, constrain_graph(*unflatten(z))))

    def unconstrain(values: Mapping[str, Any]) -> Array:
        missing = [rv.name for rv in model.free_RVs if rv.name not in values]
        if missing:
            raise TargetError(
                f"unconstrain needs a value for every free variable; missing {missing}.")
        args = [jnp.asarray(values[rv.name]) for rv in model.free_RVs]
        return jnp.concatenate([jnp.ravel(v) for v in forward_graph(*args)])

    target = ModelTarget(log_density, init=init, param_names=flat_names(shapes),
                         constrain=constrain, unconstrain=unconstrain, source="pymc",
                         site_shapes=shapes, name=target_name or model.name or "pymc_model")
    target.observed_sites = _observed_sites(model, value_vars, unflatten, get_jaxified_graph)
    return target


def _observed_sites(model, value_vars, unflatten, get_jaxified_graph):
    """A jitted ``z (dim,) -> {observed variable: (value, pointwise log-likelihood)}`` (one
    log-likelihood per observation, PyMC's elementwise ``model.logp(vars=[obs], sum=False)``)
    for ``FitResult.to_arviz``'s ``log_likelihood`` and ``observed_data``; None when the model
    observes nothing."""
    observed = list(model.observed_RVs)
    if not observed:
        return None
    names = [rv.name for rv in observed]
    values = [np.asarray(model.rvs_to_values[rv].eval()) for rv in observed]
    pointwise = _quiet(get_jaxified_graph(inputs=value_vars,
                                          outputs=model.logp(vars=observed, sum=False)))

    @jax.jit
    def sites(z: Array) -> dict[str, tuple[Array, Array]]:
        logs = pointwise(*unflatten(z))
        return {name: (jnp.asarray(value), jnp.asarray(log).astype(z.dtype))
                for name, value, log in zip(names, values, logs)}

    return sites
