"""The built-in model catalog: targets users know, each with a reference answer.

``vifit list`` shows it, ``vifit fit NAME`` and ``vifit bench`` use it. Every model is one
module here with ``make() -> Target`` and a ``DESCRIPTION``; its reference answer is
``references/<name>.json`` (exact where the answer is known, otherwise the mean and sd of each
constrained parameter from long NUTS runs, written by ``scripts/make_references.py``). The
examples of ``vifit.examples`` are part of the catalog under their own names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from vifit.catalog.reference import Reference, load_reference, reference_names
from vifit.errors import ConfigError
from vifit.target import Target

# name -> module under vifit.catalog (modules are imported only when a model is made).
_MODULES = {
    "eight_schools_centered": "eight_schools_centered",
    "logistic_regression": "logistic_regression",
    "radon": "radon",
    "stochastic_volatility": "stochastic_volatility",
    "horseshoe": "horseshoe",
    "gp_poisson": "gp_poisson",
    "funnel": "funnel",
    "banana": "banana",
    "gaussian_mixture": "gaussian_mixture",
    "gaussian_100d": "gaussian_100d",
    # posteriordb (https://github.com/stan-dev/posteriordb): catalog name -> its module; the
    # posteriordb posterior is in each DESCRIPTION. gp_pois_regr is gp_poisson above, and
    # eight_schools-eight_schools_noncentered the example eight_schools.
    "arK": "posteriordb.arK",
    "arma11": "posteriordb.arma11",
    "hmm_drive_0": "posteriordb.hmm_drive_0",
    "diamonds": "posteriordb.diamonds",
    "earn_height": "posteriordb.earn_height",
    "logearn_interaction": "posteriordb.logearn_interaction",
    "garch11": "posteriordb.garch11",
    "hmm_example": "posteriordb.hmm_example",
    "lotka_volterra": "posteriordb.lotka_volterra",
    "kidscore_momhsiq": "posteriordb.kidscore_momhsiq",
    "kidscore_interaction": "posteriordb.kidscore_interaction",
    "kilpisjarvi": "posteriordb.kilpisjarvi",
    "low_dim_gauss_mix": "posteriordb.low_dim_gauss_mix",
    "logmesquite_logvas": "posteriordb.logmesquite_logvas",
    "nes": "posteriordb.nes",
    "blr": "posteriordb.blr",
}


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    make: Callable[[], Target]
    reference: str  # the stem of the reference file under references/


def _module_entry(name: str) -> Entry:
    module = importlib.import_module(f"vifit.catalog.{_MODULES[name]}")
    return Entry(name, module.DESCRIPTION, module.make, getattr(module, "REFERENCE", name))


def _entries() -> dict[str, Entry]:
    from vifit import examples

    entries = {
        name: Entry(name, desc, lambda name=name: examples.get_example(name), name)
        for name, desc in examples.describe_examples().items()
    }
    for name in _MODULES:
        entries[name] = _module_entry(name)
    return entries


def catalog_names() -> list[str]:
    """Every model in the catalog, the examples first (nothing is imported to list them)."""
    from vifit import examples

    return examples.example_names() + list(_MODULES)


def describe() -> dict[str, str]:
    return {name: entry.description for name, entry in _entries().items()}


def entry(name: str) -> Entry:
    """Model ``name``'s entry; imports its module alone (a model's module may import NumPyro
    or read data: fitting one model should not pay for the others)."""
    from vifit import examples

    if name in _MODULES:
        return _module_entry(name)
    if name in examples.example_names():
        return Entry(name, examples.describe_examples()[name],
                     lambda: examples.get_example(name), name)
    raise ConfigError(f"unknown model {name!r}; the catalog has "
                      f"{', '.join(catalog_names())} (see `vifit list`).")


def get_model(name: str) -> Target:
    """The Target of catalog model ``name``."""
    return entry(name).make()


def scored_names() -> list[str]:
    """The models that have a reference answer (what ``vifit bench`` scores by default);
    the discrete and EP examples are fitted by name but have none."""
    stems = set(reference_names())
    return [name for name, e in _entries().items() if e.reference in stems]


def reference(name: str) -> Reference:
    """The reference answer of catalog model ``name``."""
    return load_reference(entry(name).reference)


__all__ = ["Entry", "Reference", "catalog_names", "describe", "entry", "get_model",
           "load_reference", "reference", "scored_names"]
