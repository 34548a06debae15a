"""The persistent compilation cache of the command line: compiled XLA programs are kept on
disk, so a second run of the same model compiles nothing it compiled before.

On by default for ``vifit`` commands, in ``$VIFIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/vifit/jax``,
else ``~/.cache/vifit/jax``. ``VIFIT_NO_CACHE=1`` (or ``vifit --no-cache ...``) turns it off; a
``JAX_COMPILATION_CACHE_DIR`` the user set is respected. The Python API leaves JAX's settings
alone (``vifit.cache.enable()`` turns the same cache on in a script). A cache directory is
trusted code: do not point it at a folder others can write to.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Every program is cached: reading one back is faster than compiling even the small ones.
MIN_COMPILE_SECONDS = 0.0


def user_cache_root() -> Path:
    """``$XDG_CACHE_HOME/vifit``, else ``~/.cache/vifit``: where vifit keeps per-user files."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vifit"


def default_dir() -> Path:
    if os.environ.get("VIFIT_CACHE_DIR"):
        return Path(os.environ["VIFIT_CACHE_DIR"])
    return user_cache_root() / "jax"


def enable(path: str | Path | None = None) -> Path | None:
    """Turn the persistent compilation cache on at ``path`` (default ``default_dir()``); the
    directory used, or None when it is switched off or cannot be created."""
    if os.environ.get("VIFIT_NO_CACHE", "").strip().lower() in ("1", "true", "yes"):
        return None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") and path is None:
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    where = Path(path) if path is not None else default_dir()
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: run without the cache rather than fail
    settings = {"JAX_COMPILATION_CACHE_DIR": str(where),
                "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": str(MIN_COMPILE_SECONDS),
                "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
    if "jax" in sys.modules:  # already imported (e.g. in-process): its config is live
        import jax

        jax.config.update("jax_compilation_cache_dir", str(where))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    else:  # read by JAX when it is imported
        os.environ.update(settings)
    return where


# LLVM's optimization level for XLA's CPU code. At the default (2) compiling is most of a
# first run's time; at 1 the auto fit of eight_schools compiled in 12.2 s instead of 16.0 s
# and ran as fast (2.65 s against 2.67 s), and bench/overhead.py's steps were 0-10% slower.
# A command-line run is mostly compiling, so the command line uses 1; the Python API leaves
# XLA's settings to the user.
CLI_OPT_LEVEL = 1

# XLA's legacy (non-MLIR) CPU fusion emitters compile much faster than the new ones: the cold
# `vifit fit eight_schools` took 10.5-11.6 s with them against 13.4-15.0 s (same answers, the
# warm run as fast), and bench/overhead.py's steps were 0-20% slower. jaxlib 0.10 knows the
# switch; 0.12 has dropped it (an unknown name in XLA_FLAGS aborts the process), so it is set
# only for the releases listed here.
LEGACY_EMITTERS_FLAG = "--xla_cpu_use_fusion_emitters=false"
LEGACY_EMITTERS_JAXLIB = ("0.10.",)


def _jaxlib_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jaxlib")
    except PackageNotFoundError:
        return ""


def fast_compile() -> None:
    """Ask XLA's CPU backend for quick compiling: LLVM level ``CLI_OPT_LEVEL``
    (``VIFIT_XLA_OPT_LEVEL`` sets another) and, at that level, the legacy fusion emitters where
    jaxlib has them. An ``xla_backend_optimization_level`` in the user's ``XLA_FLAGS`` leaves
    XLA's settings to the user. Takes effect if JAX has not yet started its backend (before the
    first computation)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" in flags:
        return
    level = os.environ.get("VIFIT_XLA_OPT_LEVEL", str(CLI_OPT_LEVEL)).strip()
    if not level.isdigit():
        return
    added = [f"--xla_backend_optimization_level={level}"]
    if (int(level) == CLI_OPT_LEVEL and "fusion_emitters" not in flags
            and _jaxlib_version().startswith(LEGACY_EMITTERS_JAXLIB)):
        added.append(LEGACY_EMITTERS_FLAG)
    os.environ["XLA_FLAGS"] = " ".join([flags, *added]).strip()
