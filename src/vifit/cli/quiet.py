"""Other libraries' warnings out of the command line's output.

A vifit command prints what vifit has to say. Warnings raised by other libraries (ArviZ's
refactor notices, NumPyro's or PyMC's deprecations, JAX's platform messages through
``logging``) are kept in a log file instead, ``DIR/warnings.log`` for a run with ``--out DIR``
and ``<cache>/vifit/warnings.log`` otherwise, and one line at the end says how many there were
and where. ``vifit --verbose ...`` (or ``VIFIT_VERBOSE=1``) prints them as they come. vifit's
own warnings and those of the user's model file are always shown.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import sysconfig
import warnings
from pathlib import Path

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
# Where installed libraries and the standard library live: a warning raised from code there is
# another library's. The user's own model file, wherever it is, is not.
_LIBRARY_DIRS = tuple(sorted({str(Path(p).resolve()) for key in ("purelib", "platlib",
                                                                  "stdlib", "platstdlib")
                              if (p := sysconfig.get_paths().get(key))}))


def is_library(category: type[Warning], filename: str) -> bool:
    """A warning from another library (logged, not shown, without ``--verbose``): raised from
    installed code that is not vifit's, with a category that is not vifit's."""
    module = getattr(category, "__module__", "") or ""
    if module.split(".")[0] == "vifit":
        return False
    try:
        where = str(Path(filename).resolve())
    except (OSError, ValueError):
        return False
    return where.startswith(_LIBRARY_DIRS) and not where.startswith(_PACKAGE_DIR)


class WarningLog:
    """Collects other libraries' warnings and log records; ``flush()`` writes them out."""

    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.lines: list[str] = []
        self.out_dir: Path | None = None
        self._show_default = warnings.showwarning

    def install(self) -> None:
        if self.verbose:
            return
        warnings.showwarning = self._show
        handler = _ListHandler(self.lines)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)  # also keeps logging's last-resort stderr printer silent
        root.setLevel(min(root.level or logging.WARNING, logging.WARNING))
        atexit.register(self.flush)

    def _show(self, message, category, filename, lineno, file=None, line=None) -> None:
        if not is_library(category, filename):
            self._show_default(message, category, filename, lineno, file, line)
            return
        self.lines.append(warnings.formatwarning(message, category, filename, lineno,
                                                 line).rstrip())

    def flush(self) -> Path | None:
        """Write what was collected (appending), say so on stderr in one line; the path, or
        None when nothing was collected."""
        if not self.lines:
            return None
        from vifit.cache import user_cache_root

        path = (self.out_dir if self.out_dir is not None else user_cache_root()) / "warnings.log"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write("\n".join(self.lines) + "\n")
        except OSError:
            return None  # nowhere to write: say nothing rather than fail at exit
        n = len(self.lines)
        self.lines.clear()
        print(f"note: {n} warning{'s' if n != 1 else ''} from other libraries written to "
              f"{path} (vifit --verbose shows them)", file=sys.stderr)
        return path


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]):
        super().__init__(level=logging.WARNING)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] == "vifit":
            print(self.format(record), file=sys.stderr)
        else:
            self.lines.append(self.format(record))


# The log of this process's command, once the root command has installed it; a command with
# ``--out DIR`` points it there.
_CURRENT: list[WarningLog] = []


def install(verbose: bool) -> WarningLog:
    log = WarningLog(verbose or os.environ.get("VIFIT_VERBOSE", "").strip().lower()
                     in ("1", "true", "yes"))
    log.install()
    _CURRENT[:] = [log]
    return log


def log_to(out_dir: str | Path | None) -> None:
    """Put this command's warnings log in ``out_dir`` (the run's output folder)."""
    if _CURRENT and out_dir is not None:
        _CURRENT[0].out_dir = Path(out_dir)
