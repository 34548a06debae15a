"""Random NumPyro models in one and two unconstrained dimensions with exact log Z, for the
audit in `bench/random_targets.py --models`.

    PYTHONPATH=src .venv/bin/python bench/random_targets.py --models --seeds 1-60 --jobs 2

Where `random_targets.py`'s mixtures live on z itself, these reach vifit as a user's model
does: through `vifit.from_numpyro`, so every constrained site is fitted on NumPyro's
unconstrained scale with its log-Jacobian, where a density piled against a boundary (a Beta
with parameters below 1, a Gamma of shape 0.05, a half-Cauchy of scale 1e-3) becomes a long
exponential or polynomial tail. Each model is one of:

- a single site from a normalized distribution (Beta, Gamma, inverse-gamma, log-normal,
  half-Cauchy, half-normal, exponential, uniform, Student-t, a normal truncated at 0 whose
  mass sits against the bound, a two-component mixture of Gammas or of Betas): log Z = 0;
- two such sites, independent, or the second's scale set by the first (a funnel: y ~ N(m, s)
  with s from the first site; a Normal-Gamma prior): the joint is normalized, log Z = 0;
- a Dirichlet over three categories (two unconstrained coordinates), parameters 0.1 to 10;
- a conjugate model with data, whose log Z is the marginal likelihood in closed form:
  Beta-binomial, Gamma-Poisson, and a normal mean and precision under a Normal-Gamma prior;

plus ``numpyro.factor`` of a random constant in [-30, 30], added to log Z. ``pymc_model_of``
writes the same models in PyMC (`random_targets.py --pymc`, through `vifit.from_pymc`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import betaln, gammaln


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _site(rng: np.random.Generator) -> dict:
    """One positive, bounded or real site: its distribution's name and parameters."""
    kind = str(rng.choice(["beta", "gamma", "invgamma", "lognormal", "halfcauchy",
                           "halfnormal", "exponential", "uniform", "studentt", "truncnormal",
                           "gamma_mix", "beta_mix"]))
    p: dict = {"kind": kind}
    if kind == "beta":
        p.update(a=_log_uniform(rng, 0.05, 20), b=_log_uniform(rng, 0.05, 20))
    elif kind in ("gamma", "invgamma"):
        p.update(a=_log_uniform(rng, 0.05, 50), rate=_log_uniform(rng, 0.01, 100))
    elif kind == "lognormal":
        p.update(m=float(rng.normal() * 3), s=_log_uniform(rng, 0.05, 3))
    elif kind in ("halfcauchy", "halfnormal"):
        p.update(s=_log_uniform(rng, 1e-3, 100))
    elif kind == "exponential":
        p.update(rate=_log_uniform(rng, 1e-2, 1e2))
    elif kind == "uniform":
        lo = float(rng.normal() * 10)
        p.update(lo=lo, hi=lo + _log_uniform(rng, 1e-2, 1e2))
    elif kind == "studentt":
        p.update(df=float(rng.choice([1.0, 2.0, 5.0])), m=float(rng.normal() * 10),
                 s=_log_uniform(rng, 0.01, 10))
    elif kind == "truncnormal":
        s = _log_uniform(rng, 0.1, 10)
        p.update(m=float(rng.uniform(-5, 2)) * s, s=s)
    elif kind == "gamma_mix":
        p.update(w=float(rng.uniform(0.05, 0.95)), a=[_log_uniform(rng, 0.3, 50) for _ in "ab"],
                 rate=[_log_uniform(rng, 0.1, 10) for _ in "ab"])
    else:  # beta_mix
        p.update(w=float(rng.uniform(0.05, 0.95)), a=[_log_uniform(rng, 0.3, 30) for _ in "ab"],
                 b=[_log_uniform(rng, 0.3, 30) for _ in "ab"])
    return p


def spec(seed: int) -> dict:
    """The random model of ``seed`` (plain Python and NumPy parameters)."""
    rng = np.random.default_rng(10_000 + seed)
    shape = str(rng.choice(["one", "two", "funnel", "normal_gamma", "dirichlet",
                            "beta_binomial", "gamma_poisson", "normal_data"],
                           p=[0.25, 0.15, 0.15, 0.1, 0.1, 0.08, 0.08, 0.09]))
    sp: dict = {"seed": seed, "shape": shape, "offset": float(rng.uniform(-30, 30))}
    if shape == "one":
        sp["sites"] = [_site(rng)]
    elif shape == "two":
        sp["sites"] = [_site(rng), _site(rng)]
    elif shape == "funnel":
        scale = _site(rng)
        while scale["kind"] in ("studentt", "uniform", "beta", "beta_mix"):
            scale = _site(rng)
        sp["sites"] = [scale]
        sp["m"] = float(rng.normal() * 3)
    elif shape == "normal_gamma":
        sp.update(a=_log_uniform(rng, 0.5, 20), rate=_log_uniform(rng, 0.1, 10),
                  m=float(rng.normal() * 3), kappa=_log_uniform(rng, 0.01, 10))
    elif shape == "dirichlet":
        sp["alpha"] = [_log_uniform(rng, 0.1, 10) for _ in range(3)]
    elif shape == "beta_binomial":
        n = int(rng.choice([5, 50, 1000]))
        sp.update(a=_log_uniform(rng, 0.1, 10), b=_log_uniform(rng, 0.1, 10), n=n,
                  k=int(rng.choice([0, int(rng.integers(0, n + 1)), n])))
    elif shape == "gamma_poisson":
        rate_true = _log_uniform(rng, 0.01, 100)
        sp.update(a=_log_uniform(rng, 0.1, 10), rate=_log_uniform(rng, 0.1, 10),
                  y=rng.poisson(rate_true, size=int(rng.choice([1, 20, 500]))).tolist())
    else:  # normal_data: y_i ~ N(mu, 1/sqrt(tau)), (mu, tau) ~ Normal-Gamma
        n = int(rng.choice([2, 10, 200]))
        sp.update(a=_log_uniform(rng, 0.5, 10), rate=_log_uniform(rng, 0.1, 10),
                  m=float(rng.normal() * 3), kappa=_log_uniform(rng, 0.01, 10),
                  y=(rng.normal(size=n) * _log_uniform(rng, 0.01, 100)
                     + rng.normal() * 10).tolist())
    return sp


def _distribution(p: dict):
    import jax.numpy as jnp
    import numpyro.distributions as dist

    k = p["kind"]
    if k == "beta":
        return dist.Beta(p["a"], p["b"])
    if k == "gamma":
        return dist.Gamma(p["a"], p["rate"])
    if k == "invgamma":
        return dist.InverseGamma(p["a"], p["rate"])
    if k == "lognormal":
        return dist.LogNormal(p["m"], p["s"])
    if k == "halfcauchy":
        return dist.HalfCauchy(p["s"])
    if k == "halfnormal":
        return dist.HalfNormal(p["s"])
    if k == "exponential":
        return dist.Exponential(p["rate"])
    if k == "uniform":
        return dist.Uniform(p["lo"], p["hi"])
    if k == "studentt":
        return dist.StudentT(p["df"], p["m"], p["s"])
    if k == "truncnormal":
        return dist.TruncatedNormal(p["m"], p["s"], low=0.0)
    mix = dist.Categorical(probs=jnp.array([p["w"], 1 - p["w"]]))
    if k == "gamma_mix":
        return dist.MixtureSameFamily(mix, dist.Gamma(jnp.array(p["a"]), jnp.array(p["rate"])))
    return dist.MixtureSameFamily(mix, dist.Beta(jnp.array(p["a"]), jnp.array(p["b"])))


def model_of(sp: dict):
    """The NumPyro model of ``spec``: no arguments, data closed over."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def model():
        shape = sp["shape"]
        if shape in ("one", "two"):
            for i, site in enumerate(sp["sites"]):
                numpyro.sample(f"x{i}", _distribution(site))
        elif shape == "funnel":
            s = numpyro.sample("s", _distribution(sp["sites"][0]))
            numpyro.sample("y", dist.Normal(sp["m"], s))
        elif shape == "normal_gamma":
            tau = numpyro.sample("tau", dist.Gamma(sp["a"], sp["rate"]))
            numpyro.sample("mu", dist.Normal(sp["m"], 1 / jnp.sqrt(sp["kappa"] * tau)))
        elif shape == "dirichlet":
            numpyro.sample("p", dist.Dirichlet(jnp.array(sp["alpha"])))
        elif shape == "beta_binomial":
            x = numpyro.sample("x", dist.Beta(sp["a"], sp["b"]))
            numpyro.sample("k", dist.Binomial(sp["n"], x), obs=sp["k"])
        elif shape == "gamma_poisson":
            lam = numpyro.sample("lam", dist.Gamma(sp["a"], sp["rate"]))
            numpyro.sample("y", dist.Poisson(lam), obs=jnp.array(sp["y"], jnp.float32))
        else:
            tau = numpyro.sample("tau", dist.Gamma(sp["a"], sp["rate"]))
            mu = numpyro.sample("mu", dist.Normal(sp["m"], 1 / jnp.sqrt(sp["kappa"] * tau)))
            numpyro.sample("y", dist.Normal(mu, 1 / jnp.sqrt(tau)),
                           obs=jnp.array(sp["y"], jnp.float32))
        numpyro.factor("offset", sp["offset"])

    return model


def _pymc_distribution(pm, name: str, p: dict):
    k = p["kind"]
    if k == "beta":
        return pm.Beta(name, alpha=p["a"], beta=p["b"])
    if k == "gamma":
        return pm.Gamma(name, alpha=p["a"], beta=p["rate"])
    if k == "invgamma":  # NumPyro's "rate" of an inverse gamma is PyMC's beta (a scale)
        return pm.InverseGamma(name, alpha=p["a"], beta=p["rate"])
    if k == "lognormal":
        return pm.LogNormal(name, mu=p["m"], sigma=p["s"])
    if k == "halfcauchy":
        return pm.HalfCauchy(name, beta=p["s"])
    if k == "halfnormal":
        return pm.HalfNormal(name, sigma=p["s"])
    if k == "exponential":
        return pm.Exponential(name, lam=p["rate"])
    if k == "uniform":
        return pm.Uniform(name, lower=p["lo"], upper=p["hi"])
    if k == "studentt":
        return pm.StudentT(name, nu=p["df"], mu=p["m"], sigma=p["s"])
    if k == "truncnormal":
        return pm.TruncatedNormal(name, mu=p["m"], sigma=p["s"], lower=0.0)
    w = [p["w"], 1 - p["w"]]
    if k == "gamma_mix":
        comps = [pm.Gamma.dist(alpha=a, beta=r) for a, r in zip(p["a"], p["rate"])]
    else:
        comps = [pm.Beta.dist(alpha=a, beta=b) for a, b in zip(p["a"], p["b"])]
    return pm.Mixture(name, w=w, comp_dists=comps)


def pymc_model_of(sp: dict):
    """``spec`` as a ``pymc.Model`` (the same joint density as ``model_of``'s, on PyMC's own
    unconstrained scale: its transforms differ from NumPyro's)."""
    import pymc as pm

    with pm.Model() as model:
        shape = sp["shape"]
        if shape in ("one", "two"):
            for i, site in enumerate(sp["sites"]):
                _pymc_distribution(pm, f"x{i}", site)
        elif shape == "funnel":
            s = _pymc_distribution(pm, "s", sp["sites"][0])
            pm.Normal("y", mu=sp["m"], sigma=s)
        elif shape == "normal_gamma":
            tau = pm.Gamma("tau", alpha=sp["a"], beta=sp["rate"])
            pm.Normal("mu", mu=sp["m"], tau=sp["kappa"] * tau)
        elif shape == "dirichlet":
            pm.Dirichlet("p", a=np.array(sp["alpha"]))
        elif shape == "beta_binomial":
            x = pm.Beta("x", alpha=sp["a"], beta=sp["b"])
            pm.Binomial("k", n=sp["n"], p=x, observed=sp["k"])
        elif shape == "gamma_poisson":
            lam = pm.Gamma("lam", alpha=sp["a"], beta=sp["rate"])
            pm.Poisson("y", mu=lam, observed=np.array(sp["y"]))
        else:
            tau = pm.Gamma("tau", alpha=sp["a"], beta=sp["rate"])
            mu = pm.Normal("mu", mu=sp["m"], tau=sp["kappa"] * tau)
            pm.Normal("y", mu=mu, tau=tau, observed=np.array(sp["y"]))
        pm.Potential("offset", pm.math.constant(sp["offset"]))
    return model


def log_z(sp: dict) -> float:
    """The exact log Z of ``spec``'s model (float64)."""
    shape, out = sp["shape"], sp["offset"]
    if shape == "beta_binomial":
        n, k = sp["n"], sp["k"]
        out += (gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
                + betaln(sp["a"] + k, sp["b"] + n - k) - betaln(sp["a"], sp["b"]))
    elif shape == "gamma_poisson":
        out += _gamma_poisson_log_z(np.asarray(sp["y"], float), sp["a"], sp["rate"])
    elif shape == "normal_data":
        y = np.asarray(np.float32(sp["y"]), float)  # the model sees float32 data
        out += _normal_gamma_log_z(y, sp["a"], sp["rate"], sp["m"], sp["kappa"])
    return float(out)


def _gamma_poisson_log_z(y: np.ndarray, a: float, b: float) -> float:
    """log of the marginal likelihood of counts ``y`` under lambda ~ Gamma(a, rate b)."""
    s = y.sum()
    return float(a * math.log(b) - gammaln(a) + gammaln(a + s) - (a + s) * math.log(b + len(y))
                 - gammaln(y + 1).sum())


def _normal_gamma_log_z(y: np.ndarray, a: float, b: float, m: float, kappa: float) -> float:
    """log of the marginal likelihood of normal observations ``y`` under a Normal-Gamma(m,
    kappa, a, rate b) prior on their mean and precision: the posterior's normalizers over the
    prior's, times (2 pi)^(-n/2)."""
    n, ybar = len(y), y.mean()
    kappa_n, a_n = kappa + n, a + n / 2
    b_n = b + 0.5 * ((y - ybar) ** 2).sum() + kappa * n * (ybar - m) ** 2 / (2 * kappa_n)
    return float(gammaln(a_n) - gammaln(a) + a * math.log(b) - a_n * math.log(b_n)
                 + 0.5 * math.log(kappa / kappa_n) - 0.5 * n * math.log(2 * math.pi))


def describe(sp: dict) -> str:
    def site(p: dict) -> str:
        args = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else
                         f"{k} {[round(x, 3) for x in v]}" for k, v in p.items() if k != "kind")
        return f"{p['kind']}({args})"

    shape = sp["shape"]
    if shape in ("one", "two"):
        return " x ".join(site(p) for p in sp["sites"])
    if shape == "funnel":
        return f"funnel: s ~ {site(sp['sites'][0])}, y ~ N({sp['m']:.2f}, s)"
    if shape == "dirichlet":
        return f"dirichlet({[round(a, 3) for a in sp['alpha']]})"
    if shape == "beta_binomial":
        return (f"beta_binomial(a {sp['a']:.3g}, b {sp['b']:.3g}; k {sp['k']} of "
                f"n {sp['n']})")
    if shape == "gamma_poisson":
        y = sp["y"]
        return (f"gamma_poisson(a {sp['a']:.3g}, rate {sp['rate']:.3g}; {len(y)} counts, "
                f"mean {np.mean(y):.3g})")
    head = (f"a {sp['a']:.3g}, rate {sp['rate']:.3g}, m {sp['m']:.2f}, "
            f"kappa {sp['kappa']:.3g}")
    if shape == "normal_gamma":
        return f"normal_gamma({head})"
    y = np.asarray(sp["y"])
    return f"normal_data({head}; {len(y)} obs, mean {y.mean():.3g}, sd {y.std():.3g})"


# -- data targets ------------------------------------------------------------------------------

def data_spec(seed: int) -> dict:
    """A random conjugate model of many rows (``--data``): Gamma-Poisson counts, normal data
    under a Normal-Gamma prior, or Beta-Bernoulli trials, with 1,000 to 300,000 float32 rows."""
    rng = np.random.default_rng(20_000 + seed)
    kind = str(rng.choice(["poisson", "normal", "bernoulli"]))
    n = int(np.exp(rng.uniform(np.log(1_000), np.log(300_000))))
    sp: dict = {"seed": seed, "kind": kind, "n": n, "a": _log_uniform(rng, 0.5, 10),
                "rate": _log_uniform(rng, 0.1, 10), "data_seed": int(rng.integers(2**31))}
    if kind == "poisson":
        sp["lam"] = _log_uniform(rng, 0.01, 200)
    elif kind == "normal":
        sp.update(m=float(rng.normal() * 3), kappa=_log_uniform(rng, 0.01, 10),
                  loc=float(rng.normal() * 10), sd=_log_uniform(rng, 0.01, 100))
    else:
        sp["p"] = float(rng.uniform(0.001, 0.999))
    return sp


def data_rows(sp: dict) -> np.ndarray:
    """``data_spec``'s rows, float32 ``(n,)``."""
    rng = np.random.default_rng(sp["data_seed"])
    if sp["kind"] == "poisson":
        return rng.poisson(sp["lam"], size=sp["n"]).astype(np.float32)
    if sp["kind"] == "normal":
        return (rng.normal(size=sp["n"]) * sp["sd"] + sp["loc"]).astype(np.float32)
    return (rng.uniform(size=sp["n"]) < sp["p"]).astype(np.float32)


def data_target(sp: dict):
    """``data_spec``'s model as a ``vifit.DataTarget`` on the real line (log lambda; log tau
    and mu; logit p), log-Jacobians included."""
    import jax
    import jax.numpy as jnp

    import vifit

    a, b, kind = sp["a"], sp["rate"], sp["kind"]
    const = a * math.log(b) - float(gammaln(a))
    if kind == "poisson":
        def log_prior(z):
            return const + a * z[0] - b * jnp.exp(z[0])

        def log_lik(z, rows):
            return rows["y"] * z[0] - jnp.exp(z[0]) - jax.scipy.special.gammaln(rows["y"] + 1)
        dim = 1
    elif kind == "normal":
        m, kappa = sp["m"], sp["kappa"]

        def log_prior(z):
            tau = jnp.exp(z[0])
            return (const + a * z[0] - b * tau - 0.5 * math.log(2 * math.pi)
                    + 0.5 * jnp.log(kappa * tau) - 0.5 * kappa * tau * (z[1] - m) ** 2)

        def log_lik(z, rows):
            return (-0.5 * math.log(2 * math.pi) + 0.5 * z[0]
                    - 0.5 * jnp.exp(z[0]) * (rows["y"] - z[1]) ** 2)
        dim = 2
    else:  # Beta(a, b) on p, its logit z
        def log_prior(z):
            return (a * jax.nn.log_sigmoid(z[0]) + b * jax.nn.log_sigmoid(-z[0])
                    - float(betaln(a, b)))

        def log_lik(z, rows):
            return (rows["y"] * jax.nn.log_sigmoid(z[0])
                    + (1 - rows["y"]) * jax.nn.log_sigmoid(-z[0]))
        dim = 1
    return vifit.DataTarget(log_prior, log_lik, {"y": data_rows(sp)}, dim=dim,
                            name=f"data{sp['seed']}")


def data_log_z(sp: dict) -> float:
    """The exact log Z of ``data_spec``'s model, from its float32 rows in float64."""
    y = data_rows(sp).astype(np.float64)
    n, a, b = len(y), sp["a"], sp["rate"]
    if sp["kind"] == "poisson":
        return _gamma_poisson_log_z(y, a, b)
    if sp["kind"] == "normal":
        return _normal_gamma_log_z(y, a, b, sp["m"], sp["kappa"])
    k = y.sum()
    return float(betaln(a + k, b + n - k) - betaln(a, b))


def data_describe(sp: dict) -> str:
    what = {"poisson": f"lambda {sp.get('lam', 0):.3g}",
            "normal": f"loc {sp.get('loc', 0):.3g}, sd {sp.get('sd', 0):.3g}",
            "bernoulli": f"p {sp.get('p', 0):.3g}"}[sp["kind"]]
    return f"{sp['kind']} rows: {sp['n']:,} ({what}); prior a {sp['a']:.3g}, rate {sp['rate']:.3g}"
