"""One user's path through an installed stack (Python, JAX, PyMC, ArviZ), end to end: fit a
PyMC regression, ``az.loo`` on the result, the evidence with its bracket, report.html.

    .venv-3.12/bin/python scripts/smoke_stack.py [OUT_DIR]     # default smoke-out

The README's "smoke run" on Python 3.13 is this script in a 3.13 venv with ``vifit[test]``.
Exits non-zero if any step fails.
"""

from __future__ import annotations

import sys

import arviz as az
import jax
import numpy as np
import pymc as pm

import vifit
from vifit.report import write_report


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "smoke-out"
    print(f"Python {sys.version.split()[0]}, JAX {jax.__version__}, PyMC {pm.__version__}, "
          f"ArviZ {az.__version__}")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2))
    y = x @ np.array([1.0, -0.5]) + 0.5 * rng.normal(size=30)
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, 2.0, shape=2)
        pm.Normal("y", pm.math.dot(x, beta), 0.5, observed=y)
    fit = vifit.fit(vifit.from_pymc(model), family="fullrank", seed=0, progress=False)
    idata = fit.to_arviz(0, 1000)
    loo = az.loo(idata)
    elpd = getattr(loo, "elpd_loo", None)
    elpd = float(loo.elpd if elpd is None else elpd)
    print(f"fit: {fit.verdict.label}, k-hat {fit.khat:.2f}; to_arviz: {type(idata).__name__}; "
          f"az.loo elpd {elpd:.2f}")
    ev = vifit.evidence(fit.target, fit, seed=0)
    print(f"evidence: log Z {ev.log_z:.3f} ± {ev.log_z_se:.3f}, bracket {ev.bracket}, "
          f"{ev.verdict.label}")
    print(f"report: {write_report(fit, out, evidence=ev)['html']}")
    if not (np.isfinite(elpd) and np.isfinite(ev.log_z)):
        sys.exit(1)


if __name__ == "__main__":
    main()
