"""Every family and optimizer of issue 6 on a few targets, with NumPyro and BlackJAX peers.

    python bench/families_optimizers.py [--targets banana,funnel,...] [--rows adam,natgrad,...]
                                        [--seed 0] [--n-eval 20000] [--csv out.csv]

For each target and method: ELBO ± se and Pareto k-hat from the same number of fresh draws of
the fitted q (so rows are comparable), the log Z error where the target knows log Z, optimizer
steps, and wall time including compilation. Peers, on the same log density: NumPyro SVI with
AutoMultivariateNormal (Adam 1e-2, Trace_ELBO, as many steps as vifit's fullrank/adam took, at
least 2000), and BlackJAX's Pathfinder. The last columns are each row's time and ELBO relative
to the NumPyro row. Timings on a shared machine are noisy; read them as rough ratios.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

import vifit
from vifit.engine import _eval_logw
from vifit.evidence import importance_log_z
from vifit.examples import get_example
from vifit.examples.shapes import banana, funnel

TARGETS = {
    "banana": banana,
    "funnel": funnel,
    "eight_schools": lambda: get_example("eight_schools"),
    "linear_regression": lambda: get_example("linear_regression"),
    "gaussian": lambda: get_example("gaussian"),
}

ROWS = {
    "fullrank/adam": dict(family="fullrank"),
    "meanfield/adam": dict(family="meanfield"),
    "fullrank/adam lr=auto": dict(family="fullrank", lr="auto"),
    "fullrank/natgrad": dict(family="fullrank", optimizer="natgrad"),
    "fullrank/lbfgs-fixed": dict(family="fullrank", optimizer="lbfgs-fixed"),
    "fullrank/pathfinder": dict(family="fullrank", optimizer="pathfinder"),
    "mixture:k=3": dict(family="mixture:k=3"),
    "realnvp": dict(family="realnvp", lr=3e-3, init="pathfinder"),
    "spline": dict(family="spline", init="pathfinder"),
    "auto": dict(family="auto"),
}


def evaluate(target, family, params, key, n_eval):
    logw = _eval_logw(target, family, params, key, n_eval)
    finite = logw[np.isfinite(logw)]
    ev = importance_log_z(logw)
    return float(finite.mean()), float(finite.std(ddof=1) / np.sqrt(finite.size)), ev


def run_vifit(target, spec, seed, n_eval):
    t0 = time.perf_counter()
    r = vifit.fit(target, seed=seed, n_eval=n_eval, progress=False, **spec)
    seconds = time.perf_counter() - t0
    extra = r.info.get("auto", {}).get("chosen", "")
    return dict(elbo=r.elbo, elbo_se=r.elbo_se, log_z=r.log_z, khat=r.khat, steps=r.steps,
                seconds=seconds, note=extra)


def run_numpyro(target, seed, n_eval, steps):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoMultivariateNormal

    d = target.dim

    def model():
        z = numpyro.sample("z", dist.ImproperUniform(dist.constraints.real_vector, (), (d,)))
        numpyro.factor("lp", target.log_density(z))

    t0 = time.perf_counter()
    guide = AutoMultivariateNormal(model, init_loc_fn=numpyro.infer.init_to_value(
        values={"z": target.init}))
    svi = SVI(model, guide, numpyro.optim.Adam(1e-2), Trace_ELBO())
    res = svi.run(jax.random.key(seed), steps, progress_bar=False)
    loc = res.params["auto_loc"]
    chol = res.params["auto_scale_tril"]
    fam = vifit.FullRank()
    params = fam.from_gaussian(loc, chol @ chol.T)
    elbo, se, ev = evaluate(target, fam, params, jax.random.key(seed + 1), n_eval)
    return dict(elbo=elbo, elbo_se=se, log_z=ev.log_z, khat=ev.khat, steps=steps,
                seconds=time.perf_counter() - t0, note="AutoMultivariateNormal")


def run_blackjax(target, seed, n_eval):
    import blackjax

    t0 = time.perf_counter()
    state, _ = blackjax.vi.pathfinder.approximate(jax.random.key(seed), target.log_density,
                                                  target.init, num_samples=200, maxiter=100)
    draws, logq = blackjax.vi.pathfinder.sample(jax.random.key(seed + 1), state, n_eval)
    logw = np.asarray(jax.vmap(target.log_density)(draws) - logq, dtype=np.float64)
    finite = logw[np.isfinite(logw)]
    ev = importance_log_z(logw)
    return dict(elbo=float(finite.mean()), elbo_se=float(finite.std(ddof=1) / np.sqrt(finite.size)),
                log_z=ev.log_z, khat=ev.khat, steps=-1, seconds=time.perf_counter() - t0,
                note="blackjax.vi.pathfinder")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-eval", type=int, default=20_000)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--csv", default=None)
    args = ap.parse_args()
    records = []
    header = (f"{'target':<18} {'method':<24} {'ELBO':>9} {'±se':>7} {'k-hat':>6} "
              f"{'|logZ err|':>10} {'steps':>6} {'sec':>7} {'t/npyro':>7} {'dELBO':>7}  note")
    print(header)
    for tname in args.targets.split(","):
        target = TARGETS[tname]()
        exact = target.exact.get("log_z")
        rows = {}
        for rname in args.rows.split(","):
            try:
                rows[rname] = run_vifit(target, ROWS[rname], args.seed, args.n_eval)
            except vifit.VifitError as exc:
                rows[rname] = dict(error=str(exc))
        if not args.no_peers:
            base_steps = max(rows.get("fullrank/adam", {}).get("steps", 2000), 2000)
            rows["numpyro AutoMVN"] = run_numpyro(target, args.seed, args.n_eval, base_steps)
            rows["blackjax pathfinder"] = run_blackjax(target, args.seed, args.n_eval)
        peer = rows.get("numpyro AutoMVN")
        for rname, row in rows.items():
            if "error" in row:
                print(f"{tname:<18} {rname:<24} error: {row['error']}")
                continue
            err = abs(row["log_z"] - exact) if exact is not None else float("nan")
            ratio = row["seconds"] / peer["seconds"] if peer else float("nan")
            delbo = row["elbo"] - peer["elbo"] if peer else float("nan")
            print(f"{tname:<18} {rname:<24} {row['elbo']:9.4f} {row['elbo_se']:7.4f} "
                  f"{row['khat']:6.2f} {err:10.4f} {row['steps']:6d} {row['seconds']:7.1f} "
                  f"{ratio:7.2f} {delbo:7.3f}  {row['note']}", flush=True)
            records.append(dict(target=tname, method=rname, log_z_error=err, **row))
    if args.csv:
        import csv

        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=sorted({k for r in records for k in r}))
            w.writeheader()
            w.writerows(records)


if __name__ == "__main__":
    main()
