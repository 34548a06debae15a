"""Benchmark: targets with heavy tails and exact log Z, fitted by ``family="auto"``.

For each target: the family auto chose, the fit's verdict, k-hat, the fit's log Z error
(PSIS from q), the ELBO's gap to log Z (KL(q || p)), the tail check's flag and wall seconds,
and, with ``--families``, the same for fixed families (``fullrank``, ``realnvp``,
``heavytail`` and ``heavytail:tails=radial``) beside it (docs/families.md, "Heavy tails").

    PYTHONPATH=src python bench/heavy_tails.py [--seed 0] [--markdown] [--only t3_d20,cauchy_d4]
                                               [--families]

The targets: products of independent Student-t coordinates (t_3 in d = 20, t_2 in d = 6,
Cauchy in d = 4, and d = 5 coordinates with 1, 2, 4 and 30 degrees of freedom on scales from
0.1 to 10), a multivariate t_5 in d = 10 (one radial tail: the heavy-tailed family's radial form, not
its independent coordinates) and log-gamma coordinates (z = log x, x ~ Gamma(0.1):
an exponential left tail and a doubly exponential right one, which no symmetric family fits).
"""

from __future__ import annotations

import argparse
import math
import time

import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

import vifit


def _t_log_z(nu: np.ndarray, scale: np.ndarray) -> float:
    """log of the normalizing constant of prod_i (1 + (z_i / s_i)^2 / nu_i)^(-(nu_i + 1) / 2)."""
    return float(np.sum(gammaln(nu / 2) + 0.5 * np.log(nu * math.pi) - gammaln((nu + 1) / 2)
                        + np.log(scale)))


def _product_t(nu, scale) -> tuple[vifit.Target, float]:
    nu, scale = np.asarray(nu, float), np.asarray(scale, float)
    return (vifit.Target(lambda z: jnp.sum(-(nu + 1) / 2 * jnp.log1p((z / scale) ** 2 / nu)),
                         dim=nu.size), _t_log_z(nu, scale))


def _mvt(nu: float, d: int) -> tuple[vifit.Target, float]:
    a = np.random.default_rng(3).normal(size=(d, d))
    cov = a @ a.T / d + np.eye(d)
    prec = jnp.asarray(np.linalg.inv(cov))
    log_z = (gammaln(nu / 2) + d / 2 * math.log(nu * math.pi)
             + 0.5 * np.linalg.slogdet(cov)[1] - gammaln((nu + d) / 2))
    return vifit.Target(lambda z: -(nu + d) / 2 * jnp.log1p(z @ prec @ z / nu), dim=d), log_z


def _log_gamma(a: float, d: int) -> tuple[vifit.Target, float]:
    return vifit.Target(lambda z: jnp.sum(a * z - jnp.exp(z)), dim=d), d * float(gammaln(a))


TARGETS = {
    "t3_d20": lambda: _product_t(np.full(20, 3.0), np.ones(20)),
    "t2_d6": lambda: _product_t(np.full(6, 2.0), np.ones(6)),
    "cauchy_d4": lambda: _product_t(np.ones(4), np.ones(4)),
    "mixed_t_d5": lambda: _product_t([1.0, 4.0, 1.0, 30.0, 2.0], [0.1, 1.0, 10.0, 1.0, 1.0]),
    "mvt5_d10": lambda: _mvt(5.0, 10),
    "loggamma_d10": lambda: _log_gamma(0.1, 10),
}


def row(name: str, family: str, seed: int) -> dict:
    target, log_z = TARGETS[name]()
    target = vifit.Target(target.log_density, dim=target.dim, name=name)
    t0 = time.perf_counter()
    fit = vifit.fit(target, family, seed=seed, progress=False)
    chosen = (fit.info.get("auto") or {}).get("chosen") or fit.family.name
    return {"target": name, "d": target.dim, "asked": family, "family": chosen,
            "verdict": fit.verdict.label, "khat": fit.khat, "log Z err": fit.log_z - log_z,
            "KL": log_z - fit.elbo, "tails": (fit.info.get("tails") or {}).get("flag"),
            "s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="")
    ap.add_argument("--families", action="store_true",
                    help="also fit fullrank, realnvp and heavytail (both forms) on each target")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(TARGETS)
    families = ["auto"] + (["fullrank", "realnvp", "heavytail", "heavytail:tails=radial"]
                           if args.families else [])
    cols = ["target", "d", "asked", "family", "verdict", "khat", "log Z err", "KL", "tails", "s"]
    if args.markdown:
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for name in names:
        for family in families:
            r = row(name, family, args.seed)
            cells = [f"{r[c]:+.3f}" if c in ("log Z err", "KL") else f"{r[c]:.2f}"
                     if c == "khat" else f"{r[c]:.1f}" if c == "s" else str(r[c]) for c in cols]
            print("| " + " | ".join(cells) + " |" if args.markdown else "  ".join(cells),
                  flush=True)


if __name__ == "__main__":
    main()
