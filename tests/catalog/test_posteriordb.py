"""The posteriordb models of the catalog are the Stan programs they translate.

Each model's log density on vifit's unconstrained z is checked against a direct NumPy/SciPy
transcription of its Stan program (written here from the .stan file, loops as in Stan, data
read from the shipped JSON files), with the Jacobians of the constraining maps NumPyro uses:
the difference of the log density between two random points must agree (the two sides may
differ by a constant). All in float64, where the two sides agree to rounding; the float32
catalog targets are checked finite at their starts by test_catalog.py and here.
"""

import gzip
import json
import zlib
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import stats
from scipy.integrate import solve_ivp
from scipy.special import expit, logsumexp

import vifit.catalog
from vifit import catalog

DATA = Path(vifit.catalog.__file__).parent / "data" / "posteriordb"


def stan_data(name):
    path = DATA / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    return json.loads(gzip.decompress((DATA / f"{name}.json.gz").read_bytes()))


# Constraining maps z -> value and their log |Jacobians|, as NumPyro's biject_to has them.
def positive(x):
    return np.exp(x), np.sum(x)


def unit_interval(x, lower=0.0, upper=1.0):
    s = expit(x)
    return lower + (upper - lower) * s, np.sum(np.log(upper - lower) + np.log(s) + np.log1p(-s))


def ordered(x):  # y_1 = x_1, y_k = y_{k-1} + exp(x_k), as in Stan
    y = np.cumsum(np.concatenate([x[:1], np.exp(x[1:])]))
    return y, np.sum(x[1:])


def positive_ordered(x):  # NumPyro: exp(ordered(x)) (Stan: exp(x_1), then + exp(x_k))
    o, log_j = ordered(x)
    return np.exp(o), log_j + np.sum(o)


def simplex2(x):  # stick-breaking, K = 2: (sigmoid(x), 1 - sigmoid(x))
    s = expit(x[0])
    return np.array([s, 1.0 - s]), np.log(s) + np.log1p(-s)


def normal(x, mu, sigma):
    return np.sum(stats.norm.logpdf(x, mu, sigma))


def halfcauchy(x, scale):
    return np.sum(stats.halfcauchy.logpdf(x, scale=scale))


def flat_regression(design, y):
    """beta flat, sigma flat on (0, inf), y ~ N(design beta, sigma)."""
    def logp(p):
        sigma, lj = positive(p["sigma"][0])
        return lj + normal(y, design @ p["beta"], sigma)
    return logp


# ---- the Stan programs, transcribed -----------------------------------------------------------

def ref_arK():
    d = stan_data("arK")
    y, K, T = np.asarray(d["y"]), d["K"], d["T"]

    def logp(p):
        sigma, lj = positive(p["sigma"][0])
        alpha, beta = p["alpha"][0], p["beta"]
        lp = normal(alpha, 0, 10) + normal(beta, 0, 10) + halfcauchy(sigma, 2.5)
        for t in range(K, T):
            mu = alpha
            for k in range(1, K + 1):
                mu = mu + beta[k - 1] * y[t - k]
            lp += normal(y[t], mu, sigma)
        return lp + lj
    return logp


def ref_arma11():
    y = np.asarray(stan_data("arma")["y"])

    def logp(p):
        sigma, lj = positive(p["sigma"][0])
        mu, phi, theta = p["mu"][0], p["phi"][0], p["theta"][0]
        err = np.empty_like(y)
        nu = mu + phi * mu
        err[0] = y[0] - nu
        for t in range(1, y.size):
            nu = mu + phi * y[t - 1] + theta * err[t - 1]
            err[t] = y[t] - nu
        return (lj + normal(mu, 0, 10) + normal(phi, 0, 2) + normal(theta, 0, 2)
                + halfcauchy(sigma, 2.5) + normal(err, 0, sigma))
    return logp


def ref_garch11():
    d = stan_data("garch")
    y, sigma1 = np.asarray(d["y"]), d["sigma1"]

    def logp(p):
        mu = p["mu"][0]
        alpha0, lj0 = positive(p["alpha0"][0])
        alpha1, lj1 = unit_interval(p["alpha1"][0])
        beta1, lj2 = unit_interval(p["beta1"][0], 0.0, 1.0 - alpha1)
        sigma = np.empty_like(y)
        sigma[0] = sigma1
        for t in range(1, y.size):
            sigma[t] = np.sqrt(alpha0 + alpha1 * (y[t - 1] - mu) ** 2 + beta1 * sigma[t - 1] ** 2)
        return lj0 + lj1 + lj2 + normal(y, mu, sigma)
    return logp


def forward_algorithm(log_theta, log_emit):
    N, K = log_emit.shape
    gamma = np.empty((N, K))
    gamma[0] = log_emit[0]
    for t in range(1, N):
        for k in range(K):
            acc = [gamma[t - 1, j] + log_theta[j, k] + log_emit[t, k] for j in range(K)]
            gamma[t, k] = logsumexp(acc)
    return logsumexp(gamma[N - 1])


def ref_hmm_example():
    y = np.asarray(stan_data("hmm_example")["y"])

    def logp(p):
        theta1, lj1 = simplex2(p["theta1"])
        theta2, lj2 = simplex2(p["theta2"])
        mu, lj3 = positive_ordered(p["mu"])
        log_theta = np.log(np.stack([theta1, theta2]))
        log_emit = stats.norm.logpdf(y[:, None], mu[None, :], 1.0)
        return (lj1 + lj2 + lj3 + normal(mu[0], 3, 1) + normal(mu[1], 10, 1)
                + forward_algorithm(log_theta, log_emit))
    return logp


def ref_hmm_drive_0():
    d = stan_data("bball_drive_event_0")
    u, v, alpha = np.asarray(d["u"]), np.asarray(d["v"]), np.asarray(d["alpha"], dtype=float)

    def logp(p):
        theta1, lj1 = simplex2(p["theta1"])
        theta2, lj2 = simplex2(p["theta2"])
        phi, lj3 = positive_ordered(p["phi"])
        lam, lj4 = positive_ordered(p["lambda"])
        lp = stats.dirichlet.logpdf(theta1, alpha[0]) + stats.dirichlet.logpdf(theta2, alpha[1])
        lp += normal(phi[0], 0, 1) + normal(phi[1], 3, 1)
        lp += normal(lam[0], 0, 1) + normal(lam[1], 3, 1)
        log_emit = (stats.expon.logpdf(u[:, None], scale=1 / phi[None, :])
                    + stats.expon.logpdf(v[:, None], scale=1 / lam[None, :]))
        log_theta = np.log(np.stack([theta1, theta2]))
        return lj1 + lj2 + lj3 + lj4 + lp + forward_algorithm(log_theta, log_emit)
    return logp


def ref_diamonds():
    d = stan_data("diamonds")
    X, Y = np.asarray(d["X"]), np.asarray(d["Y"])
    Xc = X[:, 1:] - X[:, 1:].mean(axis=0)

    def logp(p):
        sigma, lj = positive(p["sigma"][0])
        b, intercept = p["b"], p["Intercept"][0]
        lp = normal(b, 0, 1) + stats.t.logpdf(intercept, 3, 8, 10)
        lp += stats.t.logpdf(sigma, 3, 0, 10) - stats.t.logsf(0, 3, 0, 10)
        return lj + lp + normal(Y, intercept + Xc @ b, sigma)
    return logp


def ref_earn_height():
    d = stan_data("earnings")
    h = np.asarray(d["height"], dtype=float)
    return flat_regression(np.column_stack([np.ones_like(h), h]), np.asarray(d["earn"], float))


def ref_logearn_interaction():
    d = stan_data("earnings")
    h, m = np.asarray(d["height"], float), np.asarray(d["male"], float)
    design = np.column_stack([np.ones_like(h), h, m, h * m])
    return flat_regression(design, np.log(np.asarray(d["earn"], float)))


def kidiq(interaction):
    d = stan_data("kidiq")
    hs, iq = np.asarray(d["mom_hs"], float), np.asarray(d["mom_iq"], float)
    cols = [np.ones_like(hs), hs, iq] + ([hs * iq] if interaction else [])
    design, y = np.column_stack(cols), np.asarray(d["kid_score"], float)

    def logp(p):
        sigma, lj = positive(p["sigma"][0])
        return lj + halfcauchy(sigma, 2.5) + normal(y, design @ p["beta"], sigma)
    return logp


def ref_kilpisjarvi():
    d = stan_data("kilpisjarvi_mod")
    x, y = np.asarray(d["x"], float), np.asarray(d["y"], float)

    def logp(p):
        sigma, lj = positive(p["sigma"][0])
        alpha, beta = p["alpha"][0], p["beta"][0]
        return (lj + normal(alpha, d["pmualpha"], d["psalpha"])
                + normal(beta, d["pmubeta"], d["psbeta"]) + normal(y, alpha + beta * x, sigma))
    return logp


def ref_low_dim_gauss_mix():
    y = np.asarray(stan_data("low_dim_gauss_mix")["y"])

    def logp(p):
        mu, lj1 = ordered(p["mu"])
        sigma, lj2 = positive(p["sigma"])
        theta, lj3 = unit_interval(p["theta"][0])
        lp = np.sum(stats.halfnorm.logpdf(sigma, scale=2)) + normal(mu, 0, 2)
        lp += stats.beta.logpdf(theta, 5, 5)
        lp += np.sum(np.logaddexp(np.log(theta) + stats.norm.logpdf(y, mu[0], sigma[0]),
                                  np.log1p(-theta) + stats.norm.logpdf(y, mu[1], sigma[1])))
        return lj1 + lj2 + lj3 + lp
    return logp


def ref_logmesquite_logvas():
    d = {k: np.asarray(v, float) for k, v in stan_data("mesquite").items()}
    design = np.column_stack([
        np.ones(int(d["N"])), np.log(d["diam1"] * d["diam2"] * d["canopy_height"]),
        np.log(d["diam1"] * d["diam2"]), np.log(d["diam1"] / d["diam2"]),
        np.log(d["total_height"]), np.log(d["density"]), d["group"]])
    return flat_regression(design, np.log(d["weight"]))


def ref_nes():
    d = {k: np.asarray(v, float) for k, v in stan_data("nes2000").items()}
    a = d["age_discrete"]
    design = np.column_stack([np.ones_like(a), d["real_ideo"], d["race_adj"], a == 2, a == 3,
                              a == 4, d["educ1"], d["gender"], d["income"]]).astype(float)
    return flat_regression(design, d["partyid7"])


def ref_blr():
    d = stan_data("sblrc")
    X, y = np.asarray(d["X"]), np.asarray(d["y"])

    def logp(p):
        sigma, lj = positive(p["sigma"][0])
        beta = p["beta"]
        return lj + normal(beta, 0, 10) + normal(sigma, 0, 10) + normal(y, X @ beta, sigma)
    return logp


def lv_solution(theta, z_init, ts):
    def rhs(t, z):
        u, v = z
        return [(theta[0] - theta[1] * v) * u, (-theta[2] + theta[3] * u) * v]
    sol = solve_ivp(rhs, (0.0, ts[-1]), z_init, t_eval=ts, method="DOP853", rtol=1e-10,
                    atol=1e-10)
    return sol.y.T


def ref_lotka_volterra():
    d = stan_data("hudson_lynx_hare")
    ts, y_init, y = np.asarray(d["ts"], float), np.asarray(d["y_init"], float), np.asarray(d["y"])

    def logp(p):
        theta, lj1 = positive(p["theta"])
        z_init, lj2 = positive(p["z_init"])
        sigma, lj3 = positive(p["sigma"])
        z = lv_solution(theta, z_init, ts)
        lp = normal(theta[[0, 2]], 1, 0.5) + normal(theta[[1, 3]], 0.05, 0.05)
        lp += np.sum(stats.lognorm.logpdf(sigma, 1, scale=np.exp(-1)))
        lp += np.sum(stats.lognorm.logpdf(z_init, 1, scale=10))
        for k in range(2):
            lp += stats.lognorm.logpdf(y_init[k], sigma[k], scale=z_init[k])
            lp += np.sum(stats.lognorm.logpdf(y[:, k], sigma[k], scale=z[:, k]))
        return lj1 + lj2 + lj3 + lp
    return logp


def ref_eight_schools():  # posteriordb eight_schools-eight_schools_noncentered
    d = stan_data("eight_schools")
    y, s = np.asarray(d["y"], float), np.asarray(d["sigma"], float)

    def logp(p):
        tau, lj = positive(p["log_tau"][0])
        mu, theta_trans = p["mu"][0], p["theta_tilde"]
        theta = theta_trans * tau + mu
        return (lj + normal(theta_trans, 0, 1) + normal(y, theta, s) + normal(mu, 0, 5)
                + halfcauchy(tau, 5))
    return logp


def ref_gp_poisson():  # posteriordb gp_pois_regr-gp_pois_regr, jitter 1e-5 as the catalog's
    d = stan_data("gp_pois_regr")
    x, k = np.asarray(d["x"], float), np.asarray(d["k"])

    def logp(p):
        rho, lj1 = positive(p["rho"][0])
        alpha, lj2 = positive(p["alpha"][0])
        cov = alpha**2 * np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / rho**2)
        f = np.linalg.cholesky(cov + 1e-5 * np.eye(x.size)) @ p["f_tilde"]
        return (lj1 + lj2 + stats.gamma.logpdf(rho, 25, scale=1 / 4) + normal(alpha, 0, 2)
                + normal(p["f_tilde"], 0, 1) + np.sum(stats.poisson.logpmf(k, np.exp(f))))
    return logp


# name -> (transcription, the Stan parameter and transformed-parameter names)
MODELS = {
    "arK": (ref_arK, {"alpha", "beta", "sigma"}),
    "arma11": (ref_arma11, {"mu", "phi", "theta", "sigma"}),
    "hmm_drive_0": (ref_hmm_drive_0, {"theta1", "theta2", "phi", "lambda", "theta"}),
    "diamonds": (ref_diamonds, {"b", "Intercept", "sigma"}),
    "earn_height": (ref_earn_height, {"beta", "sigma"}),
    "logearn_interaction": (ref_logearn_interaction, {"beta", "sigma"}),
    "garch11": (ref_garch11, {"mu", "alpha0", "alpha1", "beta1"}),
    "hmm_example": (ref_hmm_example, {"theta1", "theta2", "mu", "theta"}),
    "lotka_volterra": (ref_lotka_volterra, {"theta", "z_init", "sigma", "z"}),
    "kidscore_momhsiq": (lambda: kidiq(False), {"beta", "sigma"}),
    "kidscore_interaction": (lambda: kidiq(True), {"beta", "sigma"}),
    "kilpisjarvi": (ref_kilpisjarvi, {"alpha", "beta", "sigma"}),
    "low_dim_gauss_mix": (ref_low_dim_gauss_mix, {"mu", "sigma", "theta"}),
    "logmesquite_logvas": (ref_logmesquite_logvas, {"beta", "sigma"}),
    "nes": (ref_nes, {"beta", "sigma"}),
    "blr": (ref_blr, {"beta", "sigma"}),
    # already in the catalog: the same posteriors (eight_schools, the example, reports mu, tau
    # and theta; the Stan program's theta_trans is its unconstrained theta_tilde)
    "eight_schools": (ref_eight_schools, {"mu", "tau", "theta"}),
    "gp_poisson": (ref_gp_poisson, {"rho", "alpha", "f_tilde", "f"}),
}
# Typical values (posteriordb's reference posterior) for the ODE: far from them the solution
# is stiff and the comparison would test the ODE solvers rather than the model.
LV_TYPICAL = {"theta": np.array([0.55, 0.028, 0.80, 0.024]), "z_init": np.array([34.0, 6.0]),
              "sigma": np.array([0.25, 0.25])}


def unpack(names, z):
    """{site: its unconstrained values} from z, by the target's coordinate names."""
    out = {}
    for name, value in zip(names, np.asarray(z, dtype=np.float64)):
        out.setdefault(name.split("[")[0], []).append(value)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("name", list(MODELS))
def test_log_density_is_the_stan_programs(name):
    transcription, stan_names = MODELS[name]
    ref = transcription()
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    with jax.enable_x64(True):
        target = catalog.get_model(name)
        if name == "lotka_volterra":
            center = np.asarray(target.unconstrain(LV_TYPICAL))
            points = center + 0.05 * rng.normal(size=(2, target.dim))
        else:
            points = np.asarray(target.init) + 0.5 * rng.normal(size=(2, target.dim))
        z = np.vstack([points, np.asarray(target.init)[None]])
        values, grads = jax.vmap(jax.value_and_grad(target.log_density))(z)
        values, grads = np.asarray(values), np.asarray(grads)
        names, _ = target.constrained_names()
    assert values.dtype == np.float64
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(grads)), name
    expected = [ref(unpack(target.param_names, p)) for p in points]
    scale = abs(expected[0]) + abs(expected[1])
    # float64 rounding; for the ODE, RK4's error (about 1e-7 relative in z) times the
    # sensitivity of the log density to log z (|residual| / sigma^2, a few per value).
    tol = 1e-9 * scale + (1e-4 if name == "lotka_volterra" else 1e-6)
    assert abs((values[0] - values[1]) - (expected[0] - expected[1])) < tol, (
        name, values[:2], expected)
    assert {n.split("[")[0] for n in names} == stan_names, (name, names)


@pytest.mark.parametrize("theta, z_init", [
    ([0.55, 0.028, 0.80, 0.024], [34.0, 6.0]),
    ([0.65, 0.032, 0.70, 0.020], [30.0, 4.0]),
    ([0.45, 0.024, 0.90, 0.028], [40.0, 8.0]),
])
def test_lotka_volterra_rk4_matches_an_accurate_solution(theta, z_init):
    from vifit.catalog.posteriordb.lotka_volterra import data, solve

    ts = data()[0]
    expected = lv_solution(np.array(theta), np.array(z_init), ts)
    with jax.enable_x64(True):
        z = np.asarray(solve(jax.numpy.asarray(z_init), jax.numpy.asarray(theta), ts))
    np.testing.assert_allclose(z, expected, rtol=1e-5)


def test_posteriordb_data_ship_with_the_package():
    from vifit.catalog.posteriordb import load

    assert load("diamonds")["X"][0][0] == 1  # the gzipped file
    shipped = {p.name for p in DATA.iterdir()}
    assert {"arK.json", "diamonds.json.gz", "hudson_lynx_hare.json", "README.md"} <= shipped
    from vifit.catalog import gp_poisson

    d = stan_data("gp_pois_regr")
    np.testing.assert_array_equal(gp_poisson.X, d["x"])
    np.testing.assert_array_equal(gp_poisson.K, d["k"])
