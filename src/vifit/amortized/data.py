"""Data sets for the amortized models: the built-in 8x8 digits, a user's arrays, a local
binarized MNIST. Every loader returns a ``Dataset`` with a fixed train/test split.

Specs understood by ``load_dataset`` (and the CLI's ``--data``):

- ``digits`` (default): scikit-learn's bundled 8x8 digits (1,797 images; shipped inside
  scikit-learn, no download), binarized with the fixed rule ``pixel >= 8`` (of 0..16).
- ``digits-raw``: the same images with their 17 grey levels 0..16 (categorical data).
- ``binarized_mnist:PATH``: the bit-packed ``.npz`` of the fixed binarization of MNIST
  (keys ``train``, ``valid``, ``test``; 98 bytes per image, ``np.unpackbits`` gives 784 pixels).
- ``PATH.npy``: one array ``(n, ...)``; ``PATH.npz``: either keys ``train`` and optionally
  ``test``, ``valid`` (and ``train_labels``, ``test_labels``, ``valid_labels``), or a key ``x``
  (and ``labels``). Arrays of shape ``(n, h, w)`` are images. Without a ``test`` array the
  split is fixed: every fifth example (indices 4, 9, 14, ...) is held out.

The data kind is read from the values: only 0 and 1: ``binary``; other integer dtypes:
``discrete`` with categories 0..max; floating point: ``real``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from vifit.errors import VifitError


class DataError(VifitError, ValueError):
    """A data file or spec that cannot be used as given."""


class Dataset(NamedTuple):
    name: str
    train: np.ndarray  # (n_train, D): uint8 for binary/discrete data, float32 for real
    test: np.ndarray  # (n_test, D)
    kind: str  # "binary" | "discrete" | "real"
    n_categories: int | None = None  # discrete data: values are 0..n_categories-1
    image_shape: tuple[int, int] | None = None  # (h, w) when rows are flattened images
    valid: np.ndarray | None = None  # (n_valid, D): for periodic evaluation, when given
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

    @property
    def heldout(self) -> np.ndarray:
        """What periodic evaluation during training uses: ``valid`` if any, else ``test``."""
        return self.valid if self.valid is not None else self.test


DIGITS_THRESHOLD = 8  # of 16: the fixed binarization of the digits


def fixed_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)``: every fifth example (4, 9, 14, ...) is held out."""
    idx = np.arange(n)
    return idx[idx % 5 != 4], idx[idx % 5 == 4]


def spread_subset(x: np.ndarray, n: int | None) -> np.ndarray:
    """``n`` rows of ``x`` evenly spaced over it (all of ``x`` when ``n`` is None or large).
    A prefix can mislead: the first 1,000 MNIST test images carry about 30% more ink than
    the rest, and a VAE's ELBO on them was about 8 nats lower in our runs."""
    if n is None or n >= len(x):
        return x
    return x[np.unique(np.linspace(0, len(x) - 1, n).round().astype(int))]


def load_digits(binarize: bool = True) -> Dataset:
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:
        raise DataError(
            "the built-in digits data ship with scikit-learn, which is not installed; "
            "pip install 'vifit[vae]' (or scikit-learn), or pass your own --data file."
        ) from exc
    bunch = sk_load_digits()
    images = np.asarray(bunch.data).astype(np.uint8)  # (1797, 64) grey levels 0..16
    labels = np.asarray(bunch.target).astype(np.int64)
    tr, te = fixed_split(len(images))
    if binarize:
        x = (images >= DIGITS_THRESHOLD).astype(np.uint8)
        return Dataset("digits", x[tr], x[te], "binary", image_shape=(8, 8),
                       train_labels=labels[tr], test_labels=labels[te])
    return Dataset("digits-raw", images[tr], images[te], "discrete", n_categories=17,
                   image_shape=(8, 8), train_labels=labels[tr], test_labels=labels[te])


def load_binarized_mnist(path: str | Path) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"binarized MNIST file {str(path)!r} not found.")
    with np.load(path) as f:
        missing = {"train", "valid", "test"} - set(f.files)
        if missing:
            raise DataError(f"{path} lacks the keys {sorted(missing)}; expected the bit-packed "
                            "train/valid/test arrays of the fixed binarization.")
        parts = {k: np.unpackbits(f[k], axis=1)[:, :784] for k in ("train", "valid", "test")}
    if parts["train"].shape[1] != 784:
        raise DataError(f"{path}: rows unpack to {parts['train'].shape[1]} pixels, not 784.")
    return Dataset("binarized_mnist", parts["train"], parts["test"], "binary",
                   image_shape=(28, 28), valid=parts["valid"])


def _kind(arrays: list[np.ndarray], where: str) -> tuple[str, int | None]:
    allx = np.concatenate([a.reshape(len(a), -1) for a in arrays])
    if np.issubdtype(allx.dtype, np.floating) and not np.all(np.isfinite(allx)):
        raise DataError(f"{where} holds NaN or infinite values; remove or impute them.")
    if np.all((allx == 0) | (allx == 1)):
        return "binary", None
    if np.issubdtype(allx.dtype, np.integer) or allx.dtype == np.bool_:
        if allx.min() < 0:
            raise DataError(f"{where}: integer data must be categories 0..C-1, found {allx.min()}.")
        return "discrete", int(allx.max()) + 1
    if not np.issubdtype(allx.dtype, np.floating):
        raise DataError(f"{where} has dtype {allx.dtype}; give numbers (float or int arrays).")
    return "real", None


def _flatten(a: np.ndarray, kind: str, where: str) -> np.ndarray:
    if a.ndim < 2:
        raise DataError(f"{where}: expected examples along the first axis, shape (n, ...), got "
                        f"{a.shape}.")
    a = a.reshape(len(a), -1)
    return a.astype(np.float32) if kind == "real" else a.astype(np.uint8 if a.max() < 256 else np.int32)


def load_arrays(path: str | Path) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} not found.")
    labels: dict[str, np.ndarray | None] = {"train": None, "test": None, "valid": None}
    if path.suffix == ".npy":
        x = np.load(path, allow_pickle=False)
        tr, te = fixed_split(len(x))
        parts = {"train": x[tr], "test": x[te], "valid": None}
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            if "train" in keys:
                parts = {k: (f[k] if k in keys else None) for k in ("train", "test", "valid")}
                for k in labels:
                    labels[k] = f[f"{k}_labels"] if f"{k}_labels" in keys else None
                if parts["test"] is None:
                    tr, te = fixed_split(len(parts["train"]))
                    lab = labels["train"]
                    parts["train"], parts["test"] = parts["train"][tr], parts["train"][te]
                    if lab is not None:
                        labels["train"], labels["test"] = lab[tr], lab[te]
            elif "x" in keys:
                x = f["x"]
                lab = f["labels"] if "labels" in keys else None
                tr, te = fixed_split(len(x))
                parts = {"train": x[tr], "test": x[te], "valid": None}
                if lab is not None:
                    labels["train"], labels["test"] = lab[tr], lab[te]
            else:
                raise DataError(f"{path} has keys {sorted(keys)}; name the training array "
                                "'train' (optionally 'test', 'valid') or 'x'.")
    else:
        raise DataError(f"{path}: give a .npy or .npz file (or --data digits).")
    if len(parts["train"]) < 2 or len(parts["test"]) < 1:
        raise DataError(f"{path}: too few examples to train and hold out ({len(parts['train'])}).")
    present = [a for a in parts.values() if a is not None]
    shapes = {a.shape[1:] for a in present}
    if len(shapes) != 1:
        raise DataError(f"{path}: train/test/valid shapes disagree: {sorted(shapes)}.")
    kind, n_cat = _kind(present, str(path))
    shape = present[0].shape[1:]
    image_shape = tuple(int(s) for s in shape) if len(shape) == 2 else None
    flat = {k: (None if a is None else _flatten(a, kind, str(path))) for k, a in parts.items()}
    return Dataset(path.stem, flat["train"], flat["test"], kind, n_categories=n_cat,
                   image_shape=image_shape, valid=flat["valid"], train_labels=labels["train"],
                   test_labels=labels["test"])


def load_dataset(spec: str = "digits") -> Dataset:
    """A Dataset from a spec (see the module docstring)."""
    if spec == "digits":
        return load_digits(binarize=True)
    if spec == "digits-raw":
        return load_digits(binarize=False)
    if spec.startswith("binarized_mnist:"):
        return load_binarized_mnist(spec.split(":", 1)[1])
    if spec.endswith((".npy", ".npz")) or Path(spec).exists():
        return load_arrays(spec)
    raise DataError(f"unknown data {spec!r}; use digits, digits-raw, binarized_mnist:PATH, "
                    "or a .npy/.npz file.")
