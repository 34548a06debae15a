"""Targets: an unnormalized log density on an unconstrained flat vector z in R^d.

A Target is what every later layer sees. It is checked once, before any fitting, so that a
bad model fails with a message instead of a NaN a thousand steps later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vifit.errors import TargetError

Array = jax.Array
LogDensity = Callable[[Array], Array]


def _identity_constrain(names: Sequence[str]) -> Callable[[Array], dict[str, Array]]:
    def constrain(z: Array) -> dict[str, Array]:
        return {name: z[..., i] for i, name in enumerate(names)}

    return constrain


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
        if init is not None:
            init_arr = jnp.asarray(init, dtype=jnp.result_type(float))
            if init_arr.ndim != 1:
                raise TargetError(
                    f"init must be a flat vector of shape (dim,), got shape {init_arr.shape}; "
                    "flatten your parameters into one vector."
                )
            if dim is not None and init_arr.shape[0] != dim:
                raise TargetError(
                    f"init has {init_arr.shape[0]} coordinates but dim={dim}; make them agree."
                )
            dim = int(init_arr.shape[0])
        else:
            if not isinstance(dim, (int, np.integer)) or dim < 1:
                raise TargetError(f"dim must be a positive integer, got {dim!r}.")
            dim = int(dim)
            init_arr = jnp.zeros(dim)
        if param_names is None:
            names = tuple(f"z[{i}]" for i in range(dim))
        else:
            names = tuple(str(n) for n in param_names)
            if len(names) != dim:
                raise TargetError(
                    f"param_names has {len(names)} names but the target has {dim} coordinates; "
                    "give one name per coordinate."
                )
            if len(set(names)) != len(names):
                raise TargetError("param_names must be distinct.")
        self.log_density = log_density
        self.dim = dim
        self.init = init_arr
        self.param_names = names
        self.constrain = constrain or _identity_constrain(names)
        self.differentiable = differentiable
        self.name = name
        self.exact = dict(exact or {})
        if check:
            self.check()

    def __repr__(self) -> str:
        return f"Target(name={self.name!r}, dim={self.dim})"

    def check(self) -> None:
        """Evaluate the density (and its gradient) at ``init``; raise TargetError if unusable."""
        try:
            value = self.log_density(self.init)
        except Exception as exc:  # the user's code failed: say where, keep the cause
            raise TargetError(
                f"log_density failed at the initial point with {type(exc).__name__}: {exc}. "
                f"It is called with one vector z of shape ({self.dim},)."
            ) from exc
        value = jnp.asarray(value)
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
                f"log_density fails under jax.vmap ({type(exc).__name__}: {exc}); vifit "
                "evaluates many draws at once. Avoid Python control flow on values of z "
                "(use jnp.where) and give callbacks a vmap_method."
            ) from exc
        if batch.shape != (2,):
            raise TargetError(f"log_density under jax.vmap returned shape {batch.shape}, not (2,).")
        if not self.differentiable:
            return
        try:
            grad = jax.grad(self.log_density)(self.init)
        except Exception as exc:
            raise TargetError(
                f"jax.grad(log_density) failed with {type(exc).__name__}: {exc}. If the density "
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

    def batch_log_density(self, z: Array) -> Array:
        """``z (n, dim) -> (n,)``."""
        return jax.vmap(self.log_density)(z)

    def constrained_names(self) -> tuple[list[str], Callable[[Array], Array]]:
        """Flat names of the constrained parameters and a map ``z (dim,) -> flat (m,)``."""
        shapes = jax.eval_shape(self.constrain, jax.ShapeDtypeStruct((self.dim,), self.init.dtype))
        names: list[str] = []
        for key, sds in shapes.items():
            if sds.shape == ():
                names.append(key)
            else:
                names.extend(f"{key}[{','.join(map(str, idx))}]" for idx in np.ndindex(*sds.shape))

        def flat(z: Array) -> Array:
            values = self.constrain(z)
            return jnp.concatenate([jnp.ravel(values[k]) for k in shapes])

        return names, flat
