"""Benchmark: ``family="auto"`` and ``vifit evidence`` on small targets (d = 1 to 10) with exact
answers, where a verdict may read "good": is it ever good and wrong?

Three groups:

- ``conjugate``: NumPyro models through ``vifit.from_numpyro`` whose posterior and log Z are
  known in closed form or by 1-D quadrature: a beta-binomial, a Dirichlet-multinomial, a
  gamma-Poisson, a normal with unknown mean and precision (normal-gamma), a normal sd under a
  Uniform(0, 10) prior and under a HalfCauchy(1) prior. Constrained sites, so their
  unconstrained posteriors have the exponential tails of log and logit transforms.
- ``shapes``: plain ``vifit.Target``s: a ring, a wide mode beside one 20 times narrower (2-D),
  a narrow half of the mass inside a broad half's typical region (2-D),
  a 1-D spike beside a unit Gaussian, an unequal 1-D bimodal, a uniform square (log p = -inf
  outside), a Laplace product, a 3-D banana, a 2-D funnel, four unequal modes in 3-D, a skew
  normal product, a correlated bivariate t_4.
- ``harder`` (added 2026-12-06): a narrow spike on a wide slab at one centre (5-D), a banana
  curved enough that the mode search reads points on its ridge as modes, a product of
  log-Gamma(0.3) coordinates (exponential left tails, 5-D), a 10-D funnel, and six equal
  modes at the permutations of (-4, 0, 4) (label switching, 3-D).

Per target: auto's choice, the fit's verdict, its log Z error (PSIS from q) with se and k-hat,
the evidence's verdict, error and recommended estimator, the bounds vifit stands behind that
fail (an estimate with kind "lower" above log Z + 4 se, or "upper" below log Z - 4 se), the
worst posterior-mean error (in posterior sds) and sd error of ``summary()`` where the moments
are known, and "silently wrong": a "good" verdict with log Z 0.1 nats or more off, or a failed
bound. Exit status 1 if any row is silently wrong.

    PYTHONPATH=src python bench/small_targets.py [--only beta_binom,ring] [--seed 0] [--markdown]
                                                 [--baseline [bench/baselines/small_targets.json]]

About 8 s a target on this 2-core machine (fit and evidence, compilation included).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from scipy import integrate, special, stats

import vifit

_RNG_SEED = 1  # the simulated data sets


def _numpyro():
    import numpyro
    import numpyro.distributions as dist

    return numpyro, dist


def beta_binom():
    numpyro, dist = _numpyro()
    a, b, n, y = 2.0, 3.0, 20, 14

    def model(y):
        p = numpyro.sample("p", dist.Beta(a, b))
        numpyro.sample("y", dist.Binomial(n, p), obs=y)

    log_z = math.log(math.comb(n, y)) + special.betaln(a + y, b + n - y) - special.betaln(a, b)
    A, B = a + y, b + n - y
    sd = math.sqrt(A * B / ((A + B) ** 2 * (A + B + 1)))
    return vifit.from_numpyro(model, y), log_z, {"p": (A / (A + B), sd)}


def dir_mult():
    numpyro, dist = _numpyro()
    alpha, counts = np.ones(3), np.array([10, 3, 7])

    def model(c):
        w = numpyro.sample("w", dist.Dirichlet(jnp.asarray(alpha)))
        numpyro.sample("c", dist.Multinomial(int(counts.sum()), w), obs=c)

    n = counts.sum()
    log_z = (special.gammaln(n + 1) - special.gammaln(counts + 1).sum()
             + special.gammaln(alpha.sum()) - special.gammaln(alpha).sum()
             + special.gammaln(alpha + counts).sum() - special.gammaln(alpha.sum() + n))
    A = alpha + counts
    A0 = A.sum()
    moments = {f"w[{i}]": (A[i] / A0, math.sqrt(A[i] * (A0 - A[i]) / (A0**2 * (A0 + 1))))
               for i in range(3)}
    return vifit.from_numpyro(model, jnp.asarray(counts)), float(log_z), moments


def gamma_pois():
    numpyro, dist = _numpyro()
    a, b = 2.0, 1.0
    y = np.random.default_rng(_RNG_SEED).poisson(3.0, 10)

    def model(y):
        lam = numpyro.sample("lam", dist.Gamma(a, b))
        numpyro.sample("y", dist.Poisson(lam), obs=y)

    s, n = y.sum(), y.size
    log_z = (a * math.log(b) - special.gammaln(a) + special.gammaln(a + s)
             - (a + s) * math.log(b + n) - special.gammaln(y + 1).sum())
    return (vifit.from_numpyro(model, jnp.asarray(y)), float(log_z),
            {"lam": ((a + s) / (b + n), math.sqrt(a + s) / (b + n))})


def normal_gamma():
    numpyro, dist = _numpyro()
    m0, k0, a0, b0 = 0.0, 1.0, 3.0, 2.0
    y = np.random.default_rng(_RNG_SEED).normal(1.5, 0.8, 15)

    def model(y):
        tau = numpyro.sample("tau", dist.Gamma(a0, b0))
        mu = numpyro.sample("mu", dist.Normal(m0, 1 / jnp.sqrt(k0 * tau)))
        numpyro.sample("y", dist.Normal(mu, 1 / jnp.sqrt(tau)), obs=y)

    n, ybar = y.size, y.mean()
    kn, an = k0 + n, a0 + n / 2
    mn = (k0 * m0 + n * ybar) / kn
    bn = b0 + 0.5 * ((y - ybar) ** 2).sum() + k0 * n * (ybar - m0) ** 2 / (2 * kn)
    log_z = (special.gammaln(an) - special.gammaln(a0) + a0 * math.log(b0) - an * math.log(bn)
             + 0.5 * math.log(k0 / kn) - n / 2 * math.log(2 * math.pi))
    mu_sd = math.sqrt(bn / (kn * (an - 1)))  # a Student-t with 2 an degrees of freedom
    return (vifit.from_numpyro(model, jnp.asarray(y)), float(log_z),
            {"tau": (an / bn, math.sqrt(an) / bn), "mu": (mn, mu_sd)})


def _scale_model(prior, y):
    numpyro, dist = _numpyro()

    def model(y):
        s = numpyro.sample("s", prior)
        numpyro.sample("y", dist.Normal(0.0, s), obs=y)

    return vifit.from_numpyro(model, jnp.asarray(y))


def _scale_answer(log_prior, y, upper: float) -> tuple[float, dict]:
    """log Z, and the posterior mean and sd of s, by quadrature on (0, upper)."""
    f = lambda s: math.exp(stats.norm.logpdf(y, 0, s).sum() + log_prior(s))  # noqa: E731
    z = integrate.quad(f, 1e-12, upper, limit=400)[0]
    m1 = integrate.quad(lambda s: s * f(s), 1e-12, upper, limit=400)[0] / z
    m2 = integrate.quad(lambda s: s * s * f(s), 1e-12, upper, limit=400)[0] / z
    sd = math.sqrt(m2 - m1**2) if math.isfinite(m2) else float("nan")
    return math.log(z), {"s": (m1, sd)}


def uniform_sd():
    _, dist = _numpyro()
    y = np.random.default_rng(_RNG_SEED).normal(0, 2.0, 8)
    log_z, moments = _scale_answer(lambda s: -math.log(10.0), y, 10.0)
    return _scale_model(dist.Uniform(0.0, 10.0), y), log_z, moments


def halfcauchy_sd():
    _, dist = _numpyro()
    y = np.random.default_rng(_RNG_SEED).normal(0, 1.0, 3)
    log_z, moments = _scale_answer(stats.halfcauchy.logpdf, y, np.inf)
    return _scale_model(dist.HalfCauchy(1.0), y), log_z, {"s": (moments["s"][0], float("nan"))}


def _normal(z, m, s):
    return -0.5 * ((z - m) / s) ** 2 - jnp.log(s) - 0.5 * math.log(2 * math.pi)


def ring():
    r0, s = 3.0, 0.3
    f = lambda z: -0.5 * ((jnp.sqrt(jnp.sum(z**2) + 1e-12) - r0) / s) ** 2  # noqa: E731
    v = integrate.quad(lambda r: 2 * math.pi * r * math.exp(-0.5 * ((r - r0) / s) ** 2), 0, 20)
    return vifit.Target(f, dim=2, name="ring"), math.log(v[0]), {}


def wide_narrow_2d():
    def f(z):
        return jnp.logaddexp(math.log(0.7) + jnp.sum(_normal(z, 0.0, 1.0)),
                             math.log(0.3) + jnp.sum(_normal(z, jnp.array([5.0, 0.0]), 0.05)))
    return vifit.Target(f, dim=2, name="wide_narrow_2d"), 0.0, {}


def narrow_inside_2d():
    # The narrow half of the mass lies inside the broad half's typical region (1.2 of its sds
    # from its centre): located by q, but q's draws almost never land in it.
    def f(z):
        return jnp.logaddexp(math.log(0.5) + jnp.sum(_normal(z, 0.0, 5.0)),
                             math.log(0.5) + jnp.sum(_normal(z, jnp.array([6.0, 0.0]), 0.05)))
    return vifit.Target(f, dim=2, name="narrow_inside_2d"), 0.0, {}


def spike_1d():
    def f(z):
        return jnp.logaddexp(math.log(0.5) + _normal(z[0], 0.0, 1.0),
                             math.log(0.5) + _normal(z[0], 5.0, 0.01))
    return vifit.Target(f, dim=1, name="spike_1d"), 0.0, {"z[0]": (2.5, math.sqrt(0.5 + 6.25))}


def bimodal_1d():
    def f(z):
        return jnp.logaddexp(math.log(0.8) + _normal(z[0], -2.0, 0.5),
                             math.log(0.2) + _normal(z[0], 3.0, 1.0))
    mean = 0.8 * -2 + 0.2 * 3
    second = 0.8 * (4 + 0.25) + 0.2 * (9 + 1)
    return (vifit.Target(f, dim=1, name="bimodal_1d"), 0.0,
            {"z[0]": (mean, math.sqrt(second - mean**2))})


def uniform_square():
    f = lambda z: jnp.where(jnp.all(jnp.abs(z) < 1.0), 0.0, -jnp.inf)  # noqa: E731
    sd = 1 / math.sqrt(3)
    return (vifit.Target(f, dim=2, name="uniform_square"), math.log(4.0),
            {"z[0]": (0.0, sd), "z[1]": (0.0, sd)})


def laplace_2d():
    return (vifit.Target(lambda z: -jnp.sum(jnp.abs(z)), dim=2, name="laplace_2d"),
            2 * math.log(2.0), {"z[0]": (0.0, math.sqrt(2)), "z[1]": (0.0, math.sqrt(2))})


def banana_3d():
    def f(z):
        return (_normal(z[0], 0.0, 2.0) + _normal(z[1] - z[0] ** 2 + 4, 0.0, 1.0)
                + _normal(z[2], 0.0, 1.0))
    return vifit.Target(f, dim=3, name="banana_3d"), 0.0, {"z[0]": (0.0, 2.0)}


def funnel_2d():
    f = lambda z: _normal(z[0], 0.0, 3.0) + _normal(z[1], 0.0, jnp.exp(z[0] / 2))  # noqa: E731
    return vifit.Target(f, dim=2, name="funnel_2d"), 0.0, {"z[0]": (0.0, 3.0)}


def four_modes_3d():
    means = jnp.array([[4.0, 0, 0], [-4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]])
    log_w = jnp.log(jnp.array([0.4, 0.3, 0.2, 0.1]))
    sds = jnp.array([1.0, 0.5, 0.7, 0.3])

    def f(z):
        comp = jnp.sum(_normal(z[None], means, sds[:, None]), axis=1)
        return jnp.logaddexp.reduce(log_w + comp)
    return vifit.Target(f, dim=3, name="four_modes_3d"), 0.0, {}


def skew_2d():
    from jax.scipy.stats import norm

    f = lambda z: jnp.sum(math.log(2) + _normal(z, 0.0, 1.0) + norm.logcdf(5.0 * z))  # noqa: E731
    delta = 5 / math.sqrt(26)
    mean, sd = delta * math.sqrt(2 / math.pi), math.sqrt(1 - 2 * delta**2 / math.pi)
    return (vifit.Target(f, dim=2, name="skew_2d"), 0.0,
            {"z[0]": (mean, sd), "z[1]": (mean, sd)})


def correlated_t_2d():
    nu = 4.0
    corr = np.array([[1.0, 0.95], [0.95, 1.0]])
    prec = jnp.asarray(np.linalg.inv(corr))
    f = lambda z: -(nu + 2) / 2 * jnp.log1p(z @ prec @ z / nu)  # noqa: E731
    log_z = (special.gammaln(nu / 2) + math.log(nu * math.pi)
             + 0.5 * math.log(np.linalg.det(corr)) - special.gammaln((nu + 2) / 2))
    sd = math.sqrt(nu / (nu - 2))
    return (vifit.Target(f, dim=2, name="corr_t_2d"), float(log_z),
            {"z[0]": (0.0, sd), "z[1]": (0.0, sd)})


def spike_slab_5d():
    # One mode, two scales: a Gaussian on either part is a local optimum of the ELBO at log 1/2.
    d = 5

    def f(z):
        return jnp.logaddexp(math.log(0.5) + jnp.sum(_normal(z, 0.0, 1.0)),
                             math.log(0.5) + jnp.sum(_normal(z, 0.0, 0.05)))
    sd = math.sqrt(0.5 + 0.5 * 0.05**2)
    return vifit.Target(f, dim=d, name="spike_slab_5d"), 0.0, {"z[0]": (0.0, sd)}


def banana_sharp_2d():
    # Curved enough that the mode search's climbs stop at points along the ridge.
    def f(z):
        return _normal(z[0], 0.0, 1.0) + _normal(z[1], 2.0 * (z[0] ** 2 - 1.0), 0.1)
    return (vifit.Target(f, dim=2, name="banana_sharp_2d"), 0.0,
            {"z[0]": (0.0, 1.0), "z[1]": (0.0, math.sqrt(8.0 + 0.01))})


def loggamma_5d():
    # The log of a Gamma(0.3) variable per coordinate: an exponential left tail.
    a, d = 0.3, 5
    f = lambda z: jnp.sum(a * z - jnp.exp(z))  # noqa: E731
    m, sd = float(special.digamma(a)), math.sqrt(float(special.polygamma(1, a)))
    return (vifit.Target(f, dim=d, name="loggamma_5d"), d * float(special.gammaln(a)),
            {f"z[{i}]": (m, sd) for i in range(d)})


def funnel_10d():
    def f(z):
        return _normal(z[0], 0.0, 3.0) + jnp.sum(_normal(z[1:], 0.0, jnp.exp(z[0] / 2)))
    return (vifit.Target(f, dim=10, name="funnel_10d"), 0.0,
            {"z[0]": (0.0, 3.0), "z[1]": (0.0, math.exp(9 / 4))})


def permuted_modes_3d():
    # Label switching: every permutation of (-4, 0, 4), six equal modes.
    import itertools

    means = jnp.array(list(itertools.permutations([-4.0, 0.0, 4.0])))

    def f(z):
        comp = jnp.sum(_normal(z[None], means, 1.0), axis=1)
        return jnp.logaddexp.reduce(math.log(1 / 6) + comp)
    return (vifit.Target(f, dim=3, name="permuted_modes_3d"), 0.0,
            {"z[0]": (0.0, math.sqrt(1 + 32 / 3))})


GROUPS = {
    "conjugate": [beta_binom, dir_mult, gamma_pois, normal_gamma, uniform_sd, halfcauchy_sd],
    "shapes": [ring, wide_narrow_2d, narrow_inside_2d, spike_1d, bimodal_1d, uniform_square, laplace_2d, banana_3d,
               funnel_2d, four_modes_3d, skew_2d, correlated_t_2d],
    "harder": [spike_slab_5d, banana_sharp_2d, loggamma_5d, funnel_10d, permuted_modes_3d],
}
COLUMNS = ["target", "d", "auto chose", "fit verdict", "fit log Z err", "k-hat",
           "evidence verdict", "evidence log Z err", "failed bounds", "mean err / sd",
           "sd err", "silently wrong", "s"]


def run(make, seed: int) -> dict:
    target, log_z, moments = make()
    t0 = time.perf_counter()
    fit = vifit.fit(target, "auto", seed=seed, progress=False)
    ev = vifit.evidence(target, fit, seed=seed)
    seconds = time.perf_counter() - t0
    failed = [n for n, e in ev.estimates.items() if n not in ev.verdict.unverified and (
        (e.kind == "lower" and e.estimate > log_z + 4 * e.se + 1e-3)
        or (e.kind == "upper" and e.estimate < log_z - 4 * e.se - 1e-3))]
    table = fit.summary(key=seed)
    mean_err = max((abs(table.loc[k, "mean"] - m) / s for k, (m, s) in moments.items()
                    if math.isfinite(s)), default=float("nan"))
    sd_err = max((abs(table.loc[k, "sd"] / s - 1) for k, (m, s) in moments.items()
                  if math.isfinite(s)), default=float("nan"))
    wrong = ((fit.verdict.label == "good" and abs(fit.log_z - log_z) >= 0.1)
             or (ev.verdict.label == "good" and abs(ev.log_z - log_z) >= 0.1) or bool(failed))
    return {
        "target": make.__name__, "d": target.dim,
        "auto chose": (fit.info.get("auto") or {}).get("chosen", fit.family.name),
        "fit verdict": fit.verdict.label,
        "fit log Z err": f"{fit.log_z - log_z:+.3f} ± {fit.log_z_se:.3f}",
        "k-hat": f"{fit.khat:.2f}", "evidence verdict": f"{ev.verdict.label} ({ev.recommended})",
        "evidence log Z err": f"{ev.log_z - log_z:+.3f} ± {ev.log_z_se:.3f}",
        "failed bounds": ", ".join(failed) or "none",
        "mean err / sd": "—" if math.isnan(mean_err) else f"{mean_err:.3f}",
        "sd err": "—" if math.isnan(sd_err) else f"{100 * sd_err:.1f}%",
        "silently wrong": "WRONG" if wrong else "no", "s": f"{seconds:.1f}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated target names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--baseline", type=Path, nargs="?", const=BASELINE, default=None,
                        help="list rows worse than an earlier run's (default: the committed "
                             "bench/baselines/small_targets.json, seed 0)")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    rows = []
    for group, makers in GROUPS.items():
        for make in makers:
            if only and make.__name__ not in only:
                continue
            row = run(make, args.seed)
            rows.append(row)
            if not args.markdown:
                print(f"[{group}] " + " | ".join(f"{c}: {row[c]}" for c in COLUMNS), flush=True)
    if args.markdown:
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "---|" * len(COLUMNS))
        for row in rows:
            print("| " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
    wrong = any(r["silently wrong"] == "WRONG" for r in rows)
    if args.baseline is not None:
        worse = worse_than(rows, json.loads(args.baseline.read_text()))
        print(f"\nagainst {args.baseline}: " + (f"{len(worse)} worse or changed" if worse
                                                 else "no row worse or changed"))
        for line in worse:
            print(f"  {line}")
        wrong = wrong or bool(worse)
    return 1 if wrong else 0


# The committed rows of docs/families.md's table (seed 0), and how much worse a row may get
# before ``worse_than`` names it: a log Z error (nats) or summary() error (sds, or a fraction
# of the sd) grown by more than WORSE and by half, or a verdict that changed. A "silently
# wrong" column cannot see a fit that got worse and says so ("not reliable"): a real
# posterior did exactly that unnoticed for two sessions (docs/bench.md, 2026-12-07).
BASELINE = Path(__file__).parent / "baselines" / "small_targets.json"
WORSE = 0.05


def _number(text: str) -> float:
    """The leading number of a cell ("+0.007 ± 0.002", "1.3%", "0.027"; NaN for "—")."""
    head = text.split(" ")[0].rstrip("%")
    try:
        value = float(head)
    except ValueError:
        return math.nan
    return value / 100 if text.split(" ")[0].endswith("%") else value


def worse_than(rows: list[dict], baseline: list[dict]) -> list[str]:
    """What got worse in ``rows`` than in ``baseline`` (targets in both), or changed its
    verdict (either way: a better label needs a look too), one line each."""
    old = {r["target"]: r for r in baseline}
    worse = []
    for row in rows:
        was = old.get(row["target"])
        if was is None:
            continue
        for col in ("fit log Z err", "evidence log Z err", "mean err / sd", "sd err"):
            a, b = abs(_number(was[col])), abs(_number(str(row[col])))
            if b > a + WORSE and b > 1.5 * a:
                worse.append(f"{row['target']}: {col} {was[col]} -> {row[col]}")
        for col in ("fit verdict", "evidence verdict", "failed bounds"):
            # the evidence verdict's recommended estimator may change freely
            a, b = was[col].split(" (")[0], str(row[col]).split(" (")[0]
            if a != b:
                worse.append(f"{row['target']}: {col} {was[col]} -> {row[col]}")
    return worse


if __name__ == "__main__":
    sys.exit(main())
