"""Figures for a trained VAE (matplotlib, Agg): samples, reconstructions, and for a 2-D
latent space the encoded test set coloured by label and a decoded manifold grid."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from vifit.amortized.evaluate import posterior_means
from vifit.amortized.model import VAE


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@eqx.filter_jit
def _sample(model: VAE, key: jax.Array, n: int) -> jax.Array:
    return model.sample(key, n)


@eqx.filter_jit
def _decode(model: VAE, z: jax.Array) -> jax.Array:
    return model.decode_mean(z)


@eqx.filter_jit
def _reconstruct(model: VAE, x: jax.Array, key: jax.Array) -> jax.Array:
    return jax.vmap(model.reconstruct)(x, jax.random.split(key, x.shape[0]))


def _tile(images: np.ndarray, shape: tuple[int, int], cols: int) -> np.ndarray:
    """``(n, h*w)`` images into one ``(rows*h, cols*w)`` mosaic with 1-pixel gaps."""
    h, w = shape
    n = len(images)
    rows = -(-n // cols)
    canvas = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = img.reshape(h, w)
    return canvas


def _show(ax, canvas: np.ndarray, vmax: float | None) -> None:
    ax.imshow(canvas, cmap="gray_r", vmin=0.0, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _vmax(model: VAE) -> float | None:
    if model.likelihood.name == "categorical":
        return float(model.likelihood.outputs_per_dim - 1)
    return 1.0 if model.likelihood.name == "bernoulli" else None


def plot_samples(model: VAE, key: jax.Array, shape: tuple[int, int], path: Path,
                 n: int = 64) -> Path:
    """E[x | z] for ``n`` draws z ~ N(0, I)."""
    plt = _plt()
    x = np.asarray(_sample(model, key, n))
    fig, ax = plt.subplots(figsize=(6, 6))
    _show(ax, _tile(x, shape, int(np.ceil(np.sqrt(n)))), _vmax(model))
    ax.set_title("samples: E[x | z], z ~ N(0, I)")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_reconstructions(model: VAE, x: np.ndarray, key: jax.Array, shape: tuple[int, int],
                         path: Path, n: int = 16) -> Path:
    """Rows of data (top) and their reconstructions E[x | z = E_q[z | x]] (bottom)."""
    plt = _plt()
    x = np.asarray(x[:n], dtype=np.float32)
    rec = np.asarray(_reconstruct(model, jax.numpy.asarray(x), key))
    cols = min(len(x), 8)
    fig, axes = plt.subplots(2, 1, figsize=(cols, 2.6 * max(1, len(x) // cols)))
    _show(axes[0], _tile(x, shape, cols), _vmax(model))
    axes[0].set_title("data")
    _show(axes[1], _tile(rec, shape, cols), _vmax(model))
    axes[1].set_title("reconstructions")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_latent_space(model: VAE, x: np.ndarray, labels: np.ndarray | None, key: jax.Array,
                      path: Path) -> Path:
    """E_q[z | x] of each example in a 2-D latent space, coloured by label."""
    plt = _plt()
    z = posterior_means(model, np.asarray(x), key)
    fig, ax = plt.subplots(figsize=(6, 5))
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=6, alpha=0.7)
    else:
        sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=6, alpha=0.8)
        fig.colorbar(sc, ax=ax, label="label")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title("held-out data in latent space: E_q[z | x]")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_manifold(model: VAE, shape: tuple[int, int], path: Path, n: int = 15) -> Path:
    """E[x | z] on an n x n grid of z at the prior's quantiles 0.05..0.95 (Kingma & Welling's
    figure)."""
    from scipy.stats import norm

    plt = _plt()
    q = norm.ppf(np.linspace(0.05, 0.95, n))
    zz = np.array([[a, b] for b in q[::-1] for a in q], dtype=np.float32)
    x = np.asarray(_decode(model, jax.numpy.asarray(zz)))
    fig, ax = plt.subplots(figsize=(6, 6))
    _show(ax, _tile(x, shape, n), _vmax(model))
    ax.set_title("decoded manifold: E[x | z] on a grid of prior quantiles")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_history(history: list[dict], path: Path) -> Path:
    """The training bound per epoch and the held-out bound where evaluated."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ep, [h["train_bound"] for h in history], label="train (running)")
    held = [(h["epoch"], h["heldout_bound"], h["heldout_se"]) for h in history
            if "heldout_bound" in h]
    if held:
        e, v, s = map(np.asarray, zip(*held))
        ax.errorbar(e, v, yerr=s, fmt="o-", ms=3, label="held-out")
    ax.set_xlabel("epoch")
    ax.set_ylabel("bound (nats per example)")
    ax.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def write_plots(model: VAE, x: np.ndarray, labels: np.ndarray | None,
                image_shape: tuple[int, int] | None, history: list[dict], out: Path,
                key: jax.Array) -> list[Path]:
    """All figures that apply: image plots need ``image_shape``; latent plots a 2-D latent."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    k1, k2, k3 = jax.random.split(key, 3)
    paths = []
    if history:
        paths.append(plot_history(history, out / "history.png"))
    if image_shape is not None:
        paths.append(plot_samples(model, k1, image_shape, out / "samples.png"))
        paths.append(plot_reconstructions(model, x, k2, image_shape, out / "reconstructions.png"))
    if model.latent_dim == 2:
        paths.append(plot_latent_space(model, x, labels, k3, out / "latent.png"))
        if image_shape is not None:
            paths.append(plot_manifold(model, image_shape, out / "manifold.png"))
    return paths
