"""Checkpoints: named pytrees of arrays plus JSON metadata in ONE ``.npz`` file, written
atomically (a temporary file in the same folder, flushed and fsynced, then ``os.replace``), so
that a run killed at any moment leaves either the previous checkpoint or the new one, never a
torn file.

Each group is stored leaf by leaf (``<group>_<i>``) in ``jax.tree.leaves`` order; loading
needs a template pytree of the same structure (rebuilt from the saved configuration), and
checks every leaf's shape and dtype against it. PRNG keys are stored as their key data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from vifit.errors import VifitError


class CheckpointError(VifitError, ValueError):
    """A checkpoint that is missing, unreadable or does not fit the model it is loaded into."""


def _is_key(leaf: Any) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _to_numpy(leaf: Any) -> np.ndarray:
    return np.asarray(jax.random.key_data(leaf) if _is_key(leaf) else leaf)


def save_checkpoint(path: str | Path, groups: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``groups`` (name -> pytree of arrays) and ``meta`` (JSON-able) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    for name, tree in groups.items():
        for i, leaf in enumerate(jax.tree.leaves(tree)):
            arrays[f"{name}_{i}"] = _to_numpy(leaf)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def read_meta(path: str | Path, hint: str = "train first (vifit vae train)") -> dict[str, Any]:
    """The JSON metadata of the checkpoint at ``path``; CheckpointError (ending in ``hint``)
    when there is none or it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}; {hint}.")
    try:
        with np.load(path, allow_pickle=False) as f:
            return json.loads(f["meta"].tobytes().decode())
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable vifit checkpoint ({exc}).") from exc


def load_group(path: str | Path, name: str, template: Any) -> Any:
    """The pytree ``name`` from the checkpoint, with the structure of ``template`` (arrays or
    ``jax.ShapeDtypeStruct`` leaves)."""
    leaves, treedef = jax.tree.flatten(template)
    with np.load(path, allow_pickle=False) as f:
        stored = sorted((k for k in f.files if k.startswith(f"{name}_")),
                        key=lambda k: int(k.rsplit("_", 1)[1]))
        if len(stored) != len(leaves):
            raise CheckpointError(
                f"{path}: {name} has {len(stored)} arrays but the model built from its "
                f"configuration has {len(leaves)}; the checkpoint belongs to another model."
            )
        out = []
        for i, leaf in enumerate(leaves):
            arr = f[f"{name}_{i}"]
            want = leaf if isinstance(leaf, jax.ShapeDtypeStruct) else _to_numpy(leaf)
            if arr.shape != want.shape or arr.dtype != want.dtype:
                raise CheckpointError(
                    f"{path}: {name} array {i} is {arr.dtype}{list(arr.shape)}, the model "
                    f"expects {want.dtype}{list(want.shape)}; the checkpoint belongs to another "
                    "model (or another float precision)."
                )
            if _is_key(leaf):
                out.append(jax.random.wrap_key_data(arr, impl=jax.random.key_impl(leaf)))
            else:
                out.append(jax.numpy.asarray(arr))
    return jax.tree.unflatten(treedef, out)


def load_array(path: str | Path, name: str) -> np.ndarray:
    """The single array stored as group ``name`` (a one-leaf pytree), whatever its shape."""
    with np.load(path, allow_pickle=False) as f:
        return np.array(f[f"{name}_0"])
