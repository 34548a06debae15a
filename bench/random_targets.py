"""Audit: `vifit.fit(target, "auto")` on random normalized densities in one and two dimensions,
where "good" is a claim vifit can make, against their exact log Z. It looks for the worst
defect there is: a "good" verdict (or an ELBO, printed as a lower bound) that is wrong.

    PYTHONPATH=src .venv/bin/python bench/random_targets.py                 # seeds 1-60
    PYTHONPATH=src .venv/bin/python bench/random_targets.py --seeds 61-120 --jobs 2
    ... --markdown        the table in Markdown
    ... --json FILE       every row as JSON
    ... --timeout 300     seconds per target (a hang or overrun is a failed row)
    ... --evidence        also `vifit.evidence` on each fit: its verdict, recommended
                          estimate and every bound it stands behind, checked against log Z
    ... --models          random NumPyro models with constrained sites instead, fitted
                          through `vifit.from_numpyro` (bench/random_models.py)
    ... --data            random conjugate DataTargets of 1,000 to 300,000 float32 rows
                          (Gamma-Poisson, Normal-Gamma, Beta-Bernoulli; random_models.py)
    ... --pymc            the same random models written in PyMC, through `vifit.from_pymc`
                          (PyMC's own transforms: log-odds, interval, simplex)
    ... --states          random discrete targets beyond vifit's own sum over states (Ising
                          grids of 23 to 60 spins, Potts chains; bench/random_states.py)
    ... --products        random targets in d = 3 to 20: rotated products of one-dimensional
                          Gaussians, Student-t, log-gammas and two-mode mixtures, scales 0.03
                          to 30 (bench/random_products.py)
    ... --fit '{"family": "meanfield", "objective": "renyi"}'
                          keyword arguments of `vifit.fit` in place of its default "auto"
                          (a family, objective, estimator or optimizer a user may choose)

Each target (``spec(seed)``) is a mixture of 1 to 3 components with Dirichlet weights (each at
least 1%), in d = 1 (30%) or 2: Gaussians with random rotations and sds from 0.03 to 5 (axis
ratios up to e^3), Student-t (df 1, 1.5, 3 or 8) and, in d = 2, bananas (a Gaussian frame bent
by r_2 -> r_2 - b r_1^2 + b, b from 0.2 to 2 over the component's scale: the bend preserves
volume), their locations spread 0, 3, 10 or 50 units, plus a random constant in [-30, 30].
Every component is normalized, so log Z is that constant exactly. A row is **wrong** when the
verdict is "good" and log Z is off by more than max(0.1, 4 se), or when the ELBO less 4 of its
standard errors lies above log Z; with ``--evidence`` also when the evidence's verdict is
"good" and its recommended estimate is off by that much, or when a bound it stands behind
(kind "lower" or "upper", and so its bracket) lies beyond log Z by more than 4 of its
standard errors. Each target runs in a child process of its own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def spec(seed: int) -> dict:
    """The random target of ``seed`` (NumPy parameters; see the module docstring)."""
    rng = np.random.default_rng(seed)
    d = int(rng.choice([1, 2], p=[0.3, 0.7]))
    k = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
    w = rng.dirichlet(np.ones(k) * rng.choice([0.5, 2.0]))
    w = np.maximum(w, 0.01)
    w /= w.sum()
    spread = float(rng.choice([0.0, 3.0, 10.0, 50.0]))
    comps = []
    for _ in range(k):
        kinds = ["gauss", "t", "banana", "gauss"] if d == 2 else ["gauss", "t"]
        kind = str(rng.choice(kinds))
        scale = float(np.exp(rng.uniform(np.log(0.03), np.log(5.0))))
        rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
        sds = scale * np.exp(rng.uniform(-1.5, 1.5, d)) if d == 2 else np.array([scale])
        comp = {"kind": kind, "mu": rng.normal(size=d) * spread,
                "L": np.linalg.cholesky((rot * sds**2) @ rot.T)}
        if kind == "t":
            comp["df"] = float(rng.choice([1.0, 1.5, 3.0, 8.0]))
        if kind == "banana":
            comp["b"] = float(rng.uniform(0.2, 2.0)) / scale
        comps.append(comp)
    return {"seed": seed, "d": d, "w": w, "comps": comps,
            "offset": float(rng.uniform(-30.0, 30.0))}


def log_density(sp: dict):
    """log p of ``spec``'s mixture (float32 JAX), normalized up to its offset."""
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    d, parts = sp["d"], []
    for comp, weight in zip(sp["comps"], sp["w"]):
        mu = jnp.asarray(comp["mu"], jnp.float32)
        inv = jnp.asarray(np.linalg.inv(comp["L"]), jnp.float32)
        base = math.log(weight) - float(np.sum(np.log(np.diag(comp["L"]))))
        if comp["kind"] == "gauss":
            def part(z, mu=mu, inv=inv, base=base):
                r = inv @ (z - mu)
                return base - 0.5 * r @ r - 0.5 * d * math.log(2 * math.pi)
        elif comp["kind"] == "t":
            nu = comp["df"]
            base += (math.lgamma((nu + d) / 2) - math.lgamma(nu / 2)
                     - 0.5 * d * math.log(nu * math.pi))

            def part(z, mu=mu, inv=inv, base=base, nu=nu):
                r = inv @ (z - mu)
                return base - 0.5 * (nu + d) * jnp.log1p(r @ r / nu)
        else:
            bend = comp["b"]

            def part(z, mu=mu, inv=inv, base=base, bend=bend):
                r = inv @ (z - mu)
                u = jnp.stack([r[0], r[1] - bend * r[0] ** 2 + bend])
                return base - 0.5 * u @ u - math.log(2 * math.pi)
        parts.append(part)
    offset = sp["offset"]
    return lambda z: logsumexp(jnp.stack([part(z) for part in parts])) + offset


def describe(sp: dict) -> str:
    out = []
    for comp, weight in zip(sp["comps"], sp["w"]):
        sd = np.sqrt(np.diag(comp["L"] @ comp["L"].T))
        df = f"(df {comp['df']:g})" if "df" in comp else ""
        out.append(f"{comp['kind']}{df} w {weight:.2f} at {np.round(comp['mu'], 1).tolist()} "
                   f"sd {np.round(sd, 3).tolist()}")
    return "; ".join(out)


def run_one(seed: int, with_evidence: bool = False, models: bool | str = False,
            fit_args: dict | None = None) -> dict:
    """Fit target ``seed`` in this process (and, ``with_evidence``, estimate its evidence);
    the row. ``models``: the random NumPyro model of ``seed`` instead of the mixture, or with
    ``"data"`` its random data target, with ``"states"`` its random discrete target.
    ``fit_args``: keyword arguments of ``vifit.fit``
    (default: family "auto")."""
    import vifit

    if models == "products":
        import random_products

        sp = random_products.spec(seed)
        target = vifit.Target(random_products.log_density(sp), dim=sp["d"],
                              name=f"product{seed}")
        truth, text = sp["offset"], random_products.describe(sp)
    elif models == "states":
        import random_states

        sp = random_states.spec(seed)
        target = random_states.target(sp)
        truth, text = random_states.log_z(sp), random_states.describe(sp)
    elif models == "data":
        import random_models

        sp = random_models.data_spec(seed)
        target = random_models.data_target(sp)
        truth, text = random_models.data_log_z(sp), random_models.data_describe(sp)
    elif models:
        import random_models

        sp = random_models.spec(seed)
        target = (vifit.from_pymc(random_models.pymc_model_of(sp), target_name=f"model{seed}")
                  if models == "pymc" else
                  vifit.from_numpyro(random_models.model_of(sp), target_name=f"model{seed}"))
        truth, text = random_models.log_z(sp), random_models.describe(sp)
    else:
        sp = spec(seed)
        target = vifit.Target(log_density(sp), dim=sp["d"], name=f"random{seed}")
        truth, text = sp["offset"], describe(sp)
    t0 = time.perf_counter()
    default = None if models == "states" else "auto"  # a discrete target: its own family
    fit = vifit.fit(target, **{"family": default, "seed": 0, "progress": False,
                               **(fit_args or {})})
    err = fit.log_z - truth
    modes = fit.info.get("modes") or {}
    row = {"seed": seed, "d": target.dim, "target": text, "family": fit.family.name,
            "verdict": fit.verdict.label, "log_z_error": float(err), "se": float(fit.log_z_se),
            "elbo_error": float(fit.elbo - truth), "elbo_se": float(fit.elbo_se),
            "khat": float(fit.khat), "modes_found": modes.get("found"),
            "seconds": time.perf_counter() - t0}
    if with_evidence:
        t0 = time.perf_counter()
        ev = vifit.evidence(target, fit, seed=0)
        # a bound is broken when it lies beyond log Z by more than 4 of its standard errors
        broken = [name for name, e in ev.estimates.items()
                  if (ev.kind(name) == "lower" and e.estimate - 4 * e.se > truth)
                  or (ev.kind(name) == "upper" and e.estimate + 4 * e.se < truth)]
        row.update(evidence_verdict=ev.verdict.label, evidence_recommended=ev.recommended,
                   evidence_error=float(ev.log_z - truth), evidence_se=float(ev.log_z_se),
                   broken_bounds=broken,
                   bracket=[None if v is None else float(v - truth)
                            for v in (ev.bracket["lower"], ev.bracket["upper"])],
                   evidence_seconds=time.perf_counter() - t0)
    return row


def wrong(row: dict) -> bool:
    if "error" in row:
        return False
    good_off = (row["verdict"] == "good"
                and abs(row["log_z_error"]) > max(0.1, 4 * row["se"]))
    evidence_off = (row.get("evidence_verdict") == "good"
                    and abs(row["evidence_error"]) > max(0.1, 4 * row["evidence_se"]))
    return (good_off or evidence_off or bool(row.get("broken_bounds"))
            or row["elbo_error"] - 4 * row["elbo_se"] > 0)


def run_child(seed: int, timeout: float, with_evidence: bool, models: bool | str,
              fit_args: str | None = None) -> dict:
    cmd = ([sys.executable, __file__, "--child", str(seed)] + (["--evidence"] * with_evidence)
           + ([f"--{models}"] if isinstance(models, str) else ["--models"] * bool(models))
           + (["--fit", fit_args] if fit_args else []))
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             env=dict(os.environ))
    except subprocess.TimeoutExpired:
        return {"seed": seed, "error": f"timed out after {timeout:g} s"}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        return {"seed": seed, "error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def seeds_of(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def table(rows: list[dict], markdown: bool) -> str:
    head = ["seed", "d", "family", "verdict", "log Z error", "se", "ELBO error", "k-hat",
            "modes", "s", "evidence: verdict (recommended)", "error", "bracket - log Z",
            "wrong", "target"]
    lines = []
    if markdown:
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            cells = [str(r["seed"]), "", "", "failed: " + r["error"]] + [""] * 11
        else:
            cells = [str(r["seed"]), str(r["d"]), r["family"], r["verdict"],
                     f"{r['log_z_error']:+.3f}", f"{r['se']:.3f}", f"{r['elbo_error']:+.3f}",
                     f"{r['khat']:.2f}", str(r["modes_found"]), f"{r['seconds']:.0f}"]
            if "evidence_verdict" in r:
                low, high = (("—" if v is None else f"{v:+.3f}") for v in r["bracket"])
                cells += [f"{r['evidence_verdict']} ({r['evidence_recommended']})",
                          f"{r['evidence_error']:+.3f}", f"({low}, {high})"]
            else:
                cells += ["", "", ""]
            cells += ["WRONG" if wrong(r) else "", r["target"]]
        lines.append("| " + " | ".join(cells) + " |" if markdown else "  ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="1-60")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--evidence", action="store_true")
    ap.add_argument("--models", action="store_true")
    ap.add_argument("--data", action="store_true")
    ap.add_argument("--states", action="store_true")
    ap.add_argument("--pymc", action="store_true")
    ap.add_argument("--products", action="store_true")
    ap.add_argument("--fit", help="keyword arguments of vifit.fit as JSON")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    kind = next((k for k in ("data", "states", "pymc", "products") if getattr(args, k)),
                args.models)
    fit_args = json.loads(args.fit) if args.fit else None
    if args.child is not None:
        print(json.dumps(run_one(args.child, args.evidence, kind, fit_args)))
        return
    seeds = seeds_of(args.seeds)
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        rows = list(pool.map(
            lambda s: run_child(s, args.timeout, args.evidence, kind, args.fit), seeds))
    print(table(rows, args.markdown))
    done = [r for r in rows if "error" not in r]
    labels = {lab: sum(r["verdict"] == lab for r in done)
              for lab in ("good", "usable with care", "not reliable")}
    good_within = sum(r["verdict"] == "good" and not wrong(r) for r in done)
    print(f"\n{len(done)} of {len(rows)} fitted; verdicts {labels}; wrong: "
          f"{sum(wrong(r) for r in done)}; \"good\" within max(0.1, 4 se): {good_within}; "
          f"off by more than 0.1 nats under any verdict: "
          f"{sum(abs(r['log_z_error']) > 0.1 for r in done)}; "
          f"{sum(r['seconds'] for r in done):.0f} s of fitting")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
