"""NumPyro models that subsample a plate, as DataTargets over the plate's rows.

``numpyro.plate("data", N, subsample_size=B)`` draws B of the N row numbers each time the
model runs, and NumPyro scales the log-probabilities of the sites inside it by N / B. vifit
draws the rows itself (``vifit.data.batches``) and applies N / B itself, so the model becomes
a ``DataTarget`` whose data are the row numbers, ``{"index": arange(N)}``:

- ``log_lik(z, batch)``: the model run with the plate's rows set to ``batch["index"]``; per
  row, the sum of the log-probabilities of the observed sites inside the plate, without the
  plate's N / B (a scale of the model's own, ``handlers.scale``, is kept), ``(B,)``.
- ``log_prior(z)``: ``-potential_energy`` of the model with the sites inside the plate hidden
  (``handlers.block``): the latent sites' priors with their log-Jacobians, and any observed
  site outside the plate.

z, its names and ``constrain`` / ``unconstrain`` are those of the model with the plate's rows
set to all N (the same model without subsampling), built by ``vifit.adapters.numpyro``, so the
full-data ``log_density(z)`` is that model's ``-potential_energy``. Latent sites inside the
plate (one per row) and several subsampled plates are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.primitives import Messenger

from vifit.adapters.base import flat_names
from vifit.adapters.numpyro import latent_space, observed_sites, value_maps
from vifit.data.target import DataTarget
from vifit.errors import TargetError, describe

Array = jax.Array


class Plate(NamedTuple):
    """A plate that the model subsamples."""
    name: str
    size: int  # N, the rows of the data
    subsample_size: int  # B, the model's own batch size (vifit's batch_size replaces it)


class ModelDataTarget(DataTarget):
    """The DataTarget of a NumPyro model that subsamples a plate.

    Besides the DataTarget attributes it has those of ``ModelTarget``: ``source``
    (``"numpyro"``), ``site_shapes`` (each latent site's unconstrained shape) and
    ``unconstrain(values) -> z (dim,)``; and ``plate``, the subsampled ``Plate``.
    """

    def __init__(self, log_prior: Callable, log_lik: Callable, data: Any, *, plate: Plate,
                 unconstrain: Callable[[Mapping[str, Any]], Array],
                 site_shapes: dict[str, tuple[int, ...]], **kwargs: Any):
        self.plate = plate
        self.unconstrain = unconstrain
        self.source = "numpyro"
        self.site_shapes = dict(site_shapes)
        super().__init__(log_prior, log_lik, data, **kwargs)


class _Rows(Messenger):
    """Runs the plate ``plate.name`` on the rows ``index`` ((B,) int), or on all N when None.

    A NumPyro plate takes its row numbers from its message's value when a handler sets one
    (as ``handlers.substitute`` would); the subsample size is set with it, or the plate warns
    that the two disagree whenever B differs from the model's own.
    """

    def __init__(self, fn: Callable, plate: Plate, index: Array | None = None):
        self.plate = plate
        self.index = index
        super().__init__(fn)

    def process_message(self, msg: dict) -> None:
        if msg["type"] == "plate" and msg["name"] == self.plate.name:
            # All rows as an iota made while tracing, not an (N,) constant baked in.
            index = jnp.arange(self.plate.size) if self.index is None else self.index
            msg["value"] = index
            msg["args"] = (self.plate.size, int(index.shape[0]))


def _in_plate(msg: dict, name: str) -> bool:
    return any(frame.name == name for frame in msg.get("cond_indep_stack", ()))


def subsampled_plate(model: Callable, args: tuple, kwargs: dict) -> Plate | None:
    """The plate the model subsamples, None if none, from one abstract run of the model
    (``jax.eval_shape``: traced, not compiled). Refuses several, and latent sites inside it.

    None too when the model fails to run: the ordinary adapter runs it again and says what
    failed in its own words.
    """
    from numpyro import handlers

    plates: dict[str, Plate] = {}
    latent: dict[str, set[str]] = {}  # latent site -> the plates it sits in

    def run(key):
        trace = handlers.trace(handlers.seed(model, rng_seed=key)).get_trace(*args, **kwargs)
        for name, site in trace.items():
            if site["type"] == "plate":
                size, batch = site["args"]
                if batch is not None and batch != size:
                    plates[name] = Plate(name, int(size), int(batch))
            elif site["type"] == "sample" and not site["is_observed"]:
                latent[name] = {frame.name for frame in site["cond_indep_stack"]}

    try:
        jax.eval_shape(run, jax.random.PRNGKey(0))
    except Exception:
        return None
    if not plates:
        return None
    if len(plates) > 1:
        raise TargetError(
            f"the NumPyro model subsamples {len(plates)} plates {sorted(plates)}; vifit "
            "subsamples the rows of one data set. Keep subsample_size= on the plate over the "
            "data's rows and remove it from the others (their sites then count in full at "
            "every step).")
    plate = next(iter(plates.values()))
    local = [name for name, frames in latent.items() if plate.name in frames]
    if local:
        raise TargetError(
            f"the NumPyro model has latent sites inside the subsampled plate {plate.name!r}: "
            f"{local}. Such local latents, one per row, cannot be fitted on minibatches: "
            "vifit's minibatch fit needs every latent variable to be shared by all rows, and "
            "a row's own latent would be seen only when its row is drawn. Remove "
            "subsample_size= to fit the whole model as one Target (the local latents become "
            "coordinates of z), or integrate them out of the likelihood. (An observed site "
            "given obs=None is latent too.)")
    return plate


def _site_per_row(site: dict, plate: Plate, rows: int) -> Array:
    """One observed site's log-probability per row of the plate, ``(rows,)``: summed over its
    other batch axes, times the model's own scale but not the plate's N / rows."""
    fn, value = site["fn"], site["value"]
    log_prob = (fn.log_prob(value, site["intermediates"]) if site["intermediates"]
                else fn.log_prob(value))
    # The plate multiplied the site's scale by size / subsample_size (computed so, in Python
    # floats): dividing that out again is exact when the model has no scale of its own.
    plate_scale = plate.size / rows if rows != plate.size else 1.0
    if site["scale"] is not None:
        own = site["scale"] / plate_scale
        if not (isinstance(own, (int, float)) and own == 1):
            log_prob = own * log_prob
    dim = next(frame.dim for frame in site["cond_indep_stack"] if frame.name == plate.name)
    shape = jnp.shape(log_prob)
    if len(shape) < -dim or shape[dim] != rows:
        raise TargetError(
            f"the log-probability of site {site['name']!r} has shape {shape}, with no axis "
            f"{dim} of the {rows} rows of plate {plate.name!r}; give the site the plate's "
            "batch shape (index its data by the plate's rows).")
    return jnp.sum(jnp.reshape(jnp.moveaxis(log_prob, dim, 0), (rows, -1)), axis=1)


def row_log_liks(model: Callable, args: tuple, kwargs: dict, plate: Plate,
                 params: dict[str, Array], index: Array) -> Array:
    """``(B,)``: for each row of ``index`` ((B,) int), the sum over the observed sites inside
    the plate of its log-probability, at the unconstrained latent values ``params``."""
    from numpyro import handlers
    from numpyro.distributions.transforms import biject_to

    def constrained(site):  # the map NumPyro's constrain_fn applies to each latent site
        if site["type"] == "sample" and site["name"] in params:
            return biject_to(site["fn"].support)(params[site["name"]])
        return None

    run = handlers.substitute(_Rows(model, plate, index), substitute_fn=constrained)
    trace = handlers.trace(run).get_trace(*args, **kwargs)
    rows = int(index.shape[0])
    total = jnp.zeros(rows)
    for site in trace.values():
        if site["type"] == "sample" and site["is_observed"] and _in_plate(site, plate.name):
            total = total + _site_per_row(site, plate, rows)
    return total


def data_target(model: Callable, args: tuple, kwargs: dict, plate: Plate, *,
                strategy: Callable, seed: int, name: str) -> ModelDataTarget:
    """The DataTarget of a model that subsamples ``plate``, over its N rows (see the module
    docstring), checked by DataTarget's own checks."""
    from numpyro import handlers
    from numpyro.infer.util import potential_energy

    _check_rows(model, args, kwargs, plate)
    full = _Rows(model, plate)  # the model without subsampling: z, names, start, maps
    latents = latent_space(full, args, kwargs, strategy, seed)
    constrain, unconstrain = value_maps(full, args, kwargs, latents)
    unravel = latents.unravel

    def inside(msg):
        return msg["type"] == "sample" and _in_plate(msg, plate.name)

    # Jitted: run op by op, a model compiles every operation separately.
    @jax.jit
    def log_prior(z: Array) -> Array:
        # One row, as the plate must run on some; its sites are hidden from the density.
        one_row = _Rows(model, plate, jnp.zeros(1, dtype=jnp.int32))
        return -potential_energy(handlers.block(one_row, hide_fn=inside), args, kwargs,
                                 unravel(z))

    @jax.jit
    def log_lik(z: Array, batch: dict[str, Array]) -> Array:
        return row_log_liks(model, args, kwargs, plate, unravel(z), batch["index"])

    index_dtype = np.int32 if plate.size < 2**31 else np.int64
    try:
        target = ModelDataTarget(
            log_prior, log_lik, {"index": np.arange(plate.size, dtype=index_dtype)},
            plate=plate, unconstrain=unconstrain, site_shapes=latents.shapes,
            init=latents.init, param_names=flat_names(latents.shapes), constrain=constrain,
            name=name)
    except TargetError as exc:
        raise TargetError(
            f"the NumPyro model, as a data target over the {plate.size} rows of plate "
            f"{plate.name!r}: {exc} (from_numpyro picks the start with init_strategy=...)"
        ) from exc
    # Per-observation log-likelihoods (all N rows) for FitResult.to_arviz.
    target.observed_sites = observed_sites(full, args, kwargs, unravel)
    return target


def _check_rows(model: Callable, args: tuple, kwargs: dict, plate: Plate) -> None:
    """The model runs with its plate on 2 rows and on all N, not only on its own B
    (abstractly: traced, not compiled)."""
    from numpyro import handlers

    for rows in (2, plate.size):
        index = jax.ShapeDtypeStruct((rows,), jnp.int32)

        def run(key, index):
            handlers.trace(handlers.seed(_Rows(model, plate, index), rng_seed=key)).get_trace(
                *args, **kwargs)

        try:
            jax.eval_shape(run, jax.random.PRNGKey(0), index)
        except Exception as exc:
            raise TargetError(
                f"the NumPyro model fails when its plate {plate.name!r} runs on {rows} of "
                f"its {plate.size} rows rather than on {plate.subsample_size}, with "
                f"{describe(exc)}. vifit picks the rows: index the data inside the plate by "
                f"its rows (with numpyro.plate({plate.name!r}, N, subsample_size=B) as ind: "
                "... obs=y[ind], or numpyro.subsample(y, event_dim=0)), and let nothing else "
                "depend on B.") from exc
