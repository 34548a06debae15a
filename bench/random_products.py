"""Random targets in 3 to 20 dimensions with exact log Z: products of random one-dimensional
densities, turned by a random rotation (`bench/random_targets.py --products`).

Each coordinate is, before the rotation, one of

- a Gaussian (sd from 0.03 to 30),
- a Student-t (df 1.5, 3 or 8; scale as the Gaussian's),
- a log-gamma, the log of a Gamma(a) variable, density exp(a u - e^u) / Gamma(a), a in 0.1
  to 10 (skewed: a long left tail, e^u climbing on the right),
- a two-component Gaussian mixture, weights 5% to 95%, components 0 to 8 of their sds apart
  (sds in ratio up to 3): two modes when far apart, so k such coordinates give 2^k modes,

scaled by a random factor in [0.03, 30] (the scales of a coordinate differ by up to 1000) and
shifted. With probability one half the product is turned by a random orthogonal matrix, which
keeps the volume, so log Z is the random constant in [-30, 30] added to every density: exact.
"""

from __future__ import annotations

import math

import numpy as np


def spec(seed: int) -> dict:
    """The random product of ``seed`` (NumPy parameters; see the module docstring)."""
    rng = np.random.default_rng(20_000 + seed)
    d = int(rng.choice([3, 5, 10, 20]))
    coords = []
    for _ in range(d):
        kind = str(rng.choice(["gauss", "t", "loggamma", "mix"], p=[0.3, 0.25, 0.25, 0.2]))
        c: dict = {"kind": kind, "scale": float(np.exp(rng.uniform(np.log(0.03), np.log(30)))),
                   "shift": float(rng.normal() * 5)}
        if kind == "t":
            c["df"] = float(rng.choice([1.5, 3.0, 8.0]))
        elif kind == "loggamma":
            c["a"] = float(np.exp(rng.uniform(np.log(0.1), np.log(10))))
        elif kind == "mix":
            c.update(w=float(rng.uniform(0.05, 0.95)), sep=float(rng.uniform(0, 8)),
                     ratio=float(np.exp(rng.uniform(-np.log(3), np.log(3)))))
        coords.append(c)
    rotate = bool(rng.random() < 0.5)
    rot = np.linalg.qr(rng.normal(size=(d, d)))[0] if rotate else np.eye(d)
    return {"seed": seed, "d": d, "coords": coords, "rotate": rotate, "rot": rot,
            "offset": float(rng.uniform(-30, 30))}


def log_density(sp: dict):
    """log p of ``spec`` (float32 JAX), normalized up to its offset: each coordinate's density
    of u = (x - shift) / scale, less log scale, at x = R^T z."""
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    rot = jnp.asarray(sp["rot"], jnp.float32)
    parts = []
    for i, c in enumerate(sp["coords"]):
        base = -math.log(c["scale"])
        kind = c["kind"]
        if kind == "gauss":
            def part(u, base=base):
                return base - 0.5 * u * u - 0.5 * math.log(2 * math.pi)
        elif kind == "t":
            nu = c["df"]
            base += math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)

            def part(u, base=base, nu=nu):
                return base - 0.5 * (nu + 1) * jnp.log1p(u * u / nu)
        elif kind == "loggamma":
            a = c["a"]
            base -= math.lgamma(a)

            def part(u, base=base, a=a):
                return base + a * u - jnp.exp(u)
        else:
            w, sep, ratio = c["w"], c["sep"], c["ratio"]
            lw = jnp.asarray([math.log(w), math.log(1 - w)], jnp.float32)
            mu = jnp.asarray([0.0, sep], jnp.float32)
            sd = jnp.asarray([1.0, ratio], jnp.float32)

            def part(u, base=base, lw=lw, mu=mu, sd=sd):
                r = (u - mu) / sd
                return base + logsumexp(lw - 0.5 * r * r - jnp.log(sd)
                                        - 0.5 * math.log(2 * math.pi))
        parts.append((i, c["shift"], c["scale"], part))
    offset = sp["offset"]

    def log_p(z):
        x = rot.T @ z
        return sum(part((x[i] - shift) / scale) for i, shift, scale, part in parts) + offset

    return log_p


def modes(sp: dict) -> int:
    """How many modes the product has: 2^(mixture coordinates whose components separate)."""
    two = 0
    for c in sp["coords"]:
        if c["kind"] == "mix":
            u = np.linspace(-6, c["sep"] + 6 * max(1, c["ratio"]), 20001)
            r1, r2 = u, (u - c["sep"]) / c["ratio"]
            dens = c["w"] * np.exp(-0.5 * r1**2) + (1 - c["w"]) * np.exp(-0.5 * r2**2) / c["ratio"]
            peaks = np.sum((dens[1:-1] > dens[:-2]) & (dens[1:-1] > dens[2:]))
            two += peaks > 1
    return 2**two


def describe(sp: dict) -> str:
    kinds = [c["kind"] + (f"(df {c['df']:g})" if "df" in c else "") for c in sp["coords"]]
    counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
    scales = [c["scale"] for c in sp["coords"]]
    return (f"{'rotated ' if sp['rotate'] else ''}product of "
            + ", ".join(f"{n} {k}" for k, n in counts.items())
            + f"; scales {min(scales):.2g}-{max(scales):.2g}; modes {modes(sp)}")
