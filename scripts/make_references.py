"""Write the catalog's reference answers: src/vifit/catalog/references/<name>.json.

    PYTHONPATH=src python scripts/make_references.py              # every catalog model
    PYTHONPATH=src python scripts/make_references.py radon funnel  # some

Exact references come from the target's closed-form ``exact`` (log Z, mean, covariance).
The others come from NumPyro NUTS run on the catalog Target's own log density (the same
unconstrained z and Jacobians vifit fits), 4 chains run one after another, in float64. Each
draw is mapped to the constrained parameters, and ArviZ gives per scalar the mean, sd, their
Monte Carlo standard errors, bulk/tail ESS and rank-normalized split R-hat; the same moments
of every coordinate of the unconstrained z itself are stored too (under "unconstrained"). A
reference is written only if every R-hat < 1.01 and every bulk and tail ESS >= 1000, for the
constrained scalars and for z; divergences are recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import arviz as az  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

from vifit import catalog  # noqa: E402
from vifit.catalog.reference import Reference, exact_reference  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "src" / "vifit" / "catalog" / "references"
RHAT_MAX, ESS_MIN = 1.01, 1000
# Per model: NUTS settings where the defaults (1000 warmup, 2500 draws x 4 chains, target
# acceptance 0.8) are not enough for the checks above.
# "init" (constrained values of every latent site) starts the chains near a point instead of
# the target's init; "dense_mass" adapts a dense mass matrix (strongly correlated posteriors).
SETTINGS = {
    "horseshoe": {"target_accept": 0.99, "draws": 5000, "warmup": 2000},
    "stochastic_volatility": {"target_accept": 0.99},
    "gp_poisson": {"target_accept": 0.95},
    "eight_schools": {"target_accept": 0.95},
    # posteriordb's reference posterior, roughly: far from it the ODE's likelihood has other,
    # much worse local modes that a chain started at the prior medians can stick in.
    # 24 collinear predictors: with a diagonal mass matrix the run had not finished after 20
    # minutes on a shared core (long trajectories); a dense one makes the posterior round.
    "diamonds": {"dense_mass": True},
    "lotka_volterra": {"init": {"theta": [0.55, 0.028, 0.80, 0.024], "z_init": [34.0, 6.0],
                                "sigma": [0.25, 0.25]}},
}


def nuts_reference(name: str, seed: int = 0, chains: int = 4, draws: int = 2500,
                   warmup: int = 1000, target_accept: float = 0.8,
                   init: dict | None = None, dense_mass: bool = False) -> Reference:
    target = catalog.get_model(name)
    names, flat = target.constrained_names()
    kernel = NUTS(potential_fn=lambda z: -target.log_density(z), target_accept_prob=target_accept,
                  dense_mass=dense_mass)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains,
                chain_method="sequential", progress_bar=False)
    key_init, key_run = jax.random.split(jax.random.PRNGKey(seed))
    start = target.init if init is None else target.unconstrain(
        {k: jnp.asarray(v, dtype=target.init.dtype) for k, v in init.items()})
    starts = start + 0.1 * jax.random.normal(key_init, (chains, target.dim))
    t0 = time.perf_counter()
    mcmc.run(key_run, init_params=starts, extra_fields=("diverging", "num_steps"))
    seconds = time.perf_counter() - t0
    z = mcmc.get_samples(group_by_chain=True)  # (chains, draws, dim)
    theta = np.asarray(jax.vmap(jax.vmap(flat))(z), dtype=np.float64)  # (chains, draws, m)
    ds = az.convert_to_dataset({"p": theta, "z": np.asarray(z, dtype=np.float64)})
    stat = lambda f, v="p", **kw: np.asarray(f(ds, **kw)[v].values, dtype=np.float64)  # noqa: E731
    rhat = stat(az.rhat)
    ess_bulk, ess_tail = stat(az.ess, method="bulk"), stat(az.ess, method="tail")
    z_rhat = stat(az.rhat, "z")
    z_ess_bulk, z_ess_tail = stat(az.ess, "z", method="bulk"), stat(az.ess, "z", method="tail")
    extra = mcmc.get_extra_fields(group_by_chain=True)
    info = {
        "source": "NumPyro NUTS on the catalog Target's log density (float64)",
        "script": "scripts/make_references.py",
        "numpyro": numpyro.__version__,
        "seed": seed, "chains": chains, "warmup": warmup, "draws_per_chain": draws,
        "target_accept": target_accept,
        "dense_mass": dense_mass,
        "init": "the target's init" if init is None else init,
        "divergences": int(np.asarray(extra["diverging"]).sum()),
        "mean_leapfrog_steps": float(np.asarray(extra["num_steps"]).mean()),
        "seconds": round(seconds, 1),
        "max_rhat": float(rhat.max()),
        "min_ess_bulk": float(ess_bulk.min()),
        "min_ess_tail": float(ess_tail.min()),
        "rhat": dict(zip(names, np.round(rhat, 4).tolist())),
        "ess_bulk": dict(zip(names, np.round(ess_bulk, 0).tolist())),
        "ess_tail": dict(zip(names, np.round(ess_tail, 0).tolist())),
        "z_max_rhat": float(z_rhat.max()),
        "z_min_ess_bulk": float(z_ess_bulk.min()),
        "z_min_ess_tail": float(z_ess_tail.min()),
    }
    mean, sd = theta.mean(axis=(0, 1)), theta.std(axis=(0, 1), ddof=1)
    zs = np.asarray(z, dtype=np.float64)
    z_mean, z_sd = zs.mean(axis=(0, 1)), zs.std(axis=(0, 1), ddof=1)
    return Reference(name=name, kind="nuts", names=names, mean=mean, sd=sd,
                     mean_se=stat(az.mcse, method="mean"), sd_se=mcse_sd(theta, mean, sd),
                     info=info, z_names=list(target.param_names), z_mean=z_mean, z_sd=z_sd,
                     z_mean_se=stat(az.mcse, "z", method="mean"), z_sd_se=mcse_sd(zs, z_mean, z_sd))


def mcse_sd(theta: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Monte Carlo standard error of the sd, by the delta method: the sd is sqrt of the mean of
    y = (x - mean)^2, whose MCSE is sd(y) / sqrt(ESS(y)); d sqrt(v) = dv / (2 sqrt(v)).
    (ArviZ 0.23's own mcse(method="sd") fails with NumPy 2 on 2-D input.)"""
    y = (theta - mean) ** 2
    ess_y = np.asarray(az.ess(az.convert_to_dataset({"y": y}), method="mean")["y"].values)
    return y.reshape(-1, y.shape[-1]).std(axis=0, ddof=1) / np.sqrt(ess_y) / (2.0 * sd)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="catalog models (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = args.names or catalog.catalog_names()
    failed = []
    for name in names:
        entry = catalog.entry(name)
        if entry.reference != name:
            print(f"{name}: shares the reference {entry.reference!r}", flush=True)
            continue
        target = entry.make()
        if {"mean", "cov", "log_z"} <= set(target.exact):
            ref = exact_reference(target)
            ok = True
        else:
            ref = nuts_reference(name, seed=args.seed, **SETTINGS.get(name, {}))
            i = ref.info
            rhat = max(i["max_rhat"], i["z_max_rhat"])
            ess = min(i["min_ess_bulk"], i["min_ess_tail"], i["z_min_ess_bulk"],
                      i["z_min_ess_tail"])
            ok = rhat < RHAT_MAX and ess >= ESS_MIN
            print(f"{name}: max R-hat {i['max_rhat']:.4f} (z {i['z_max_rhat']:.4f}), min ESS "
                  f"bulk {i['min_ess_bulk']:.0f} tail {i['min_ess_tail']:.0f} "
                  f"(z {i['z_min_ess_bulk']:.0f}, {i['z_min_ess_tail']:.0f}), "
                  f"{i['divergences']} divergences, "
                  f"{i['mean_leapfrog_steps']:.0f} leapfrog steps/draw, {i['seconds']:.0f} s",
                  flush=True)
        if not ok:
            failed.append(name)
            print(f"{name}: NOT converged by the checks; reference not written", flush=True)
            continue
        (OUT / f"{name}.json").write_text(json.dumps(ref.to_json(), indent=1) + "\n")
        print(f"{name}: wrote {ref.kind} reference ({len(ref.names)} scalars)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
