"""EP vs full-rank VI vs NUTS on probit regression, logistic regression and GP classification.

    PYTHONPATH=src python bench/ep.py            # all three models, one table
    PYTHONPATH=src python bench/ep.py probit_regression

Errors are against the long NUTS reference in tests/data/ep_reference.json (made by
scripts/ep_reference.py; for the d = 3 regressions its moments agree with an exact grid
integral within Monte Carlo error). Columns:
  mean err: max_j |mean_j - ref_j| / sd_ref_j;  sd err: max_j |sd_j / sd_ref_j - 1|;
  log Z: EP's own estimate; for VI the ELBO and the importance-sampling log Z (k-hat);
  time: wall seconds including compilation (and, for EP, warm: a second fit of the same model).
VI runs with the default learning rate 1e-2 and with 1e-3 (the default diverges on the 60-d
GP target in float32). NUTS here is a standard run (4 chains x 1000 warmup + 1000 draws, NumPyro), timed the same
way; its moment errors are Monte Carlo error. float32, one CPU process; timings are noisy on a
shared machine.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import vifit
from vifit import ep
from vifit.examples import EP_MODELS

REF = json.loads((Path(__file__).resolve().parents[1] / "tests" / "data" /
                  "ep_reference.json").read_text())


def errors(mean, sd, ref) -> tuple[float, float]:
    rm, rs = np.array(ref["nuts"]["mean"]), np.array(ref["nuts"]["sd"])
    return float(np.max(np.abs(mean - rm) / rs)), float(np.max(np.abs(sd / rs - 1.0)))


def run_ep(model):
    t0 = time.perf_counter()
    res = ep.fit(model)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    ep.fit(model)
    warm = time.perf_counter() - t0
    return res, cold, warm


def run_vi(model, lr):
    target = model.target()
    t0 = time.perf_counter()
    res = vifit.fit(target, "fullrank", seed=0, progress=False, lr=lr)
    seconds = time.perf_counter() - t0
    l0 = model.prior_chol64
    mean = model.prior_mean64 + l0 @ res.mean()
    cov = l0 @ res.covariance() @ l0.T
    return res, mean, np.sqrt(np.diag(cov)), seconds


def run_nuts(model):
    from numpyro.infer import MCMC, NUTS

    target = model.target()
    kernel = NUTS(potential_fn=lambda w: -target.log_density(w))
    mcmc = MCMC(kernel, num_warmup=1000, num_samples=1000, num_chains=4,
                chain_method="vectorized", progress_bar=False)
    init = jnp.asarray(np.random.default_rng(0).normal(scale=0.5, size=(4, model.dim)),
                       jnp.float32)
    t0 = time.perf_counter()
    mcmc.run(jax.random.key(1), init_params=init)
    w = np.asarray(mcmc.get_samples())
    seconds = time.perf_counter() - t0
    z = model.prior_mean64 + w @ model.prior_chol64.T
    return z.mean(0), z.std(0, ddof=1), seconds


def main(names: list[str]) -> None:
    rows = []
    for name in names:
        model, ref = EP_MODELS[name](), REF[name]
        res, cold, warm = run_ep(model)
        ep_err = errors(res.mean, res.sd, ref)
        vis = []
        for lr in (1e-2, 1e-3):
            vi, vi_mean, vi_sd, vi_s = run_vi(model, lr)
            vis.append((lr, vi, errors(vi_mean, vi_sd, ref), vi_s))
        nuts_mean, nuts_sd, nuts_s = run_nuts(model)
        nuts_err = errors(nuts_mean, nuts_sd, ref)
        src = ref["log_z_source"]
        rows += [
            (name, f"reference ({src})", "0", "0", f"{ref['log_z']:.3f}", "-", "-"),
            (name, f"EP ({res.sweeps} sweeps)", f"{ep_err[0]:.3f}", f"{ep_err[1]:.3f}",
             f"{res.log_z:.3f}", f"{cold:.2f} (warm {warm:.3f})", "1"),
            *[(name, f"VI fullrank lr={lr:g} ({vi.steps} steps)", f"{e[0]:.3f}", f"{e[1]:.3f}",
               f"ELBO {vi.elbo:.3f}, IS {vi.log_z:.3f} (k-hat {vi.khat:.2f})", f"{s:.2f}",
               f"{s / cold:.1f}") for lr, vi, e, s in vis],
            (name, "NUTS 4x1000", f"{nuts_err[0]:.3f}", f"{nuts_err[1]:.3f}", "-",
             f"{nuts_s:.2f}", f"{nuts_s / cold:.1f}"),
        ]
        print(f"done {name}", file=sys.stderr, flush=True)
    head = ("model", "method", "mean err (sd)", "sd err (rel)", "log Z", "time s",
            "time / EP")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1:] or list(EP_MODELS))
