"""Benchmark: `vifit.fit(target, "auto")` then `vifit.evidence` on Gaussian mixtures with an
exact log Z: modes found against modes present, the log Z error of the recommended estimate,
whether every bound vifit stands behind holds, the verdict and the wall time; NumPyro's SVI
ELBO and BlackJAX Pathfinder's ELBO beside them (as in bench/evidence.py).

    PYTHONPATH=src taskset -c 1 python bench/evidence_mixtures.py             # every config
    PYTHONPATH=src taskset -c 1 python bench/evidence_mixtures.py k3_d2_s6    # some of them
    PYTHONPATH=src taskset -c 1 python bench/evidence_mixtures.py --markdown  # + Markdown
    ... --no-peers            skip NumPyro and Pathfinder
    ... --timeout=300         seconds per configuration (vifit and peers together)
    ... --json=FILE           also write every row as JSON
    ... --target-seed=N       another instance of each mixture (default 0: the table's)

The targets (``mixture(K, d, S, seed)``): K full-covariance Gaussian components in d
dimensions, weights proportional to 1, 2, ..., K in a seeded random order (smallest 2/(K(K+1)):
0.33 for K = 2, 0.1 for K = 4, 0.028 for K = 8), each component's covariance a random rotation
of eigenvalues log-spaced over a condition number of 10 times an overall scale drawn from
[0.5, 2] (so components differ in size too); means placed one by one, each next to a random
earlier one at 1 to 1.5 times the separation and no closer to any other, then all rescaled so
that the *minimum pairwise separation is exactly S*. The separation of components i and j is
|mu_i - mu_j| / max(sd_i(u), sd_j(u)), with sd_k(u) = sqrt(u' Sigma_k u) the sd of component k
along the unit vector u joining the means: S sds of either component along that line. A
seeded random constant in [-20, 20] is added to log p; the mixture is normalized, so
log Z = that constant exactly.

"Modes present" is not always K: two close components (S = 3 with unequal sizes and weights)
can merge into one mode. It is counted exactly enough for this purpose: the mean-shift fixed
point of a Gaussian mixture (Carreira-Perpinan 2000) is run from every component mean in float64
to convergence, the ends are grouped (within 1e-3 of the smallest sd), and only ends where the
Hessian of log p is negative definite count. Found modes are matched to the present ones by
location (nearest present mode, within 0.5 of the smallest sd, on the first 10 coordinates, which
is what ``info["modes"]`` keeps).

Each configuration runs in a child process of its own, under a timeout (a hang or an overrun
comes back as a failed row). The child pins itself to the first CPU it is allowed (so run the
whole script under ``taskset -c N``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_LOG_2PI = math.log(2.0 * math.pi)

# (K, d, S): 14 configurations covering K in {2, 3, 4, 8}, d in {2, 5, 10, 20}, S in {3, 6, 10}
# (not the full product of 48).
CONFIGS: list[tuple[int, int, float]] = [
    (2, 2, 3), (2, 2, 10), (3, 2, 6), (4, 2, 6), (8, 2, 6),
    (2, 5, 6), (4, 5, 6), (3, 5, 10), (8, 5, 3),
    (3, 10, 6), (4, 10, 3), (8, 10, 10),
    (2, 20, 6), (4, 20, 10),
]


def config_name(k: int, d: int, s: float) -> str:
    return f"k{k}_d{d}_s{s:g}"


NAMES = {config_name(*c): c for c in CONFIGS}


def _sd_along(cov: np.ndarray, u: np.ndarray) -> float:
    return float(np.sqrt(u @ cov @ u))


def separation(mu_i, mu_j, cov_i, cov_j) -> float:
    """|mu_i - mu_j| in units of the larger of the two components' sds along the line joining
    them."""
    delta = np.asarray(mu_i) - np.asarray(mu_j)
    dist = float(np.linalg.norm(delta))
    u = delta / dist
    return dist / max(_sd_along(cov_i, u), _sd_along(cov_j, u))


def min_separation(means, covs) -> float:
    k = len(means)
    return min(separation(means[i], means[j], covs[i], covs[j])
               for i in range(k) for j in range(i + 1, k))


def mixture_spec(k: int, d: int, sep: float, seed: int = 0, condition: float = 10.0) -> dict:
    """The mixture's parameters (numpy, float64): weights, means, covs, offset (see the module
    docstring for how they are drawn)."""
    rng = np.random.default_rng([seed, k, d, int(10 * sep)])
    weights = rng.permutation(np.arange(1, k + 1, dtype=float))
    weights /= weights.sum()
    covs = []
    for _ in range(k):
        rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
        eig = np.logspace(0.0, math.log10(condition), d) if d > 1 else np.ones(1)
        eig = eig / np.sqrt(eig[0] * eig[-1])  # geometric middle at 1
        eig = eig * rng.uniform(0.5, 2.0) ** 2  # overall size: sd scale in [0.5, 2]
        covs.append((rot * rng.permutation(eig)) @ rot.T)
    means = [np.zeros(d)]
    for i in range(1, k):
        for _ in range(10_000):
            j = int(rng.integers(len(means)))
            u = rng.normal(size=d)
            u /= np.linalg.norm(u)
            step = sep * rng.uniform(1.0, 1.5) * max(_sd_along(covs[i], u), _sd_along(covs[j], u))
            cand = means[j] + step * u
            if all(separation(cand, means[m], covs[i], covs[m]) >= sep for m in range(len(means))):
                means.append(cand)
                break
        else:
            raise RuntimeError(f"could not place component {i} of k={k}, d={d}, S={sep}")
    means = np.stack(means)
    means = means - weights @ means
    means *= sep / min_separation(means, covs)  # the minimum separation is exactly S
    offset = float(np.round(rng.uniform(-20.0, 20.0), 3))
    return {"k": k, "d": d, "sep": float(sep), "weights": weights, "means": means,
            "covs": np.stack(covs), "offset": offset}


def mixture(k: int, d: int, sep: float, seed: int = 0):
    """A ``vifit.Target`` for ``mixture_spec(k, d, sep, seed)``, with ``exact["log_z"]`` (the
    offset), ``exact["mean"]``, ``exact["cov"]`` and the spec under ``exact["spec"]``."""
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    import vifit

    spec = mixture_spec(k, d, sep, seed)
    chols = np.linalg.cholesky(spec["covs"])
    whiten = jnp.asarray(np.linalg.inv(chols))  # (K, d, d): W_k = L_k^-1
    mu = jnp.asarray(spec["means"])
    log_norm = jnp.asarray(np.log(spec["weights"]) - np.sum(np.log(np.diagonal(chols, 0, 1, 2)), 1)
                           - 0.5 * d * _LOG_2PI)
    offset = spec["offset"]

    def log_density(z):
        r = jnp.einsum("kij,kj->ki", whiten, z[None, :] - mu)  # a sum of squares: never > 0
        return logsumexp(log_norm - 0.5 * jnp.sum(r**2, axis=1)) + offset

    w, m, c = spec["weights"], spec["means"], spec["covs"]
    mean = w @ m
    cov = np.einsum("k,kij->ij", w, c) + np.einsum("k,ki,kj->ij", w, m - mean, m - mean)
    # The start is Target's default, the origin: the weighted centroid of the means, between
    # the modes rather than at one of them.
    return vifit.Target(log_density, dim=d, name=f"mixture_{config_name(k, d, sep)}",
                        exact={"log_z": offset, "mean": mean, "cov": cov, "spec": spec})


def true_modes(spec: dict) -> np.ndarray:
    """The modes of the mixture, from the mean-shift fixed point run from every component mean
    (float64): ``(n_modes, d)``."""
    w, m, c = spec["weights"], spec["means"], spec["covs"]
    prec = np.linalg.inv(c)
    logdet = np.linalg.slogdet(c)[1]
    d = m.shape[1]
    smallest_sd = float(np.sqrt(min(np.linalg.eigvalsh(ci)[0] for ci in c)))

    def resp(z):
        r = z[None, :] - m
        lp = np.log(w) - 0.5 * logdet - 0.5 * np.einsum("ki,kij,kj->k", r, prec, r)
        lp -= lp.max()
        p = np.exp(lp)
        return p / p.sum()

    ends = []
    for z in m.copy():
        for _ in range(20_000):
            r = resp(z)
            a = np.einsum("k,kij->ij", r, prec)
            new = np.linalg.solve(a, np.einsum("k,kij,kj->i", r, prec, m))
            if np.linalg.norm(new - z) < 1e-10 * smallest_sd:
                z = new
                break
            z = new
        ends.append(z)
    modes: list[np.ndarray] = []
    for z in ends:
        if any(np.linalg.norm(z - y) < 1e-3 * smallest_sd for y in modes):
            continue
        # Hessian of log p at z: sum_k r_k (P_k r_k' ... ) = E_r[g g'] - E_r[g] E_r[g]' - E_r[P]
        r = resp(z)
        g = -np.einsum("kij,kj->ki", prec, z[None, :] - m)  # grad log N_k
        eg = r @ g
        h = (np.einsum("k,ki,kj->ij", r, g, g) - np.outer(eg, eg)
             - np.einsum("k,kij->ij", r, prec))
        if np.all(np.linalg.eigvalsh(0.5 * (h + h.T)) < 0):
            modes.append(z)
    return np.stack(modes) if modes else np.zeros((0, d))


def match_modes(found_locs: list[list[float]], present: np.ndarray, smallest_sd: float) -> int:
    """How many distinct present modes some found mode lies at (first 10 coordinates, within
    0.5 of the smallest component sd)."""
    hit = set()
    p = present[:, :10]
    for loc in found_locs:
        dist = np.linalg.norm(p - np.asarray(loc)[None, : p.shape[1]], axis=1)
        j = int(np.argmin(dist))
        if dist[j] < 0.5 * smallest_sd:
            hit.add(j)
    return len(hit)


# --- one configuration (child process) -------------------------------------------------------

def bound_failures(ev, truth: float, z: float = 4.0) -> list[str]:
    """Every estimate vifit stands behind as a bound (kind lower/upper) that is on the wrong side
    of the truth by more than ``z`` standard errors: each one is a defect."""
    bad = []
    for name, e in ev.estimates.items():
        kind = ev.kind(name)
        if kind == "lower" and not e.estimate < truth + z * e.se:
            bad.append(f"{name} (lower) {e.estimate - truth:+.3f} ± {e.se:.3f}")
        if kind == "upper" and not e.estimate > truth - z * e.se:
            bad.append(f"{name} (upper) {e.estimate - truth:+.3f} ± {e.se:.3f}")
    return bad


def claimed_failures(ev, truth: float, z: float = 4.0) -> list[str]:
    """The same check for the bounds vifit marked unverified (what it claimed, had it not
    checked): failures here are the checks doing their job, not defects."""
    bad = []
    for name, e in ev.estimates.items():
        if ev.kind(name) != "unverified":
            continue
        if e.kind == "lower" and not e.estimate < truth + z * e.se:
            bad.append(f"{name} {e.estimate - truth:+.3f}")
        if e.kind == "upper" and not e.estimate > truth - z * e.se:
            bad.append(f"{name} {e.estimate - truth:+.3f}")
    return bad


def run_vifit(target, seed: int = 0) -> dict:
    import vifit

    truth = float(target.exact["log_z"])
    spec = target.exact["spec"]
    t0 = time.perf_counter()
    fit = vifit.fit(target, "auto", progress=False, seed=0)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev = vifit.evidence(target, fit, seed=seed)
    ev_s = time.perf_counter() - t0
    modes = fit.info.get("modes") or {}
    present = true_modes(spec)
    smallest_sd = float(np.sqrt(min(np.linalg.eigvalsh(c)[0] for c in spec["covs"])))
    found_locs = [m["location"] for m in modes.get("modes", [])]
    br = ev.bracket
    return {
        "truth": truth, "error": ev.log_z - truth, "se": ev.log_z_se,
        "recommended": ev.recommended, "verdict": ev.verdict.label,
        "verdict_text": ev.verdict.text,
        "family": fit.family.name, "chosen": fit.info.get("auto", {}).get("chosen"),
        "found": modes.get("found"), "present": int(present.shape[0]),
        "matched": match_modes(found_locs, present, smallest_sd),
        "covered_by_q": modes.get("covered_by_q"),
        "missed_mass_fraction": modes.get("missed_mass_fraction"),
        "unconverged": modes.get("unconverged"),
        "bracket": {k: (None if v is None else v - truth) for k, v in br.items()},
        "bound_failures": bound_failures(ev, truth),
        "unverified": {n: ev.verdict.unverified[n] for n in ev.verdict.unverified},
        "claimed_failures": claimed_failures(ev, truth),
        "estimates": {n: {"error": e.estimate - truth, "se": e.se, "kind": ev.kind(n)}
                      for n, e in ev.estimates.items()},
        "fit_s": fit_s, "evidence_s": ev_s,
        "decisions": [{k: r.get(k) for k in ("stage", "decision", "why", "seconds")}
                      for r in fit.info.get("auto", {}).get("decisions", [])],
    }


def run_peers(target) -> dict:
    """NumPyro SVI ELBO and Pathfinder ELBO errors, as bench/evidence.py makes them."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from evidence import numpyro_row, pathfinder_row

    truth = float(target.exact["log_z"])
    out = {}
    for key, peer in (("numpyro", numpyro_row), ("pathfinder", pathfinder_row)):
        try:
            _, _, _, value, se, secs, _ = peer(target)
            out[key] = {"error": value - truth, "se": se, "seconds": secs}
        except Exception as exc:  # a peer failing is a result
            out[key] = {"error": float("nan"), "failed": f"{type(exc).__name__}: {exc}"[:200]}
    return out


def _child(name: str, out: str, seed: int, peers: bool, target_seed: int = 0) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    k, d, s = NAMES[name]
    target = mixture(k, d, s, seed=target_seed)
    row = {"name": name, "k": k, "d": d, "sep": s}
    row["vifit"] = run_vifit(target, seed)
    Path(out).write_text(json.dumps(row, default=float))  # kept if a peer then hangs
    if peers:
        row["peers"] = run_peers(target)
        Path(out).write_text(json.dumps(row, default=float))


def run_one(name: str, seed: int, peers: bool, timeout: float, target_seed: int = 0) -> dict:
    with tempfile.TemporaryDirectory(prefix="vifit-mixbench-") as tmp:
        out = Path(tmp) / "row.json"
        cmd = [sys.executable, __file__, "--child", name, str(out), str(seed), str(int(peers)),
               str(target_seed)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=timeout)
            status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            status = f"timeout after {timeout:.0f} s"
        row = json.loads(out.read_text()) if out.exists() else {"name": name}
        row["status"] = status
        row["wall_s"] = time.perf_counter() - t0
        if status != "ok":
            lines = [ln for ln in (err or "").strip().splitlines() if ln.strip()]
            row["stderr_tail"] = lines[-3:]
        return row


# --- tables ----------------------------------------------------------------------------------

COLS = ("config", "K", "d", "S", "family", "modes found / present", "log Z error", "se",
        "verdict", "within 0.1", "bounds hold", "bracket (lower, upper) − truth", "fit s",
        "evidence s", "NumPyro ELBO err", "Pathfinder ELBO err")


def _f(x, fmt="+.3f"):
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def fmt_row(r: dict) -> tuple:
    v = r.get("vifit")
    if v is None:
        return (r["name"], *[""] * 4, r.get("status", "?"), *[""] * (len(COLS) - 6))
    found = f"{v['found']} / {v['present']}"
    if v["matched"] != v["present"] or v["found"] != v["present"]:
        found += f" ({v['matched']} matched)"
    ok = "yes" if abs(v["error"]) < 0.1 else "no"
    holds = "yes" if not v["bound_failures"] else "NO: " + "; ".join(v["bound_failures"])
    br = v["bracket"]
    bracket = f"({_f(br['lower'], '+.2f')}, {_f(br['upper'], '+.2f')})"
    peers = r.get("peers") or {}
    npy = _f(peers.get("numpyro", {}).get("error"))
    pf = _f(peers.get("pathfinder", {}).get("error"))
    if r.get("status", "ok") != "ok":
        pf += f" [{r['status']}]"
    return (r["name"], r["k"], r["d"], f"{r['sep']:g}", v["family"], found, _f(v["error"]),
            _f(v["se"], ".3f"), f"{v['verdict']} ({v['recommended']})", ok, holds, bracket,
            f"{v['fit_s']:.1f}", f"{v['evidence_s']:.1f}", npy, pf)


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLS) + " |", "|" + "---|" * len(COLS)]
    lines += ["| " + " | ".join(str(c) for c in fmt_row(r)) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        name, out, seed, peers, target_seed = argv[1:6]
        _child(name, out, int(seed), bool(int(peers)), int(target_seed))
        return
    opts = {a.split("=")[0]: (a.split("=", 1)[1] if "=" in a else True)
            for a in argv if a.startswith("--")}
    names = [a for a in argv if not a.startswith("--")] or list(NAMES)
    seed = int(opts.get("--seed", 0))
    target_seed = int(opts.get("--target-seed", 0))
    timeout = float(opts.get("--timeout", 300))
    peers = "--no-peers" not in opts
    rows = []
    for name in names:
        row = run_one(name, seed, peers, timeout, target_seed)
        rows.append(row)
        print(" | ".join(str(c) for c in fmt_row(row)), flush=True)
        v = row.get("vifit")
        if v and (abs(v["error"]) >= 0.1 or v["found"] != v["present"]):
            print(f"    verdict: {v['verdict_text']}", flush=True)
    done = [r["vifit"] for r in rows if r.get("vifit")]
    print(f"\nwithin 0.1 nats: {sum(abs(v['error']) < 0.1 for v in done)} of {len(rows)}; "
          f"modes right: {sum(v['found'] == v['present'] == v['matched'] for v in done)} of "
          f"{len(rows)}; bound failures: {sum(len(v['bound_failures']) for v in done)}; "
          f"'good' while >= 0.1 off: "
          f"{sum(v['verdict'] == 'good' and abs(v['error']) >= 0.1 for v in done)}")
    if "--json" in opts:
        Path(opts["--json"]).write_text(json.dumps(rows, indent=1, default=float))
    if "--markdown" in opts:
        print("\n" + markdown(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
