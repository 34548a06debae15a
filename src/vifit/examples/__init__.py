"""Built-in example targets, by name, for the CLI and for tests."""

from __future__ import annotations

from collections.abc import Callable

import importlib

from vifit.errors import ConfigError
from vifit.target import Target


class _Lazy:
    """``module.function``, imported on first call: listing the examples (``vifit list``,
    or the catalog looking a name up) imports none of them, and some pull in SciPy."""

    def __init__(self, module: str, function: str):
        self.module, self.function = module, function

    def __call__(self, *args, **kwargs):
        module = importlib.import_module(f"vifit.examples.{self.module}")
        return getattr(module, self.function)(*args, **kwargs)


_EXAMPLES: dict[str, tuple[Callable[[], Target], str]] = {
    "eight_schools": (_Lazy("eight_schools", "make"),
                      "Rubin's eight schools, non-centred hierarchical model (real data, d=10)"),
    "linear_regression": (_Lazy("linear_regression", "make"),
                          "Bayesian linear regression, known noise; exact log Z (d=5, n=100)"),
    "gaussian": (_Lazy("gaussian", "make"),
                 "correlated Gaussian, condition number 100; exact log Z (d=10)"),
    "ising": (_Lazy("ising", "make"),
              "4x4 periodic Ising model, 16 binary spins; exact log Z by enumeration"),
    "mixture_labels": (_Lazy("mixture", "make"),
                       "labels of a 3-cluster Gaussian mixture, means integrated "
                       "out, 10 points; exact log Z by enumeration"),
    "probit_regression": (_Lazy("binary_regression", "make_probit"),
                          "probit regression, Finney's vasoconstriction data (real, d=3); EP too"),
    "logistic_vaso": (_Lazy("binary_regression", "make_logistic"),
                      "logistic regression, vasoconstriction data (real, d=3); EP too"),
    "gp_classification": (_Lazy("gp_classification", "make"),
                          "GP classification, RBF kernel, probit, seeded 1-D data (d=60); EP too"),
}

# Models that declare their factors, for `vifit fit NAME --method ep`.
EP_MODELS = {"probit_regression": _Lazy("binary_regression", "probit_model"),
             "logistic_vaso": _Lazy("binary_regression", "logistic_model"),
             "gp_classification": _Lazy("gp_classification", "model")}


def example_names() -> list[str]:
    return list(_EXAMPLES)


def describe_examples() -> dict[str, str]:
    return {name: desc for name, (_, desc) in _EXAMPLES.items()}


def get_example(name: str) -> Target:
    if name not in _EXAMPLES:
        raise ConfigError(
            f"unknown example {name!r}; built-in examples are {', '.join(_EXAMPLES)} "
            "(see `vifit list`), or give the path of a Python file."
        )
    return _EXAMPLES[name][0]()
