"""Benchmark: discrete targets with several modes, where a factorized q settles on one.

For each target (log Z exact by enumeration): `vifit.fit(t, seed=s)` then `vifit.evidence(t,
fit, seed=s)`; the fit's verdict, the modes its search over states found and q covers, the share
of the mass it says q misses, the log Z errors of q's own estimate, of the fit's check
(importance sampling from q joined by the modes found), and of `vifit evidence`'s recommended
estimate, with their verdicts (docs/evidence.md, "Modes over states").

    PYTHONPATH=src python bench/state_modes.py [--seeds 1] [--markdown]
"""

from __future__ import annotations

import argparse
import time

import vifit
from vifit.examples import get_example
from vifit.examples.ising import make

def spike(n_states: int = 100, share: float = 0.3) -> vifit.DiscreteTarget:
    """Three sites of ``n_states`` states: a smooth bump, and one state far from it holding
    ``share`` of the mass, which a climb by single-site changes reaches only from a start
    that shares two of its sites with it."""
    import math

    import jax.numpy as jnp

    sd, centre = n_states / 10, (n_states - 1) / 2
    at = jnp.array([10, 47, 84]) % n_states
    log_spike = 3 * math.log(math.sqrt(2 * math.pi) * sd) + math.log(share / (1 - share))

    def log_prob(x):
        smooth = -0.5 * jnp.sum(((x - centre) / sd) ** 2)
        return jnp.where(jnp.all(x == at), jnp.logaddexp(smooth, log_spike), smooth)

    target = vifit.DiscreteTarget(log_prob, n_sites=3, n_states=n_states, name="spike")
    target.exact.update(vifit.enumerate_exact(target))
    return target


TARGETS = {
    "ising_cold": lambda: make(coupling=0.5, field=0.0),
    "ising_cold_field": lambda: make(coupling=0.5, field=0.05),
    "ising": lambda: make(),
    "mixture_labels": lambda: get_example("mixture_labels"),
    "spike": spike,
}


def row(name: str, seed: int) -> dict:
    target = TARGETS[name]()
    exact = float(target.exact["log_z"])
    t0 = time.perf_counter()
    fit = vifit.fit(target, seed=seed, progress=False)
    fit_s = time.perf_counter() - t0
    ev = vifit.evidence(target, fit, seed=seed)
    modes = fit.info.get("modes") or {}
    joined = modes.get("log_z_with_modes") or {}
    rec = ev.estimates[ev.recommended]
    return {"target": name, "seed": seed, "states": target.num_states(),
            "summed": "enumeration" in fit.info, "fit": fit.verdict.label,
            "q err": fit.log_z - exact, "found": modes.get("found"),
            "covered": modes.get("covered_by_q"),
            "missed": modes.get("missed_mass_fraction"), "by": modes.get("mass_by", "laplace"),
            "joined err": joined.get("log_z", float("nan")) - exact,
            "joined se": joined.get("se", float("nan")), "evidence": ev.verdict.label,
            "recommended": ev.recommended, "evidence err": rec.estimate - exact,
            "evidence se": rec.se, "fit s": fit_s}


def render(rows: list[dict], markdown: bool) -> str:
    cols = list(rows[0])

    def cell(v):
        if isinstance(v, float):
            return f"{v:+.3f}" if abs(v) < 100 else f"{v:.1f}"
        return "-" if v is None else str(v)

    lines = [[c for c in cols]] + [[cell(r[c]) for c in cols] for r in rows]
    if markdown:
        out = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(cols)]
        return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines[1:]])
    widths = [max(len(line[i]) for line in lines) for i in range(len(cols))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("targets", nargs="*", default=list(TARGETS))
    args = parser.parse_args()
    rows = [row(name, seed) for name in args.targets for seed in range(args.seeds)]
    print(render(rows, args.markdown))


if __name__ == "__main__":
    main()
