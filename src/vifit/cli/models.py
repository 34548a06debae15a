"""Turn the CLI's MODEL argument (a built-in name or a Python file) into a Target."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from vifit.errors import ModelFileError, VifitError
from vifit.examples import example_names, get_example
from vifit.target import Target


def load_model(spec: str) -> tuple[Target, str]:
    """A Target and a one-line description of where it came from."""
    if spec in example_names():
        return get_example(spec), f"built-in example {spec!r}"
    path = Path(spec)
    if path.suffix != ".py" and not path.exists():
        raise ModelFileError(
            f"{spec!r} is neither a built-in example ({', '.join(example_names())}) nor a file; "
            "give a Python file that defines log_density."
        )
    if not path.is_file():
        raise ModelFileError(f"model file {spec!r} not found.")
    module = _import_file(path)
    if not hasattr(module, "log_density") and hasattr(module, "ep_model"):  # EP models run VI too
        return module.ep_model.target(), f"ep_model from {path} (its Target)"
    if not hasattr(module, "log_density"):
        raise ModelFileError(
            f"{path} defines no `log_density`; add `def log_density(z): ...` returning the "
            "unnormalized log density of a flat vector z, and `dim = <d>` or `init = [...]`."
        )
    dim, init = getattr(module, "dim", None), getattr(module, "init", None)
    if dim is None and init is None:
        raise ModelFileError(f"{path} defines log_density but neither `dim` nor `init`; add one.")
    target = Target(
        module.log_density,
        dim=dim,
        init=init,
        param_names=getattr(module, "param_names", None),
        constrain=getattr(module, "constrain", None),
        differentiable=getattr(module, "differentiable", True),
        name=getattr(module, "name", path.stem),
    )
    return target, f"log_density from {path}"


def _import_file(path: Path):
    name = f"vifit_model_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelFileError(f"{path} is not an importable Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except VifitError:
        raise
    except Exception as exc:
        raise ModelFileError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module
