"""Adapters: Targets built from models written in other probabilistic languages.

``from_numpyro`` needs only NumPyro (a core dependency); ``from_pymc`` needs the optional extra
``pip install "vifit[pymc]"`` and imports PyMC only when called.
"""

from vifit.adapters.base import ModelTarget, flat_names
from vifit.adapters.numpyro import from_numpyro


def from_pymc(model, **kwargs) -> ModelTarget:
    """A Target from a ``pymc.Model``; see ``vifit.adapters.pymc.from_pymc``."""
    from vifit.adapters.pymc import from_pymc as _from_pymc

    return _from_pymc(model, **kwargs)


__all__ = ["ModelTarget", "flat_names", "from_numpyro", "from_pymc"]
