"""Normalizing-flow families on flowjax (Equinox): a full-rank Gaussian pushed through coupling
layers.

    eps ~ N(0, I_d),   u = T(eps)  (``layers`` coupling layers with permutations, flowjax),
    z = loc + L u      (L lower triangular with positive diagonal, as in ``FullRank``),
    log q(z) = log N(T^-1(u); 0, I) + log|det dT^-1/du| - sum(log diag L).

The couplings start as the identity (each conditioner's last layer is zero), so a new flow is
exactly the Gaussian N(loc, L L^T): ``from_gaussian`` starts a flow from Pathfinder's or a
full-rank fit's Gaussian, and the couplings then only model what is not Gaussian, in whitened
coordinates where their fixed spline interval and unit-scale networks make sense.

Tails. A flow with a Gaussian base and Lipschitz couplings has Gaussian-like tails (Jaini et al.,
2020, "Tails of Lipschitz triangular flows"), lighter than a banana's or a funnel's: the bulk fits
(high ELBO) while the importance weights p/q still blow up in the tails (high k-hat).
``tail_df=nu`` uses independent Student-t(nu) base coordinates instead (as in tail-adaptive
flows), so that q's tails are heavier than p's and the weights stay bounded.

Two transformers: ``RealNVP`` (affine coupling; Dinh, Sohl-Dickstein & Bengio, 2017) and
``SplineFlow`` (rational-quadratic spline coupling, identity outside [-interval, interval];
Durkan et al., 2019). Both are cheap in both directions, which ``stl`` needs (it samples,
then evaluates log q at the draws).

Parameters are a dict ``{"loc": (d,), "chol": (d, d), "flow": <flowjax Scan module holding
only its trainable arrays>}``; the rest of the module (activations, permutations, shapes) is a
static skeleton rebuilt from ``(family, dim)`` and cached, then put back with ``eqx.combine``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import paramax
from flowjax.bijections import AbstractBijection, Affine, Coupling, RationalQuadraticSpline
from flowjax.distributions import StandardNormal
from flowjax.flows import coupling_flow
from flowjax.utils import get_ravelled_pytree_constructor

from vifit.arrays import on_device
from vifit.errors import ConfigError
from vifit.families.base import Array, Family, Params
from vifit.families.gaussian import FullRank, _cholesky
from vifit.rng import numpy_rng

_LOG_2PI = math.log(2.0 * math.pi)
# The structure (permutations included) always comes from this key, so that parameters made
# with any other key fit the cached skeleton.
_STRUCTURE_SEED = 0


def _is_frozen(x) -> bool:
    return isinstance(x, paramax.NonTrainable)


class _CouplingFlow(Family):
    """Shared machinery; subclasses say which scalar bijection the couplings parameterize."""

    layers: eqx.AbstractVar[int]
    width: eqx.AbstractVar[int]
    depth: eqx.AbstractVar[int]
    init_scale: eqx.AbstractVar[float]
    tail_df: eqx.AbstractVar[float | None]
    # Pathwise, not sticking-the-landing: STL differentiates log q through the numerical inverse
    # of the flow at q's own draws; with splines near their minimum slope that gradient blew up
    # (the banana fit diverged from step ~150 with stl, converged with reparam; docs/families.md).
    default_estimator: ClassVar[str | None] = "reparam"
    # A flow's ELBO keeps creeping up long after three stale windows: on the banana and the
    # 2-d funnel (seeds 0-2) patience 20 took KL(q||p) from 0.03-0.20 nats to 0.005-0.05 for a
    # few seconds more (docs/families.md, "Stopping").
    default_patience: ClassVar[int] = 20

    def _transformer(self) -> AbstractBijection:
        raise NotImplementedError

    def _build(self, key: Array, dim: int) -> AbstractBijection:
        if dim < 2:
            raise ConfigError(f"a coupling flow ({self.name}) transforms some coordinates "
                              "conditioned on the others, so it needs d >= 2; for d = 1 use "
                              "'fullrank', 'mixture' or 'auto'.")
        flow = coupling_flow(key, base_dist=StandardNormal((dim,)), transformer=self._transformer(),
                             flow_layers=self.layers, nn_width=self.width, nn_depth=self.depth,
                             nn_activation=jax.nn.relu, invert=False).bijection
        # Zero the conditioners' last layers: every coupling starts as the identity.
        mlps = lambda t: [m for m in jax.tree.leaves(t, is_leaf=_is_mlp) if _is_mlp(m)]
        last = lambda t: [x for m in mlps(t) for x in (m.layers[-1].weight, m.layers[-1].bias)]
        return eqx.tree_at(last, flow, replace_fn=jnp.zeros_like)

    def _built(self, dim: int):
        """The whole flow for ``(family, dim)`` from the structure key, built once outside any
        trace and cached (None inside a trace that finds none). Inside a jit trace every array
        made is a tracer of that trace, and the flow's checks (equinox's error_if) become host
        callbacks, which keep the compiled program out of the persistent cache."""
        key = (self, dim, bool(jax.config.read("jax_enable_x64")))
        if key in _BUILT:  # least recently used first, as vifit.optim.loop.reused
            _BUILT[key] = _BUILT.pop(key)
        else:
            if isinstance(jnp.zeros(()), jax.core.Tracer):
                return None
            if len(_BUILT) >= 64:
                _BUILT.pop(next(iter(_BUILT)))
            flow = _skeleton(self, dim)
            _BUILT[key] = (flow, _partition_static(flow))
        return _BUILT[key]

    def _static(self, dim: int):
        built = self._built(dim)
        if built is None:  # a trace before any init: a skeleton for this trace only
            return _partition_static(self._build(jax.random.key(_STRUCTURE_SEED), dim))
        return built[1]

    def _bijection(self, params: Params) -> AbstractBijection:
        return paramax.unwrap(eqx.combine(params["flow"], self._static(self.dim(params))))

    def init(self, key: Array, dim: int, loc: Array | None = None) -> Params:
        # The cached flow with its hidden layers drawn afresh from ``key`` (equinox's own
        # initialization, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), in NumPy: building the flow
        # eagerly again compiled some twenty small programs, a second of a first run).
        built = self._built(dim)
        if built is None or isinstance(key, jax.core.Tracer):  # traced (e.g. eval_shape)
            flow = self._build(key, dim)
        else:
            flow = _redraw_hidden(built[0], key)
        flow, _ = eqx.partition(flow, eqx.is_inexact_array, is_leaf=_is_frozen)
        # the Gaussian part is FullRank's start: loc, and L = init_scale * I
        return {**FullRank(init_scale=self.init_scale).init(key, dim, loc), "flow": flow}

    def from_gaussian(self, mean: Array, cov: Array) -> Params:
        """The flow at identity around N(mean, cov): its loc and chol are the full-rank
        Gaussian's (``FullRank.from_gaussian``, which factors a host covariance in float64; a
        float32 factor of one with sds from 0.01 to 100 came out NaN)."""
        params = self.init(jax.random.key(_STRUCTURE_SEED), mean.shape[-1])
        return {**params, **FullRank(init_scale=self.init_scale).from_gaussian(mean, cov)}

    def _base_sample(self, key: Array, shape: tuple[int, ...], dtype) -> Array:
        if self.tail_df is None:
            return jax.random.normal(key, shape, dtype=dtype)
        return jax.random.t(key, self.tail_df, shape, dtype=dtype)

    def _base_log_prob(self, eps: Array) -> Array:
        if self.tail_df is None:
            return -0.5 * jnp.sum(eps**2) - 0.5 * eps.shape[-1] * _LOG_2PI
        return jnp.sum(jax.scipy.stats.t.logpdf(eps, self.tail_df))

    def sample(self, params: Params, key: Array, n: int) -> Array:
        eps = self._base_sample(key, (n, params["loc"].shape[-1]), params["loc"].dtype)
        bij = self._bijection(params)
        u = jax.vmap(bij.transform)(eps)
        return params["loc"] + u @ _cholesky(params["chol"]).T

    def sample_and_log_prob(self, params: Params, key: Array, n: int, *,
                            path_only: bool = False) -> tuple[Array, Array]:
        """Draws and log q from the forward pass alone: log q(z) = log base(eps) - log|det
        dT/deps| - sum(log diag L), the same function of the parameters as log_prob at z(eps),
        so its total gradient is the same, without the inverse pass and the triangular solve
        (the fitting loop and the evaluation of a flow were compiled and run with both). STL's
        path-only gradient needs log q at a fixed z: that keeps the inverse."""
        if path_only:
            return super().sample_and_log_prob(params, key, n, path_only=True)
        eps = self._base_sample(key, (n, params["loc"].shape[-1]), params["loc"].dtype)
        u, log_det = jax.vmap(self._bijection(params).transform_and_log_det)(eps)
        z = params["loc"] + u @ _cholesky(params["chol"]).T
        log_q = (jax.vmap(self._base_log_prob)(eps) - log_det
                 - jnp.sum(jnp.diag(params["chol"])))
        return z, log_q

    def log_prob(self, params: Params, z: Array) -> Array:
        chol = _cholesky(params["chol"])
        u = jsl.solve_triangular(chol, z - params["loc"], lower=True)
        eps, log_det = self._bijection(params).inverse_and_log_det(u)
        return self._base_log_prob(eps) + log_det - jnp.sum(jnp.diag(params["chol"]))

    def bijection(self, params: Params) -> AbstractBijection:
        """The coupling bijection T (eps -> u), unwrapped, for inspection and tests."""
        return self._bijection(params)


def _is_mlp(x) -> bool:
    return isinstance(x, eqx.nn.MLP)


# Each flow by (family, dim, x64), with its non-trainable part: built once, reused by every
# init, and every call (and trace) of sample and log_prob.
_BUILT: dict = {}


def _redraw_hidden(flow, key: Array):
    """``flow`` with every conditioner layer but the last (kept at zero: the identity start)
    drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) by ``numpy_rng(key)``."""
    rng = numpy_rng(key)
    hidden = lambda t: [x for m in jax.tree.leaves(t, is_leaf=_is_mlp) if _is_mlp(m)
                        for layer in m.layers[:-1] for x in (layer.weight, layer.bias)]
    old = hidden(flow)
    fresh = []
    for i in range(0, len(old), 2):
        weight, bias = old[i], old[i + 1]
        lim = 1.0 / math.sqrt(weight.shape[-1])
        fresh += [on_device(rng.uniform(-lim, lim, weight.shape), weight.dtype),
                  on_device(rng.uniform(-lim, lim, bias.shape), bias.dtype)]
    return eqx.tree_at(hidden, flow, fresh) if old else flow


def _skeleton(family: "_CouplingFlow", dim: int):
    """The flow of ``family._build`` with every conditioner array zero and the permutations
    drawn by NumPy from ``_STRUCTURE_SEED``, made without running XLA: only the shapes are
    traced (``eqx.filter_eval_shape``). Built eagerly, flowjax's construction compiled some
    thirty small programs, 3.3 s of a first fit of RealNVP in d = 10. ``init`` then draws the
    hidden layers (``_redraw_hidden``); the last layers stay zero. A leaf of any other kind
    (a flowjax change) falls back to the eager build."""
    shapes = eqx.filter_eval_shape(family._build, jax.random.key(_STRUCTURE_SEED), dim)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([_STRUCTURE_SEED, dim])))
    perms: dict = {}
    filled = []
    for path, leaf in leaves:
        names = [getattr(k, "name", None) for k in path]
        at = max((i for i, n in enumerate(names) if n is not None), default=-1)
        name = names[at] if at >= 0 else None  # permutation[0]: a field holding a tuple
        in_mlp = "conditioner" in names
        if not isinstance(leaf, jax.ShapeDtypeStruct):
            filled.append(leaf)
        elif jnp.issubdtype(leaf.dtype, jnp.floating) and in_mlp:
            filled.append(on_device(np.zeros(leaf.shape), leaf.dtype))
        elif name in ("permutation", "inverse_permutation") and len(leaf.shape) >= 1:
            owner = jax.tree_util.keystr(path[:at])
            if owner not in perms:
                rows = int(np.prod(leaf.shape[:-1], dtype=int))
                perms[owner] = np.stack([rng.permutation(leaf.shape[-1]) for _ in range(rows)])
            perm = perms[owner]
            value = perm if name == "permutation" else np.argsort(perm, axis=-1)
            filled.append(on_device(value.reshape(leaf.shape), leaf.dtype))
        else:
            return family._build(jax.random.key(_STRUCTURE_SEED), dim)
    flow = jax.tree_util.tree_unflatten(treedef, filled)
    # Each coupling's constructor of transformer parameters closes over the template's
    # ravelled parameters, which the shape trace left as tracers: made again here, eagerly,
    # as flowjax's Coupling makes it.
    constructor, _ = get_ravelled_pytree_constructor(
        family._transformer(), filter_spec=eqx.is_inexact_array, is_leaf=_is_frozen)
    couplings = lambda t: [c for c in jax.tree.leaves(t, is_leaf=_is_coupling)
                           if _is_coupling(c)]
    return eqx.tree_at(lambda t: [c.transformer_constructor for c in couplings(t)], flow,
                       [constructor] * len(couplings(flow)))


def _is_coupling(x) -> bool:
    return isinstance(x, Coupling)


def _partition_static(flow):
    return eqx.partition(flow, eqx.is_inexact_array, is_leaf=_is_frozen)[1]


class RealNVP(_CouplingFlow):
    """Affine coupling flow (RealNVP): each layer shifts and scales half the coordinates by a
    network of the other half. ``layers`` couplings of an MLP with ``depth`` hidden layers of
    ``width`` units."""

    layers: int = 4
    width: int = 32
    depth: int = 1
    init_scale: float = 0.1
    tail_df: float | None = None
    name: ClassVar[str] = "realnvp"

    def _transformer(self) -> AbstractBijection:
        # softplus(raw) + 1e-2 keeps every scale positive; raw = 0 is the identity.
        return _affine_min_scale(1e-2)


class SplineFlow(_CouplingFlow):
    """Rational-quadratic spline coupling flow (neural spline flow): monotone splines with
    ``knots`` bins on [-interval, interval] (identity outside), in whitened coordinates."""

    layers: int = 4
    width: int = 32
    depth: int = 1
    knots: int = 8
    interval: float = 4.0
    init_scale: float = 0.1
    tail_df: float | None = None
    name: ClassVar[str] = "spline"

    def _transformer(self) -> AbstractBijection:
        return RationalQuadraticSpline(knots=self.knots, interval=self.interval)


def _affine_min_scale(min_scale: float) -> Affine:
    # softplus^-1(1 - min_scale) in NumPy: paramax's inv_softplus ran eight small programs.
    raw = np.log(-np.expm1(-(1.0 - min_scale))) + (1.0 - min_scale)
    scale = paramax.Parameterize(lambda x: jax.nn.softplus(x) + min_scale, on_device(raw))
    # Affine()'s own constructor runs inv_softplus eagerly too: its shape alone, then filled.
    try:
        affine = eqx.tree_at(lambda a: (a.loc, a.scale), eqx.filter_eval_shape(Affine),
                             (on_device(np.zeros(())), scale))
        shapes_left = any(isinstance(leaf, jax.ShapeDtypeStruct)
                          for leaf in jax.tree.leaves(affine, is_leaf=_is_frozen))
    except Exception:
        shapes_left = True
    if shapes_left:  # a flowjax whose Affine has other parts: build it as flowjax does
        affine = eqx.tree_at(lambda a: a.scale, Affine(), replace=scale)
    return affine
