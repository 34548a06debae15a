"""Bayesian logistic regression on 10 million rows, read from .npy files by memory map.

    python docs/examples/logreg_10m.py        # writes X.npy (0.8 GB) and y.npy next to it
    vifit fit docs/examples/logreg_10m.py     # a data model: fitted on minibatches

vifit detects a data model from what the file defines: log_prior, log_lik, data and dim.
"""

from pathlib import Path

import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).parent
N, dim = 10_000_000, 20


def log_prior(z):
    return -0.5 * jnp.sum(z**2)


def log_lik(z, batch):
    eta = batch["X"] @ z
    return batch["y"] * eta - jnp.logaddexp(0.0, eta)


def write_data(seed: int = 1, chunk: int = 1_000_000) -> None:
    rng = np.random.default_rng(seed)
    x_file = np.lib.format.open_memmap(HERE / "X.npy", mode="w+", dtype=np.float32,
                                       shape=(N, dim))
    y_file = np.lib.format.open_memmap(HERE / "y.npy", mode="w+", dtype=np.float32, shape=(N,))
    beta = rng.normal(size=dim) / np.sqrt(dim)
    for start in range(0, N, chunk):
        x = rng.normal(size=(chunk, dim)).astype(np.float32)
        x_file[start:start + chunk] = x
        y_file[start:start + chunk] = rng.random(chunk) < 1 / (1 + np.exp(-x @ beta))
    x_file.flush()
    y_file.flush()


if __name__ == "__main__":
    write_data()
elif (HERE / "X.npy").exists():
    data = {"X": np.load(HERE / "X.npy", mmap_mode="r"), "y": np.load(HERE / "y.npy", mmap_mode="r")}
else:
    raise FileNotFoundError(f"run `python {__file__}` first to write the data")
