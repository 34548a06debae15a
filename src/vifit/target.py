"""Targets: an unnormalized log density on an unconstrained flat vector z in R^d.

A Target is what every later layer sees. It is checked once, before any fitting, so that a
bad model fails with a message instead of a NaN a thousand steps later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vifit.ahead import ready
from vifit.errors import TargetError, describe

Array = jax.Array
LogDensity = Callable[[Array], Array]


def _identity_constrain(names: Sequence[str]) -> Callable[[Array], dict[str, Array]]:
    def constrain(z: Array) -> dict[str, Array]:
        return {name: z[..., i] for i, name in enumerate(names)}

    return constrain


def _short_repr(x: Any, limit: int = 60) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Target:
    """An unnormalized log density ``log p(x, z)`` over ``z`` of shape ``(dim,)``.

    ``Target(log_density, dim=3)`` or ``Target(log_density, init=z0)``, with optional
    ``param_names`` (one per coordinate). The density is checked at once (scalar, finite, finite
    gradient at the start), so a bad model fails here with a message rather than later as NaN.

    Attributes:
      log_density: ``z (dim,) -> scalar``, jittable. Need not be normalized.
      dim: number of unconstrained coordinates.
      init: a point ``(dim,)`` where the density is finite; families start there.
      param_names: one name per coordinate of ``z``.
      constrain: ``z (dim,) -> dict[name, array]``, the model's own parameters (default: one
        scalar per coordinate, named by ``param_names``).
      differentiable: whether ``jax.grad(log_density)`` works. Gradient-free targets can only
        be fitted with the score-function estimator.
      name: a label for reports.
      exact: known answers (``log_z``; ``mean`` and ``cov`` of z) when the target has them.
    """

    discrete = False  # integer states: see vifit.discrete.DiscreteTarget

    def __init__(
        self,
        log_density: LogDensity,
        dim: int | None = None,
        *,
        init: Any = None,
        param_names: Sequence[str] | None = None,
        constrain: Callable[[Array], dict[str, Array]] | None = None,
        differentiable: bool = True,
        name: str = "target",
        exact: dict[str, Any] | None = None,
        check: bool = True,
    ):
        if not callable(log_density):
            raise TargetError(
                f"log_density must be a function z -> scalar, got {type(log_density).__name__}."
            )
        if init is None and dim is None:
            raise TargetError("give either dim=<number of coordinates> or init=<starting point>.")
        if dim is not None:
            # bool is an int subclass: dim=True would silently mean one coordinate.
            if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)) \
                    or dim < 1:
                raise TargetError(f"dim must be a positive integer (the number of coordinates "
                                  f"of z), got {dim!r} of type {type(dim).__name__}.")
            dim = int(dim)
        if init is not None:
            try:
                init_arr = jnp.asarray(np.asarray(init, dtype=np.float64),
                                       dtype=jnp.result_type(float))
            except (TypeError, ValueError) as exc:
                raise TargetError(
                    f"init must be a flat vector of numbers, one per coordinate of z; could not "
                    f"read {_short_repr(init)} as one ({describe(exc)})."
                ) from None
            if init_arr.ndim != 1:
                raise TargetError(
                    f"init must be a flat vector of shape (dim,), got shape {init_arr.shape}; "
                    "flatten your parameters into one vector."
                )
            if init_arr.shape[0] == 0:
                raise TargetError("init is empty; give one starting value per coordinate of z.")
            if dim is not None and init_arr.shape[0] != dim:
                raise TargetError(
                    f"init has {init_arr.shape[0]} coordinates but dim={dim}; make them agree."
                )
            if not bool(jnp.all(jnp.isfinite(init_arr))):
                raise TargetError(
                    f"init has non-finite values ({_short_repr(init)}); start from a point "
                    "where every coordinate is a finite number."
                )
            dim = int(init_arr.shape[0])
        else:
            try:
                init_arr = jnp.zeros(dim)
            except Exception as exc:  # e.g. RESOURCE_EXHAUSTED for an absurd dim
                raise TargetError(
                    f"dim={dim} coordinates do not fit in memory ({describe(exc)}); check "
                    "the value of dim."
                ) from None
        if param_names is None:
            names = tuple(f"z[{i}]" for i in range(dim))
        else:
            # A string is iterable: param_names="ab" would silently name z[0] 'a' and z[1] 'b'.
            if isinstance(param_names, (str, bytes)) or not isinstance(param_names, Iterable):
                raise TargetError(
                    f"param_names must be a list of {dim} names, one per coordinate of z, got "
                    f"{_short_repr(param_names)} of type {type(param_names).__name__}."
                )
            names = tuple(str(n) for n in param_names)
            if len(names) != dim:
                raise TargetError(
                    f"param_names has {len(names)} names but the target has {dim} coordinates; "
                    "give one name per coordinate."
                )
            if len(set(names)) != len(names):
                raise TargetError("param_names must be distinct.")
        if constrain is not None and not callable(constrain):
            raise TargetError(
                f"constrain must be a function z -> dict of the model's parameters, got "
                f"{type(constrain).__name__}; leave it out for one parameter per coordinate."
            )
        if not isinstance(differentiable, (bool, np.bool_)):
            raise TargetError(
                f"differentiable must be True or False, got {differentiable!r}; False fits "
                "the target with the score-function estimator, which needs no gradient."
            )
        self.log_density = log_density
        self.dim = dim
        self.init = init_arr
        self.param_names = names
        self.constrain = constrain or _identity_constrain(names)
        self.differentiable = bool(differentiable)
        self.name = str(name)
        self.exact = dict(exact or {})
        if check:
            self.check()

    def __repr__(self) -> str:
        return f"Target(name={self.name!r}, dim={self.dim})"

    def check(self) -> None:
        """Evaluate the density (and its gradient) at ``init``; raise TargetError if unusable."""
        if self._fused_check_passes():
            self._check_constrain()
            return
        # Something is wrong: find what, one step at a time, to say it plainly.
        try:
            value = self.log_density(self.init)
        except Exception as exc:  # the user's code failed: say where, keep the cause
            raise TargetError(
                f"log_density failed at the initial point with {describe(exc)}. It is "
                f"called with one vector z of shape ({self.dim},)."
            ) from exc
        value = self._as_log_value(value)
        if value.shape != ():
            raise TargetError(
                f"log_density must return a scalar, got shape {value.shape} for z of shape "
                f"({self.dim},). Sum the log terms (e.g. jnp.sum(...)) before returning."
            )
        if not bool(jnp.isfinite(value)):
            raise TargetError(
                f"log_density is {float(value)} at the initial point; it must be finite there. "
                "Pass init=<a point inside the support> or reparameterize constrained "
                "parameters onto the real line (e.g. log of a scale)."
            )
        try:
            batch = jax.vmap(self.log_density)(jnp.stack([self.init, self.init]))
        except Exception as exc:
            raise TargetError(
                f"log_density fails under jax.vmap ({describe(exc)}); vifit evaluates many "
                "draws at once, with z a traced JAX array. Use jax.numpy, not numpy or "
                "math, on z; avoid Python control flow and float()/int() on values of z (use "
                "jnp.where or jax.lax.cond); give callbacks a vmap_method."
            ) from exc
        batch = self._as_log_value(batch)
        if batch.shape != (2,):
            raise TargetError(f"log_density under jax.vmap returned shape {batch.shape}, not (2,).")
        self._check_constrain()
        if not self.differentiable:
            return
        try:
            grad = jax.grad(self.log_density)(self.init)
        except Exception as exc:
            raise TargetError(
                f"jax.grad(log_density) failed with {describe(exc)}. If the density "
                "is not differentiable, build the Target with differentiable=False and fit "
                "it with estimator='score'."
            ) from exc
        bad = ~np.isfinite(np.asarray(grad))
        if bad.any():
            which = [self.param_names[i] for i in np.flatnonzero(bad)[:5]]
            raise TargetError(
                f"the gradient of log_density is not finite at the initial point (in {which}). "
                "Start from another point with init=..., or use differentiable=False with "
                "estimator='score'."
            )

    def _fused_check_passes(self) -> bool:
        """The checks below in one compiled program (value, a vmapped pair, the gradient).
        Run op by op they cost a compilation per operation of the density: about 2 s of a
        first run on eight schools, against one program here."""
        f = self.log_density

        def all_checks(z):
            out = (f(z), jax.vmap(f)(jnp.stack([z, z])))
            return out + (jax.grad(f)(z),) if self.differentiable else out

        try:
            out = jax.jit(all_checks)(self.init)
        except Exception:
            return False
        value, batch = out[0], out[1]
        ok = (value.shape == () and batch.shape == (2,)
              and jnp.issubdtype(value.dtype, jnp.floating)
              and jnp.issubdtype(batch.dtype, jnp.floating) and bool(np.isfinite(value)))
        if self.differentiable:
            ok = ok and bool(np.all(np.isfinite(np.asarray(out[2]))))
        return ok

    @staticmethod
    def _as_log_value(value: Any) -> Array:
        """``value`` as a JAX array of a real floating dtype, or TargetError."""
        try:
            arr = jnp.asarray(value)
        except Exception:
            raise TargetError(
                f"log_density must return a number (a JAX float scalar), got "
                f"{_short_repr(value)} of type {type(value).__name__}; return the log "
                "density, e.g. -0.5 * jnp.sum(z**2)."
            ) from None
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            raise TargetError(
                f"log_density must return a real floating-point scalar, got dtype {arr.dtype}; "
                + ("a log density is real: drop the imaginary part." if
                   jnp.issubdtype(arr.dtype, jnp.complexfloating) else
                   "return a float (e.g. jnp.asarray(value, float)).")
            )
        return arr

    def _check_constrain(self) -> None:
        """``constrain(init)`` must run under tracing and give a dict of arrays."""
        try:
            shapes = jax.eval_shape(self.constrain,
                                    jax.ShapeDtypeStruct((self.dim,), self.init.dtype))
        except Exception as exc:
            raise TargetError(
                f"constrain failed with {describe(exc)}. It is called with one vector z of "
                f"shape ({self.dim},) (a traced JAX array) and must return a dict of the "
                "model's parameters, e.g. {'sigma': jnp.exp(z[0])}."
            ) from exc
        if not isinstance(shapes, dict) or not all(
                isinstance(v, jax.ShapeDtypeStruct) for v in shapes.values()):
            raise TargetError(
                f"constrain must return a dict of arrays (parameter name -> value), got "
                f"{type(shapes).__name__}; e.g. return {{'mu': z[0], 'sigma': jnp.exp(z[1])}}."
            )

    def batch_log_density(self, z: Array) -> Array:
        """``z (n, dim) -> (n,)``."""
        return jax.vmap(self.log_density)(z)

    def constrained_keys(self) -> list[str]:
        """The constrained parameters' names in the model's own order (``constrain``'s dict
        order; JAX's transformations return dicts sorted by key, which would put ``z[10]``
        before ``z[2]``)."""
        keys = getattr(self, "_constrained_keys", None)
        if keys is None:
            order: list[str] = []

            def constrain(z):  # traced for shapes only: no program runs (eagerly: several)
                values = self.constrain(z)
                order.extend(values.keys())
                return values

            jax.eval_shape(constrain, jax.ShapeDtypeStruct((self.dim,), self.init.dtype))
            keys = self._constrained_keys = order
        return keys

    def batch_constrain(self, z: Array) -> dict[str, Array]:
        """``constrain`` at each row of ``z (n, dim)``: ``{name: (n, ...)}``, by one jitted
        program kept on the target (run eagerly, a model's transforms were a dozen small
        programs compiled for every summary and file of a fit)."""
        program = self.batch_constrain_program()
        ready(program)
        return program(z)

    def batch_constrain_program(self) -> Callable[[Array], dict[str, Array]]:
        """The jitted program of ``batch_constrain``."""
        run = getattr(self, "_batch_constrain", None)
        if run is None:
            run = self._batch_constrain = jax.jit(jax.vmap(self.constrain))
        return run

    def batch_flat(self, z: Array) -> Array:
        """The flat constrained values ``(n, m)`` at the rows of ``z (n, dim)``, in the order of
        ``constrained_names``; one jitted program kept on the target."""
        program = self.batch_flat_program()
        ready(program)
        return program(z)

    def batch_flat_program(self) -> Callable[[Array], Array]:
        """The jitted program of ``batch_flat``."""
        run = getattr(self, "_batch_flat", None)
        if run is None:
            run = self._batch_flat = jax.jit(jax.vmap(self.constrained_names()[1]))
        return run

    def in_model_order(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` (a dict keyed by constrained name) re-ordered as the model orders them."""
        keys = self.constrained_keys()
        return {k: values[k] for k in keys if k in values} | {
            k: v for k, v in values.items() if k not in set(keys)}

    def constrained_names(self) -> tuple[list[str], Callable[[Array], Array]]:
        """Flat names of the constrained parameters (in the model's order) and a map
        ``z (dim,) -> flat (m,)`` in the same order."""
        shapes = jax.eval_shape(self.constrain, jax.ShapeDtypeStruct((self.dim,), self.init.dtype))
        keys = [k for k in self.constrained_keys() if k in shapes]
        names: list[str] = []
        for key in keys:
            sds = shapes[key]
            if sds.shape == ():
                names.append(key)
            else:
                names.extend(f"{key}[{','.join(map(str, idx))}]" for idx in np.ndindex(*sds.shape))

        def flat(z: Array) -> Array:
            values = self.constrain(z)
            return jnp.concatenate([jnp.ravel(values[k]) for k in keys])

        return names, flat
