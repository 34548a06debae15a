"""How long a flow should train: RealNVP from the full-rank fit, stopped after 3 or 20 stale
windows, on the banana and the 2-d funnel (log Z = 0, so -ELBO = KL(q||p)), seeds 0-2.

    PYTHONPATH=src python bench/flow_patience.py        # about 2 minutes on 2 cores

Prints, per target and seed: the full-rank ELBO and k-hat, then ELBO, k-hat, steps and seconds
for each patience. The table is in docs/families.md ("Stopping").
"""

from __future__ import annotations

import time

import jax.numpy as jnp

import vifit
from vifit.examples.shapes import banana, funnel
from vifit.families import get_family

N_EVAL = 100_000


def main() -> None:
    print("target seed | fullrank ELBO k-hat | per patience: ELBO k-hat steps seconds")
    for name, make in (("banana", banana), ("funnel", funnel)):
        target = make()
        for seed in (0, 1, 2):
            gauss = vifit.fit(target, "fullrank", seed=seed, progress=False, n_eval=N_EVAL)
            fam = get_family("realnvp")
            start = fam.from_gaussian(jnp.asarray(gauss.mean()), jnp.asarray(gauss.covariance()))
            row = [name, seed, "|", f"{gauss.elbo:.3f}", f"{gauss.khat:.2f}"]
            for patience in (3, 20):
                t0 = time.perf_counter()
                flow = vifit.fit(target, fam, init_params=start, lr=3e-3, seed=seed,
                                 patience=patience, progress=False, n_eval=N_EVAL)
                row += ["|", f"p={patience}", f"{flow.elbo:.4f}", f"{flow.khat:.2f}",
                        flow.steps, f"{time.perf_counter() - t0:.1f}"]
            print(*row, flush=True)


if __name__ == "__main__":
    main()
