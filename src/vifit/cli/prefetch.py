"""Import, in a background thread, the libraries that writing a fit's outputs needs (pandas
for the summary, xarray and h5netcdf for draws.nc, matplotlib for the plots): about 0.8 s of a
command's wall time when imported after the fit. The fit spends seconds in XLA's compiler,
which releases the GIL, so the imports run there instead of after it.

A module that fails to import here is left alone: the foreground import raises the error
where the output needs it.
"""

from __future__ import annotations

import importlib
import threading

OUTPUT_MODULES = ("pandas", "xarray", "h5netcdf", "matplotlib", "matplotlib.pyplot")


def _import_all(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            if name == "matplotlib.pyplot":  # the outputs draw with Agg; no GUI toolkit
                import matplotlib

                matplotlib.use("Agg")
            importlib.import_module(name)
        except Exception:
            pass


def start(names: tuple[str, ...] = OUTPUT_MODULES) -> threading.Thread:
    """Start importing ``names`` in a daemon thread; returns the thread."""
    thread = threading.Thread(target=_import_all, args=(names,), name="vifit-prefetch",
                              daemon=True)
    thread.start()
    return thread
