"""What the model adapters share: a Target that also maps the model's values back to z."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from vifit.target import Target

Array = jax.Array


def flat_names(shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """One name per scalar, in the given order: ``mu``, ``theta[0]``, ``L[1,0]``."""
    names: list[str] = []
    for key, shape in shapes.items():
        if tuple(shape) == ():
            names.append(key)
        else:
            names.extend(f"{key}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape))
    return names


class ModelTarget(Target):
    """A Target built from a NumPyro or PyMC model.

    Besides the Target attributes it knows where it came from (``source``: ``"numpyro"`` or
    ``"pymc"``), the unconstrained shape of each latent variable (``site_shapes``), and the
    inverse of ``constrain`` on the latent variables: ``unconstrain(values) -> z (dim,)``.
    """

    def __init__(self, log_density: Callable[[Array], Array], *, init: Any,
                 param_names: list[str], constrain: Callable[[Array], dict[str, Array]],
                 unconstrain: Callable[[Mapping[str, Any]], Array], source: str,
                 site_shapes: dict[str, tuple[int, ...]], name: str, check: bool = True):
        self.unconstrain = unconstrain
        self.source = source
        self.site_shapes = dict(site_shapes)
        super().__init__(log_density, init=init, param_names=param_names, constrain=constrain,
                         name=name, check=check)
