"""Posterior summaries from q against importance-weighted ones, on catalog models with NUTS or
exact references: the largest error of a posterior mean (in posterior sds) and of a log sd,
for full-rank Adam fits (seed 0). Measures what ``FitResult.summary(weighted=...)`` changes.

    PYTHONPATH=src python bench/weighted_summaries.py [MODEL ...]
"""

from __future__ import annotations

import sys

import numpy as np

import vifit
from vifit.catalog import get_model, reference

MODELS = ("eight_schools", "eight_schools_centered", "radon", "gp_poisson", "banana", "funnel",
          "logistic_regression", "horseshoe")


def errors(fit: vifit.FitResult, ref, weighted: bool) -> tuple[float, float]:
    table = fit.summary(0, 4000, weighted=weighted)
    idx = [ref.names.index(n) for n in table.index]
    mean_err = np.abs(table["mean"].to_numpy() - ref.mean[idx]) / ref.sd[idx]
    sd_err = np.abs(np.log(table["sd"].to_numpy() / ref.sd[idx]))
    return float(mean_err.max()), float(sd_err.max())


def main(models: list[str]) -> None:
    print("model | k-hat | mean err (q) | log-sd err (q) | mean err (weighted) | "
          "log-sd err (weighted)")
    for name in models:
        fit = vifit.fit(get_model(name), "fullrank", progress=False)
        ref = reference(name)
        q, w = errors(fit, ref, False), errors(fit, ref, True)
        print(f"{name} | {fit.khat:.2f} | {q[0]:.3f} | {q[1]:.3f} | {w[0]:.3f} | {w[1]:.3f}",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(MODELS))
