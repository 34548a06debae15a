"""Random discrete targets beyond vifit's own sum over states, with exact log Z by a transfer
matrix (`bench/random_targets.py --states`).

Each seed draws one of two kinds, plus a random constant in [-30, 30]:

- **grid**: binary spins s = 2x - 1 on a W x L lattice with open edges, W from 2 to 5 and
  W L from 23 to 60 sites (2^23 to 2^60 states: vifit sums at most 2^22), log p = sum over
  bonds of J s_i s_j + sum of h_i s_i. Couplings are ferromagnetic (J uniform on [0.5, 1.5]
  times c), a spin glass (J normal times c) or mixed, c in {0.1, 0.3, 0.5, 1}; fields normal
  with sd 0, 0.05 or 0.3. Strong ferromagnets have two modes (all up, all down).
- **chain**: a Potts chain of 15 to 40 sites of K = 3 to 5 states (3^15 and more), log p =
  sum of unary terms (normal, sd u) and of pair terms theta_i(x_i, x_{i+1}) (normal, sd c,
  or a shared diagonal bonus c for sticky chains), u in {0, 0.3, 1}, c in {0.3, 1, 2}.

log Z is a forward pass in float64 over columns (2^W states each) or sites. Each target also
has a ``relaxed_log_prob`` (the same polynomial on simplex points) for the relaxed estimator.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def spec(seed: int) -> dict:
    """The random discrete target of ``seed`` (NumPy parameters; see the module docstring)."""
    rng = np.random.default_rng(10_000 + seed)
    offset = float(rng.uniform(-30.0, 30.0))
    if rng.random() < 0.6:
        w = int(rng.choice([2, 3, 4, 5]))
        length = int(rng.integers(-(-23 // w), 60 // w + 1))
        c = float(rng.choice([0.1, 0.3, 0.5, 1.0]))
        style = str(rng.choice(["ferro", "glass", "mixed"]))
        n_bonds = (w - 1) * length + w * (length - 1)
        ferro = rng.uniform(0.5, 1.5, n_bonds) * c
        glass = rng.normal(size=n_bonds) * c
        j = {"ferro": ferro, "glass": glass,
             "mixed": np.where(rng.random(n_bonds) < 0.7, ferro, glass)}[style]
        h = rng.normal(size=w * length) * float(rng.choice([0.0, 0.05, 0.3]))
        return {"seed": seed, "kind": "grid", "w": w, "length": length, "c": c,
                "style": style, "j": j, "h": h, "offset": offset}
    n = int(rng.integers(15, 41))
    k = int(rng.choice([3, 4, 5]))
    u = float(rng.choice([0.0, 0.3, 1.0]))
    c = float(rng.choice([0.3, 1.0, 2.0]))
    sticky = bool(rng.random() < 0.4)
    pair = (np.broadcast_to(np.eye(k) * c, (n - 1, k, k)).copy() if sticky
            else rng.normal(size=(n - 1, k, k)) * c)
    return {"seed": seed, "kind": "chain", "n": n, "k": k, "u": u, "c": c, "sticky": sticky,
            "unary": rng.normal(size=(n, k)) * u, "pair": pair, "offset": offset}


def grid_bonds(w: int, length: int) -> np.ndarray:
    """``(n_bonds, 2)`` site pairs of a W x L open lattice, site = column * W + row: vertical
    bonds column by column, then horizontal ones."""
    idx = np.arange(w * length).reshape(length, w)
    vertical = np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], axis=1)
    horizontal = np.stack([idx[:-1].ravel(), idx[1:].ravel()], axis=1)
    return np.concatenate([vertical, horizontal])


def log_z(sp: dict) -> float:
    """The exact log Z of ``spec``, offset included (float64)."""
    if sp["kind"] == "chain":
        alpha = sp["unary"][0]
        for i in range(1, sp["n"]):
            alpha = logsumexp(alpha[:, None] + sp["pair"][i - 1], axis=0) + sp["unary"][i]
        return float(logsumexp(alpha)) + sp["offset"]
    w, length = sp["w"], sp["length"]
    bonds = grid_bonds(w, length)
    n_vert = (w - 1) * length
    cols = ((np.arange(2**w)[:, None] >> np.arange(w)) & 1) * 2.0 - 1.0  # (2^W, W) spins
    alpha = np.zeros(2**w)
    for col in range(length):
        vj = sp["j"][col * (w - 1):(col + 1) * (w - 1)]
        inner = cols[:, :-1] * cols[:, 1:] @ vj + cols @ sp["h"][col * w:(col + 1) * w]
        if col:
            hj = sp["j"][n_vert + (col - 1) * w:n_vert + col * w]
            between = (cols * hj) @ cols.T  # (prev, next)
            alpha = logsumexp(alpha[:, None] + between, axis=0)
        alpha = alpha + inner
    assert bonds.shape[0] == sp["j"].shape[0]
    return float(logsumexp(alpha)) + sp["offset"]


def target(sp: dict):
    """``spec`` as a ``vifit.DiscreteTarget`` (float32 JAX), with a relaxed log p."""
    import jax.numpy as jnp

    import vifit

    offset = sp["offset"]
    if sp["kind"] == "grid":
        bonds = jnp.asarray(grid_bonds(sp["w"], sp["length"]))
        j, h = jnp.asarray(sp["j"], jnp.float32), jnp.asarray(sp["h"], jnp.float32)

        def energy(s):
            return jnp.sum(j * s[bonds[:, 0]] * s[bonds[:, 1]]) + h @ s + offset

        return vifit.DiscreteTarget(lambda x: energy(2.0 * x - 1.0), sp["w"] * sp["length"],
                                    2, relaxed_log_prob=lambda p: energy(2.0 * p[:, 1] - 1.0),
                                    name=f"grid{sp['seed']}")
    unary = jnp.asarray(sp["unary"], jnp.float32)
    pair = jnp.asarray(sp["pair"], jnp.float32)
    n, k = sp["n"], sp["k"]

    def relaxed(p):  # p (n, k) on the simplex; one-hot rows give log p exactly
        return (jnp.sum(unary * p) + jnp.einsum("ia,iab,ib->", p[:-1], pair, p[1:]) + offset)

    return vifit.DiscreteTarget(lambda x: relaxed(jnp.eye(k)[x]), n, k,
                                relaxed_log_prob=relaxed, name=f"chain{sp['seed']}")


def describe(sp: dict) -> str:
    if sp["kind"] == "grid":
        return (f"grid {sp['w']}x{sp['length']} {sp['style']} c {sp['c']:g} "
                f"h sd {np.std(sp['h']):.2f}")
    return (f"chain {sp['n']} sites x {sp['k']} {'sticky' if sp['sticky'] else 'random'} "
            f"c {sp['c']:g} u {sp['u']:g}")
