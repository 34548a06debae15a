"""Reference answers for the EP tests and bench/ep.py: long NUTS runs, and for the 3-parameter
models an exact grid integral, written to tests/data/ep_reference.json.

    PYTHONPATH=src python scripts/ep_reference.py              # all three models (~10 min)
    PYTHONPATH=src python scripts/ep_reference.py probit_regression

Per model: NUTS (NumPyro, 4 chains, in the whitened coordinates of Factorized.target()) moments
of z with their Monte Carlo standard errors (ArviZ), R-hat and ESS. For the d = 3 regressions
also a tensor-grid integral (trapezoid rule on a 161^3 grid over +-12 NUTS standard
deviations in the NUTS principal axes; a smooth, fast-decaying integrand, so the rule is
accurate far beyond the Monte Carlo error), which gives log Z, mean and covariance to about
1e-6, and cross-checks NUTS. For GP classification (d = 60) log Z comes from importance
sampling with a multivariate Student-t (5 degrees of freedom) proposal at the NUTS moments,
10^6 draws, with its standard error and Pareto k-hat. float64 throughout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import arviz as az  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

from vifit.evidence import importance_log_z  # noqa: E402
from vifit.examples import EP_MODELS  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "ep_reference.json"
SETTINGS = {  # warmup, draws per chain
    "probit_regression": (2000, 25000),
    "logistic_regression": (2000, 25000),
    "gp_classification": (2000, 5000),
}


def nuts(model, warmup: int, draws: int, seed: int = 0) -> dict:
    target = model.target()
    kernel = NUTS(potential_fn=lambda w: -target.log_density(w), target_accept_prob=0.9)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=4,
                chain_method="vectorized", progress_bar=False)
    init = jnp.asarray(np.random.default_rng(seed).normal(scale=0.5, size=(4, model.dim)))
    t0 = time.perf_counter()
    mcmc.run(jax.random.key(seed), init_params=init)
    seconds = time.perf_counter() - t0
    w = np.asarray(mcmc.get_samples(group_by_chain=True))  # (4, draws, d)
    z = np.asarray(model.prior_mean64 + w @ model.prior_chol64.T)
    idata = az.from_dict(posterior={"z": z})
    summ = az.summary(idata, kind="all", round_to="none")
    # MCSE of the sd by the delta method from the MCSE of the mean of squared deviations
    # (ArviZ's method="sd" fails on this numpy).
    sq = az.from_dict(posterior={"sq": (z - z.mean((0, 1))) ** 2})
    mcse_sd = np.asarray(az.mcse(sq, method="mean")["sq"]) / (2.0 * z.std((0, 1), ddof=1))
    flat = z.reshape(-1, model.dim)
    return {
        "mean": flat.mean(0).tolist(), "sd": flat.std(0, ddof=1).tolist(),
        **({"cov": np.cov(flat.T).tolist()} if model.dim <= 3 else {}),
        "mcse_mean": summ["mcse_mean"].tolist(),
        "mcse_sd": mcse_sd.tolist(), "r_hat_max": float(summ["r_hat"].max()),
        "ess_bulk_min": float(summ["ess_bulk"].min()),
        "ess_tail_min": float(summ["ess_tail"].min()),
        "chains": 4, "warmup": warmup, "draws_per_chain": draws, "seconds": seconds,
        "divergences": int(np.sum(mcmc.get_extra_fields()["diverging"])),
    }, w.reshape(-1, model.dim)


def grid(model, w_draws: np.ndarray, points: int = 161, radius: float = 12.0) -> dict:
    """Trapezoid rule for Z, E[z], Cov[z] over a box in the NUTS principal axes of w."""
    target = model.target()
    center = w_draws.mean(0)
    chol = np.linalg.cholesky(np.cov(w_draws.T))
    x = np.linspace(-radius, radius, points)
    step = x[1] - x[0]
    mesh = np.stack(np.meshgrid(*[x] * model.dim, indexing="ij"), -1).reshape(-1, model.dim)
    logp = np.concatenate([
        np.asarray(jax.jit(target.batch_log_density)(jnp.asarray(center + c @ chol.T)))
        for c in np.array_split(mesh, 64)])
    edge = np.any(np.abs(mesh) == radius, axis=1)
    top = logp.max()
    wts = np.exp(logp - top)
    log_z = top + np.log(wts.sum()) + model.dim * np.log(step) + np.log(np.diag(chol)).sum()
    z = model.prior_mean64 + (center + mesh @ chol.T) @ model.prior_chol64.T
    p = wts / wts.sum()
    mean = p @ z
    cov = (z - mean).T @ ((z - mean) * p[:, None])
    return {"log_z": float(log_z), "mean": mean.tolist(), "sd": np.sqrt(np.diag(cov)).tolist(),
            "cov": cov.tolist(), "edge_mass": float(p[edge].sum()), "points_per_axis": points,
            "radius_sd": radius}


def student_is(model, w_draws: np.ndarray, n: int = 1_000_000, df: float = 5.0,
               seed: int = 1) -> dict:
    """log Z by importance sampling from a multivariate t at the NUTS mean and covariance."""
    from scipy import stats

    target = model.target()
    mean, cov = w_draws.mean(0), np.cov(w_draws.T)
    prop = stats.multivariate_t(loc=mean, shape=cov * (df - 2) / df, df=df, seed=seed)
    draws = prop.rvs(size=n)
    logp = np.concatenate([
        np.asarray(jax.jit(target.batch_log_density)(jnp.asarray(c)))
        for c in np.array_split(draws, 50)])
    est = importance_log_z(logp - prop.logpdf(draws))
    return {"log_z": est.log_z, "se": est.se, "khat": est.khat, "draws": n,
            "proposal": f"multivariate t, df={df:g}, at the NUTS mean and covariance"}


def main(names: list[str]) -> None:
    record = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name in names:
        model = EP_MODELS[name]()
        warmup, draws = SETTINGS[name]
        t0 = time.perf_counter()
        entry = {"model": name, "dim": model.dim}
        entry["nuts"], w = nuts(model, warmup, draws)
        if model.dim <= 3:
            entry["grid"] = grid(model, w)
            entry["log_z"] = entry["grid"]["log_z"]
            entry["log_z_source"] = "grid"
        else:
            entry["importance"] = student_is(model, w)
            entry["log_z"] = entry["importance"]["log_z"]
            entry["log_z_source"] = "importance"
        record[name] = entry
        print(f"{name}: {time.perf_counter() - t0:.0f} s, R-hat {entry['nuts']['r_hat_max']:.4f},"
              f" ESS bulk {entry['nuts']['ess_bulk_min']:.0f}, log Z {entry['log_z']:.5f}",
              flush=True)
        OUT.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:] or list(SETTINGS))
