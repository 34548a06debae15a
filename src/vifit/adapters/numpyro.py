"""``from_numpyro``: a Target from a NumPyro model, through NumPyro's own machinery.

The unconstrained space is NumPyro's: each latent site's value is mapped to the real line by
``biject_to(site.support)``. ``numpyro.infer.util.potential_energy`` is the log density
(negated; the log joint in unconstrained coordinates, log-Jacobians included) and
``constrain_fn`` the map back to constrained values and deterministic sites, exactly as NumPyro's
own samplers use them. vifit only flattens the sites into one vector z with
``jax.flatten_util.ravel_pytree`` (sites in sorted name order, each site row-major).

A model that subsamples a plate becomes a DataTarget over the plate's rows instead
(``vifit.adapters.numpyro_data``), on the same z.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from vifit.adapters.base import ModelTarget, flat_names
from vifit.errors import TargetError, describe

if TYPE_CHECKING:
    from vifit.data.target import DataTarget

Array = jax.Array


def _initial_point(model: Callable, args: tuple, kwargs: dict, seed: int,
                   strategy: Callable) -> dict[str, Array]:
    """The init strategy's values of the latent sites, mapped to the unconstrained space by
    ``biject_to(support).inv``, from one compiled trace of the model; refuse what vifit
    cannot fit yet.

    At the init strategy's values, not raw prior draws: a heavy-tailed prior draw can put a
    valid model outside its own support (a Cauchy location making a scale overflow). Compiled,
    because running a model op by op compiles every operation separately (minutes on a busy
    machine for a model with an LKJ or Dirichlet prior).
    """
    from numpyro import handlers
    from numpyro.distributions.transforms import biject_to

    sites: dict[str, tuple[str, bool, bool]] = {}

    def values(key):
        start = handlers.substitute(handlers.seed(model, rng_seed=key), substitute_fn=strategy)
        trace = handlers.trace(start).get_trace(*args, **kwargs)
        for name, site in trace.items():
            discrete = site["type"] == "sample" and site["fn"].support.is_discrete
            sites[name] = (site["type"], bool(site.get("is_observed", False)), discrete)
        return {name: biject_to(site["fn"].support).inv(site["value"])
                for name, site in trace.items()
                if site["type"] == "sample" and not site["is_observed"]
                and not site["fn"].support.is_discrete}

    try:
        init = jax.jit(values)(jax.random.PRNGKey(seed))
    except Exception as exc:
        raise TargetError(
            f"running the NumPyro model with the given data failed with {describe(exc)}. "
            "Pass the model's arguments as from_numpyro(model, *args, **kwargs); the model "
            "must be traceable by JAX (no Python branching on sampled values)."
        ) from exc
    discrete, params = [], []
    for name, (kind, observed, is_discrete) in sites.items():
        if kind == "param":
            params.append(name)
        elif kind == "sample" and not observed and is_discrete:
            discrete.append(name)
    if discrete:
        raise TargetError(
            f"the NumPyro model has discrete latent sites {discrete}; vifit fits continuous "
            "latent variables only (until discrete support lands). Marginalize them out by "
            "hand (e.g. a mixture with dist.MixtureSameFamily) or observe them."
        )
    if params:
        raise TargetError(
            f"the NumPyro model has numpyro.param sites {params}; vifit treats every unknown as "
            "a latent variable. Give each one a prior with numpyro.sample, or fix its value."
        )
    if not init:
        raise TargetError("the NumPyro model has no latent sample sites: nothing to infer.")
    return init


def _check_start(log_density: Callable, z0: Array, shapes: dict) -> None:
    try:
        value, grad = jax.jit(jax.value_and_grad(log_density))(z0)
    except Exception as exc:
        raise TargetError(
            f"the NumPyro model's log density, or its gradient, failed at the initial point with "
            f"{describe(exc)}. vifit differentiates it: check the data passed in args/kwargs "
            "(arrays of numbers) and that everything in the model is a differentiable JAX "
            "operation (a jax.pure_callback needs a jax.custom_jvp)."
        ) from exc
    names = flat_names(shapes)
    if not bool(jnp.isfinite(value)):
        raise TargetError(
            f"the NumPyro model's log density is {float(value)} at the initial point; start "
            "elsewhere with init_strategy= (e.g. numpyro.infer.init_to_value(values={...})) "
            "or check the model's data and priors."
        )
    bad = [names[i] for i in np.flatnonzero(~np.isfinite(np.asarray(grad)))[:5]]
    if bad:
        raise TargetError(
            f"the gradient of the NumPyro model's log density is not finite at the initial "
            f"point (in {bad}); start elsewhere with init_strategy=..."
        )


class Latents(NamedTuple):
    """The model's latent sites in NumPyro's unconstrained space, flattened into z."""
    init: Array  # (dim,) z at the init strategy's values
    unravel: Callable[[Array], dict[str, Array]]  # z (dim,) -> {site: unconstrained value}
    shapes: dict[str, tuple[int, ...]]  # each site's unconstrained shape, in z's order
    sites: list[str]  # the latent sites, in the model's order


def latent_space(model: Callable, args: tuple, kwargs: dict, strategy: Callable,
                 seed: int) -> Latents:
    """The flattening of the model's latent sites into z, and the start, from one compiled
    trace of the model (the discrete and ``numpyro.param`` sites are refused there)."""
    z0_sites = _initial_point(model, args, kwargs, seed, strategy)
    z0, unravel = ravel_pytree(z0_sites)
    # ravel_pytree's order is the pytree order of the dict (sorted keys); read it, don't assume.
    paths, _ = jax.tree_util.tree_flatten_with_path(z0_sites)
    shapes = {path[0].key: tuple(jnp.shape(leaf)) for path, leaf in paths}
    return Latents(z0, unravel, shapes, list(z0_sites))


def value_maps(model: Callable, args: tuple, kwargs: dict, latents: Latents) -> tuple[
        Callable[[Array], dict[str, Array]], Callable[[Mapping[str, Any]], Array]]:
    """``constrain: z (dim,) -> {site: constrained value}`` (deterministic sites included,
    jitted) and its inverse ``unconstrain: {site: constrained value} -> z (dim,)``, by
    NumPyro's ``constrain_fn`` and ``unconstrain_fn``."""
    from numpyro.infer.util import constrain_fn, unconstrain_fn

    unravel = latents.unravel

    @jax.jit
    def constrain(z: Array) -> dict[str, Array]:
        return constrain_fn(model, args, kwargs, unravel(z), return_deterministic=True)

    def unconstrain(values: Mapping[str, Any]) -> Array:
        missing = [k for k in latents.sites if k not in values]
        if missing:
            raise TargetError(
                f"unconstrain needs a value for every latent site; missing {missing}.")
        sites = {k: jnp.asarray(values[k]) for k in latents.sites}
        flat, _ = ravel_pytree(unconstrain_fn(model, args, kwargs, sites))
        return flat

    return constrain, unconstrain


def observed_sites(model: Callable, args: tuple, kwargs: dict,
                   unravel: Callable[[Array], dict[str, Array]]
                   ) -> Callable[[Array], dict[str, tuple[Array, Array]]]:
    """A jitted ``z (dim,) -> {observed site: (value, pointwise log-probability)}``: each
    observed site's data and ``fn.log_prob(value)`` (its batch shape: one value per
    observation, event dimensions summed; the model's own ``handlers.scale`` not applied), at
    the latent values of z. What ``FitResult.to_arviz`` puts in its ``observed_data`` and
    ``log_likelihood`` groups."""
    from numpyro import handlers
    from numpyro.distributions.transforms import biject_to

    @jax.jit
    def sites(z: Array) -> dict[str, tuple[Array, Array]]:
        params = unravel(z)

        def constrained(site):  # the map NumPyro's constrain_fn applies to each latent site
            if site["type"] == "sample" and site["name"] in params:
                return biject_to(site["fn"].support)(params[site["name"]])
            return None

        run = handlers.substitute(handlers.seed(model, rng_seed=0), substitute_fn=constrained)
        trace = handlers.trace(run).get_trace(*args, **kwargs)
        out = {}
        for name, site in trace.items():
            if site["type"] == "sample" and site.get("is_observed", False):
                fn, value = site["fn"], site["value"]
                log_prob = (fn.log_prob(value, site["intermediates"]) if site["intermediates"]
                            else fn.log_prob(value))
                out[name] = (jnp.asarray(value), jnp.asarray(log_prob))
        return out

    return sites


def from_numpyro(model: Callable, *args: Any, init_strategy: Callable | None = None,
                 rng_seed: int = 0, target_name: str | None = None,
                 **kwargs: Any) -> ModelTarget | DataTarget:
    """A Target whose z is the model's latent sites in NumPyro's unconstrained space.

    ``from_numpyro(model, *args, **kwargs)`` calls ``model(*args, **kwargs)``; observed data go
    in through these arguments. Three keyword names are the adapter's own (so a model cannot
    take them): ``init_strategy`` (a NumPyro init strategy, default ``init_to_median``),
    ``rng_seed`` (the seed of the init strategy's prior draws, default 0) and ``target_name``.

    The Target has ``log_density(z) = -potential_energy`` (log-Jacobians included), names
    ``mu``, ``theta[0]``, ... from the sites (in the unconstrained shapes), ``constrain(z)``
    returning the dict of constrained latent sites and ``numpyro.deterministic`` values, and
    ``unconstrain(values) -> z`` for a dict of constrained latent site values.

    A model with a ``numpyro.plate(name, N, subsample_size=B)`` comes back as a
    ``vifit.DataTarget`` over its N rows instead (same z, names and maps, and the same
    full-data density), which ``vifit.fit(target, batch_size=B)`` fits by subsampling; see
    ``vifit.adapters.numpyro_data``.
    """
    from numpyro.infer.initialization import init_to_median
    from numpyro.infer.util import potential_energy

    from vifit.adapters.numpyro_data import data_target, subsampled_plate

    if not callable(model):
        raise TargetError(f"from_numpyro needs a model function, got {type(model).__name__}.")
    strategy = init_to_median() if init_strategy is None else init_strategy
    name = target_name or getattr(model, "__name__", "numpyro_model")
    plate = subsampled_plate(model, args, kwargs)
    if plate is not None:
        return data_target(model, args, kwargs, plate, strategy=strategy, seed=rng_seed,
                           name=name)
    latents = latent_space(model, args, kwargs, strategy, rng_seed)
    unravel = latents.unravel

    # NumPyro's public functions, jitted so that each compiles as one program (run op by op,
    # a model compiles every operation separately).
    @jax.jit
    def log_density(z: Array) -> Array:
        return -potential_energy(model, args, kwargs, unravel(z))

    constrain, unconstrain = value_maps(model, args, kwargs, latents)
    _check_start(log_density, latents.init, latents.shapes)
    # Checked above with one compiled value-and-gradient; NumPyro models vmap by construction,
    # so Target's own checks would only add three more compilations of the model.
    target = ModelTarget(log_density, init=latents.init,
                         param_names=flat_names(latents.shapes), constrain=constrain,
                         unconstrain=unconstrain, source="numpyro",
                         site_shapes=latents.shapes, name=name, check=False)
    # Per-observation log-likelihoods for FitResult.to_arviz (compiled only when asked for).
    target.observed_sites = observed_sites(model, args, kwargs, unravel)
    return target
