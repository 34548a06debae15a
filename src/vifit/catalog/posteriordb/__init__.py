"""Posteriors of posteriordb (https://github.com/stan-dev/posteriordb), translated to NumPyro.

One module per posterior, named after posteriordb's model; each reads its data set from
``vifit/catalog/data/posteriordb/`` (copied from posteriordb, see the README there) and has
``DESCRIPTION``, ``make() -> Target`` and a docstring giving the model. The translations keep
the Stan programs' priors (a parameter with no prior statement gets Stan's implicit flat
density on its support, ``dist.ImproperUniform``), constraints, transformed data and parameter
names; ``~`` and ``target +=`` differ only by constants, which a log density may drop.

The unconstrained coordinates are NumPyro's (``biject_to(support)``): the same as Stan's for
bounds, intervals, ``ordered`` and ``simplex`` of two entries, but not for
``positive_ordered``, which NumPyro maps as ``exp(ordered(x))`` where Stan uses
``y_1 = exp(x_1), y_k = y_{k-1} + exp(x_k)``. The posterior of the constrained parameters is
the same either way.
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from typing import Any


def load(name: str) -> dict[str, Any]:
    """The Stan data of posteriordb data set ``name`` (``name.json``, or ``name.json.gz``)."""
    folder = resources.files("vifit.catalog") / "data" / "posteriordb"
    path = folder / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    return json.loads(gzip.decompress((folder / f"{name}.json.gz").read_bytes()))
