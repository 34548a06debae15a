"""``FitResult.to_arviz``: the fit's draws as ArviZ InferenceData, ready for the Bayesian
workflow (``az.summary``, ``az.plot_*``, ``az.loo``, ``az.compare``).

Groups:

- ``posterior``: ``n`` draws (one chain) of the model's constrained parameters.
- ``sample_stats``: per draw ``lp`` (log p(z) of the unconstrained target, log-Jacobians
  included, unnormalized), ``log_q`` (q's log density at z) and ``log_weight`` (``lp - log_q``,
  the importance log weight); ``attrs["pareto_k"]`` is the fit's Pareto k-hat.
- ``log_likelihood`` and ``observed_data``, for data models: a NumPyro model's observed sites
  (``vifit.from_numpyro``; one variable per site, one value per observation), or a
  ``vifit.DataTarget``'s rows (``log_lik``, one value per row, and the data's arrays).

``attrs["weighting"]`` says how the draws were made. ``"psis-resampled"`` (the default when
k-hat < 0.7): a systematic resample of q's draws by their Pareto-smoothed importance weights,
so the draws are already approximately from p and plain ``az.loo`` (PSIS-LOO over these draws)
is right: no further weighting by ``log_weight`` is wanted (the log weights are those of the
draws as drawn from q, kept for diagnostics). ``"q"``: q's own draws; ``az.loo`` then
estimates the leave-one-out fit of q rather than of p, as good as q is (see k-hat).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from vifit.ahead import ready

if TYPE_CHECKING:
    from vifit.result import FitResult

# Draws per compiled batch of the per-draw evaluations (memory: this many times the rows).
DRAW_CHUNK = 256
# Most (distinct draws x rows) likelihood evaluations to_arviz spends on a data target; above
# it the log_likelihood group is left out (attrs["log_likelihood"] says so).
MAX_LIK_EVALS = 50_000_000


def inference_data(result: FitResult, key: jax.Array | int = 0, n: int = 4000,
                   resample: bool | None = None):
    """See ``FitResult.to_arviz`` and the module docstring."""
    import arviz as az

    groups, dims, attrs, group_attrs = draw_groups(result, key, n, resample)
    idata = _from_dict(az, groups, dims or None, attrs)
    for name, extra in group_attrs.items():
        getattr(idata, name).attrs.update(extra)
    return idata


def draw_groups(result: FitResult, key: jax.Array | int = 0, n: int = 4000,
                resample: bool | None = None):
    """What ``inference_data`` puts in its groups, as plain arrays: ``(groups {group: {var:
    array}}, dims {var: [dim names]}, attrs (the whole record's), group_attrs {group: attrs
    of that group alone})``; arrays of draws have leading axes (chain = 1, draw = n)."""
    z, weighting = result._sample_z(key, n, resample)
    target = result.target
    values = target.in_model_order(target.batch_constrain(z))
    posterior = {k: np.asarray(v)[None, ...] for k, v in values.items()}
    z = np.asarray(z)
    attrs: dict[str, Any] = {"inference_library": "vifit", "family": result.family.name,
                             "weighting": weighting, "pareto_k": float(result.khat)}
    groups: dict[str, Any] = {"posterior": posterior}
    # The evaluations are per distinct draw: a resample repeats draws.
    uniq, inverse = np.unique(z, axis=0, return_inverse=True)
    inverse = np.ravel(inverse)
    lik = None
    try:
        lik = _log_likelihood(result, uniq)
    except Exception as exc:  # the fit's draws are still worth writing; say what is missing
        attrs["log_likelihood"] = f"not computed: {type(exc).__name__}: {exc}"
    if isinstance(lik, str):
        attrs["log_likelihood"], lik = lik, None
    if lik is not None:
        pointwise, observed, dims, lp_data = lik
        groups["log_likelihood"] = {k: v[inverse][None, ...] for k, v in pointwise.items()}
        groups["observed_data"] = observed
    else:
        dims, lp_data = {}, None
    group_attrs: dict[str, dict[str, Any]] = {}
    try:
        stats = _sample_stats(result, uniq, lp_data)
        groups["sample_stats"] = {k: v[inverse][None, ...] for k, v in stats.items()}
        group_attrs["sample_stats"] = {
            "pareto_k": float(result.khat),
            "log_weight": "lp - log_q of each draw as drawn from q" + (
                "; the draws were resampled by these weights already (do not reweight)"
                if weighting == "psis-resampled" else "")}
    except Exception as exc:
        attrs["sample_stats"] = f"not computed: {type(exc).__name__}: {exc}"
    return groups, dims or {}, attrs, group_attrs


# Groups without the chain and draw axes.
_UNDRAWN = ("observed_data", "constant_data")


def write_netcdf(result: FitResult, path, key: jax.Array | int = 0, n: int = 4000) -> None:
    """``result.to_arviz(key, n).to_netcdf(path)``'s file, written with xarray alone: the same
    groups, variables, dims (``var_dim_i`` where a model names none), coordinates and
    attributes, one netCDF group per ArviZ group (h5netcdf), readable by ``az.from_netcdf``
    under ArviZ 0.2x and 1.x. Importing ArviZ took 2-2.6 s of every ``vifit fit --out``
    (its plotting and SciPy's statistics), more than the warm fit's compiling."""
    import datetime
    import importlib.metadata

    import xarray as xr

    groups, dims, attrs, group_attrs = draw_groups(result, key, n)
    try:
        version = importlib.metadata.version("arviz")
    except importlib.metadata.PackageNotFoundError:
        version = "none"
    stamp = {"created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
             "arviz_version": version}
    if not version.startswith("0."):  # ArviZ 1.x's groups carry the record's attrs too
        stamp = {**stamp, **attrs}
    xr.Dataset(attrs=attrs).to_netcdf(str(path), mode="w", engine="h5netcdf")
    for name, data in groups.items():
        drawn = name not in _UNDRAWN
        ds = xr.Dataset({var: _data_array(var, np.asarray(a), dims.get(var), drawn)
                         for var, a in data.items()},
                        attrs={**stamp, **group_attrs.get(name, {})})
        ds.to_netcdf(str(path), mode="a", group=name, engine="h5netcdf")


def _data_array(var: str, a: np.ndarray, names, drawn: bool):
    """``a`` as an xarray DataArray with ArviZ's dims and integer coordinates."""
    import xarray as xr

    lead = ["chain", "draw"] if drawn else []
    extra = a.ndim - len(lead)
    named = list(names or [])[:extra]
    named += [f"{var}_dim_{i}" for i in range(len(named), extra)]
    all_dims = lead + named
    return xr.DataArray(a, dims=all_dims,
                        coords={d: np.arange(a.shape[i]) for i, d in enumerate(all_dims)})


def _arviz_major(az) -> int:
    """ArviZ's major version (0 for the InferenceData releases, 1 for the DataTree ones)."""
    return int(az.__version__.split(".")[0])


def _from_dict(az, groups: dict[str, Any], dims: dict | None, attrs: dict[str, Any]):
    """ArviZ 0.2x's InferenceData or ArviZ 1.x's xarray DataTree of the same groups; either
    has ``.posterior``, ``.sample_stats``, ... and ``.attrs``, which is all vifit uses."""
    if _arviz_major(az) < 1:
        return az.from_dict(**groups, dims=dims, attrs=attrs)
    tree = az.from_dict(groups, dims=dims)
    tree.attrs.update(attrs)
    for name in groups:
        tree[name].attrs.update(attrs)  # as 0.2x does: every group says where it came from
    return tree


def _batched(fn, z: np.ndarray):
    """``jax.vmap(fn)`` over the rows of ``z`` in compiled chunks of ``DRAW_CHUNK`` (the last
    one padded), concatenated as NumPy."""
    return _in_chunks(jax.jit(jax.vmap(fn)), z)


def _in_chunks(run, z: np.ndarray, *lead):
    """The batched program ``run(*lead, rows)`` over the rows of ``z`` in chunks of
    ``DRAW_CHUNK`` (the last one padded), concatenated as NumPy."""
    ready(run)
    outs = []
    for start in range(0, z.shape[0], DRAW_CHUNK):
        chunk = z[start:start + DRAW_CHUNK]
        pad = DRAW_CHUNK - chunk.shape[0] if z.shape[0] > DRAW_CHUNK else 0
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
        out = jax.tree.map(np.asarray, run(*lead, chunk))
        outs.append(jax.tree.map(lambda a: a[:a.shape[0] - pad], out))
    return jax.tree.map(lambda *a: np.concatenate(a), *outs)


def _log_likelihood(result: FitResult, z: np.ndarray):
    """``(pointwise {name: (m, ...)}, observed {name: array}, dims, lp (m,) or None)`` for
    the distinct draws ``z (m, d)``; None for a target without data; a string saying why when
    it would cost too much."""
    from vifit.data.target import DataTarget

    target = result.target
    sites = getattr(target, "observed_sites", None)
    is_data = isinstance(target, DataTarget)
    if sites is None and not is_data:
        return None
    if is_data and z.shape[0] * target.n_rows > MAX_LIK_EVALS:
        return (f"left out: {z.shape[0]} draws x {target.n_rows} rows exceeds "
                f"{MAX_LIK_EVALS} likelihood evaluations")
    if sites is not None:  # a NumPyro model: its observed sites, by name
        # Shapes only (an eager call would compile the model op by op); the observed values
        # come out of the same compiled pass as the log-likelihoods.
        if not jax.eval_shape(sites, jax.ShapeDtypeStruct(z.shape[1:], z.dtype)):
            return None
        both = _batched(sites, z)
        observed = {k: np.asarray(v[0][0]) for k, v in both.items()}
        pointwise = {k: v[1] for k, v in both.items()}
        dims = {k: [f"{k}_dim_{i}" for i in range(observed[k].ndim)] for k in observed
                if pointwise[k].shape[1:] == observed[k].shape}
        return pointwise, observed, dims, None
    # A DataTarget: one log-likelihood per row; the prior plus their sum is log p.
    data = target.device_data()
    lik = _batched(lambda u: target.log_lik(u, data), z)
    prior = _batched(target.log_prior, z)
    observed = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(target.data)[0]:
        name = "".join(c if c.isalnum() or c == "_" else "_"
                       for c in jax.tree_util.keystr(path)).strip("_") or "data"
        arr = np.asarray(leaf)
        observed[name] = arr
    dims = {"log_lik": ["row"]}
    for name, arr in observed.items():
        dims[name] = ["row"] + [f"{name}_dim_{i}" for i in range(1, arr.ndim)]
    lp = prior + lik.sum(axis=1)
    return {"log_lik": lik}, observed, dims, lp


def _sample_stats(result: FitResult, z: np.ndarray, lp: np.ndarray | None
                  ) -> dict[str, np.ndarray]:
    """``lp``, ``log_q`` and ``log_weight`` of the distinct draws ``z (m, d)``."""
    from vifit.data.target import DataTarget
    from vifit.result import batch_log_p, family_program

    family, params, target = result.family, result.params, result.target
    # The programs of vifit.result.output_programs: compiled ahead during a command's fit.
    log_q = _in_chunks(family_program(family, "batch_log_prob"), z, params).astype(np.float64)
    if lp is None and isinstance(target, DataTarget) and result.eval_draws is not None:
        # A data fit's resampled draws come from its final evaluation, whose log weights are
        # known: lp = log w + log q, without another pass over the rows per draw.
        pool_z, pool_logw = (np.asarray(a) for a in result.eval_draws)
        index = {row.tobytes(): w for row, w in zip(pool_z.astype(z.dtype), pool_logw)}
        known = [index.get(row.tobytes()) for row in z]
        if all(k is not None for k in known):
            lp = np.asarray(known, dtype=np.float64) + log_q
    if lp is None:
        if isinstance(target, DataTarget) and z.shape[0] * target.n_rows > MAX_LIK_EVALS:
            lp = np.full(z.shape[0], np.nan)
        else:
            lp = _in_chunks(batch_log_p(target), z)
    lp = np.asarray(lp, dtype=np.float64)
    return {"lp": lp, "log_q": log_q, "log_weight": lp - log_q}
