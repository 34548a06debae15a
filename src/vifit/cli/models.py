"""Turn the CLI's MODEL argument (a built-in name or a Python file) into a Target.

A model file is detected by what it defines (see docs/models.md):

- a PyMC model: ``model`` is a ``pymc.Model`` (needs ``pip install "vifit[pymc]"``);
- a NumPyro model: ``model`` is a function; it is called as ``model(*args, **kwargs)`` with
  the file's ``args`` (a tuple) and ``kwargs`` (a dict; ``data`` is accepted for it), where
  the observed data go;
- a plain log density: ``log_density(z)`` with ``dim`` or ``init`` (optionally
  ``param_names``, ``constrain``, ``differentiable``);
- a data model: ``log_prior(z)``, ``log_lik(z, batch)`` (one value per row of ``batch``),
  ``data`` and ``dim`` or ``init`` (optionally ``param_names``, ``constrain``), fitted on
  minibatches (``vifit.DataTarget``). ``data`` is an array or a dict of arrays with one row
  per datum (``np.load(path, mmap_mode="r")`` for files larger than memory), or a function
  ``data(process_id, num_processes)`` returning that process's rows.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import traceback
from pathlib import Path

from vifit.errors import ModelFileError, VifitError, describe
from vifit.target import Target


DATA_NAMES = ("log_prior", "log_lik", "data")


def load_model(spec: str, process: tuple[int, int] = (0, 1)) -> tuple[Target, str]:
    """A Target and a one-line description of where it came from and what was detected.
    ``process``: ``(process_id, num_processes)`` of a distributed fit, whose data model then
    reads only its own rows."""
    from vifit import catalog

    names = catalog.catalog_names()
    if spec in names:
        target = catalog.get_model(spec)
        kind = {"numpyro": "NumPyro model", "pymc": "PyMC model"}.get(
            getattr(target, "source", ""), "log density")
        return target, f"built-in model {spec!r} ({kind})"
    path, module = import_model_file(
        spec, f"a built-in example ({', '.join(names)})",
        "give a Python file that defines log_density, or a NumPyro or PyMC `model`.")
    has_model, has_density = hasattr(module, "model"), hasattr(module, "log_density")
    if hasattr(module, "log_lik") or hasattr(module, "log_prior"):
        if has_model or has_density:
            raise ModelFileError(
                f"{path} defines log_lik/log_prior and also "
                f"{'`model`' if has_model else '`log_density`'}; a data model is log_prior, "
                "log_lik and data; keep one kind.")
        return _from_data_file(module, path, process)
    if has_model and has_density:
        raise ModelFileError(
            f"{path} defines both `model` and `log_density`; keep one, or rename the other, "
            "so that vifit knows which to fit."
        )
    if has_model:
        return _from_model(module, path)
    if not has_density and hasattr(module, "ep_model"):  # EP models run VI too
        if not callable(getattr(module.ep_model, "target", None)):
            raise ModelFileError(
                f"`ep_model` in {path} is a {type(module.ep_model).__name__}, not an EP model; "
                "define it as vifit.ep.Factorized(term, data, design, prior_sd=...) (see "
                "docs/ep.md), or define log_density or a NumPyro/PyMC `model` instead."
            )
        return module.ep_model.target(), f"ep_model from {path} (its Target)"
    if not has_density:
        raise ModelFileError(
            f"{path} defines no `log_density`; add `def log_density(z): ...` returning the "
            "unnormalized log density of a flat vector z, and `dim = <d>` or `init = [...]`; "
            "or define a NumPyro `model` function (with `args`/`kwargs` for its data) or a "
            "PyMC `model = pm.Model()`."
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
        name=str(getattr(module, "name", path.stem)),
    )
    return target, f"detected a plain log_density in {path}"


def _from_data_file(module, path: Path, process: tuple[int, int]) -> tuple[Target, str]:
    from vifit.data import DataTarget
    from vifit.data.hosts import row_range
    from vifit.data.target import data_rows

    missing = [n for n in DATA_NAMES if not hasattr(module, n)]
    if missing:
        raise ModelFileError(
            f"{path} looks like a data model but defines no {', '.join(missing)}; a data model "
            "defines log_prior(z) (a scalar), log_lik(z, batch) (one value per row of batch), "
            "data (arrays with one row per datum) and dim or init.")
    dim, init = getattr(module, "dim", None), getattr(module, "init", None)
    if dim is None and init is None:
        raise ModelFileError(f"{path} defines a data model but neither `dim` nor `init`; add "
                             "one.")
    pid, nproc = process
    data = module.data
    if callable(data):
        try:
            data = data(pid, nproc)
        except Exception as exc:
            raise ModelFileError(f"data({pid}, {nproc}) in {path} failed: {describe(exc)}; "
                                 "a data loader takes (process_id, num_processes) and returns "
                                 "that process's rows.") from exc
        rows = "its own rows from data()"
    elif nproc > 1:
        start, stop = row_range(data_rows(data), pid, nproc)
        data = _slice_rows(data, start, stop)
        rows = f"rows {start:,}..{stop - 1:,}"
    else:
        rows = ""
    target = DataTarget(module.log_prior, module.log_lik, data, dim=dim, init=init,
                        param_names=getattr(module, "param_names", None),
                        constrain=getattr(module, "constrain", None),
                        name=str(getattr(module, "name", path.stem)))
    where = f"; process {pid} of {nproc} reads {rows}" if nproc > 1 else ""
    return target, (f"detected a data model in {path}: {target.n_rows:,} rows, log_prior + "
                    f"log_lik{where}")


def _slice_rows(data, start: int, stop: int):
    import jax

    return jax.tree.map(lambda a: a[start:stop], data)


def _is_pymc_model(obj) -> bool:
    # Checked by type, so that a NumPyro file never needs PyMC installed.
    return any(cls.__module__.startswith("pymc.") and cls.__name__ == "Model"
               for cls in type(obj).__mro__)


def _from_model(module, path: Path) -> tuple[Target, str]:
    from vifit.adapters import from_numpyro, from_pymc

    model = module.model
    name = getattr(module, "name", path.stem)
    if _is_pymc_model(model):
        return from_pymc(model, target_name=name), f"detected a PyMC model in {path}"
    if not callable(model):
        raise ModelFileError(
            f"`model` in {path} is a {type(model).__name__}; it must be a NumPyro model "
            "function or a pymc.Model."
        )
    args = getattr(module, "args", ())
    kwargs = getattr(module, "kwargs", None)
    data = getattr(module, "data", None)
    if kwargs is not None and data is not None:
        raise ModelFileError(f"{path} defines both `kwargs` and `data`; they mean the same "
                             "(keyword arguments of model); keep one.")
    kwargs = kwargs if kwargs is not None else (data if data is not None else {})
    if not isinstance(args, tuple | list) or not isinstance(kwargs, dict):
        raise ModelFileError(
            f"in {path}, `args` must be a tuple and `kwargs` (or `data`) a dict: the model is "
            "called as model(*args, **kwargs)."
        )
    target = from_numpyro(model, *args, target_name=name, **kwargs)
    called = [f"{len(args)} args"] * bool(args) + [f"kwargs {sorted(kwargs)}"] * bool(kwargs)
    how = f" (called with {', '.join(called)})" if called else ""
    return target, f"detected a NumPyro model in {path}{how}"


def import_model_file(spec: str, builtins: str, fix: str):
    """``(path, module)`` for a MODEL argument that is not a built-in name: a ModelFileError
    naming ``builtins`` (what a built-in is) and ``fix`` (what the file must define) when
    ``spec`` is neither, or when the file is missing or does not import."""
    if not spec.strip():
        raise ModelFileError(f"MODEL is empty; give {builtins}, or {fix}")
    path = Path(spec)
    if path.suffix != ".py" and not path.exists():
        raise ModelFileError(f"{spec!r} is neither {builtins} nor a file; {fix}")
    if path.is_dir():
        raise ModelFileError(f"{spec!r} is a directory, not a model file; {fix}")
    if not path.is_file():
        raise ModelFileError(f"model file {spec!r} not found; check the path, or {fix}")
    return path, _import_file(path)


def _import_file(path: Path):
    name = f"vifit_model_{path.stem}"
    # Source only: importlib would also load bytecode (.pyc) and extension modules (.so).
    spec = (importlib.util.spec_from_file_location(name, path) if path.suffix == ".py"
            else None)
    if spec is None or spec.loader is None:
        raise ModelFileError(f"{path} is not an importable Python file: a model file is "
                             "Python source ending in .py.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except VifitError:
        raise
    except SystemExit as exc:  # a script's sys.exit() must not end vifit with its status
        raise ModelFileError(
            f"importing {path} called sys.exit({exc.code!r}); a model file is imported, not "
            "run: define the model at top level and move script code under "
            "`if __name__ == \"__main__\":`."
        ) from None
    except Exception as exc:
        raise ModelFileError(f"importing {path} failed: {describe(exc)}; fix the file so that "
                             f"`python {path}` runs.") from exc
    return module


def user_code_error(exc: BaseException, spec: str) -> str | None:
    """A one-line message for an exception that the model file ``spec`` raised (in its own
    code, or in a host callback it gave JAX) during a fit; None when the exception did not
    come from that file (then it is vifit's own bug and keeps its traceback)."""
    path = Path(spec)
    if not path.is_file():
        return None
    here = str(path.resolve())
    frames = [(f.filename, f.lineno, f.name) for f in traceback.extract_tb(exc.__traceback__)
              if _same_file(f.filename, here)]
    cause = describe(exc)
    if not frames:
        # A Python callback's failure reaches us as a JAX runtime error whose message carries
        # the callback's traceback as text: its last frame in the file and the final line.
        text = str(exc)
        found = [(f, int(n), fn) for f, n, fn in
                 re.findall(r'File "([^"]+)", line (\d+), in (\S+)', text) if _same_file(f, here)]
        if not found:
            return None
        frames = found
        last = [line.strip() for line in text.splitlines() if line.strip()][-1]
        cause = last.rstrip(".")
    _, line, func = frames[-1]
    return (f"{func}() in {path} (line {line}) raised {cause} during the fit, after it had "
            "run at the initial point: it fails at some values of z; fix it, or make it return "
            "-inf there instead of raising.")


def _same_file(a: str, b: str) -> bool:
    try:
        return str(Path(a).resolve()) == b
    except (OSError, ValueError):
        return False
