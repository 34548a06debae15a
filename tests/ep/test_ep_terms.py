"""Tilted moments of each term against adaptive numerical integration (scipy.integrate.quad)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import vifit.ep as ep
from vifit.errors import ConfigError


def grid_moments(log_t, m, v, points=1_000_001):
    """log Z, mean, variance of N(u; m, v) t(u) by the trapezoid rule on a uniform grid of
    ``points`` over m +- 40 sd (spacing 8e-5 sd: hundreds of nodes across the narrowest
    feature here, so the rule is accurate to rounding; beyond 40 sd the mass is < e^-800)."""
    sd = math.sqrt(v)
    u = np.linspace(m - 40 * sd, m + 40 * sd, points)
    lg = stats.norm.logpdf(u, m, sd) + log_t(u)
    top = lg.max()
    g = np.exp(lg - top)
    z = np.trapezoid(g, u)
    mean = np.trapezoid(u * g, u) / z
    var = np.trapezoid((u - mean) ** 2 * g, u) / z
    return math.log(z) + top, mean, var


# (mean, variance): moderate, wide, narrow and very wide cavities.
CAVITIES = [(0.3, 0.5), (-2.0, 4.0), (1.5, 0.01), (-0.5, 25.0), (0.0, 0.5)]

CASES = [
    # term, scipy log t(u; datum), data
    (ep.Probit(), lambda u, y: special.log_ndtr(y * u), [1.0, -1.0]),
    (ep.Logistic(), lambda u, y: -np.logaddexp(0.0, -y * u), [1.0, -1.0]),
    (ep.Poisson(), lambda u, y: stats.poisson.logpmf(y, np.exp(u)), [0.0, 3.0, 120.0]),
    (ep.StudentT(df=4.0, scale=0.5), lambda u, y: stats.t.logpdf(y, 4.0, u, 0.5), [0.2, 3.0]),
    (ep.Gaussian(sd=0.7), lambda u, y: stats.norm.logpdf(y, u, 0.7), [0.4, -3.0]),
]


@pytest.mark.parametrize("term, log_t, data", CASES, ids=[c[0].name for c in CASES])
def test_tilted_moments_match_a_fine_grid(x64, term, log_t, data):
    ys, ms, vs = (np.array(a, dtype=np.float64) for a in zip(*[
        (y, m, v) for y in data for m, v in CAVITIES]))
    got = np.stack(jax.jit(jax.vmap(term.tilted))(jnp.asarray(ms), jnp.asarray(vs),
                                                  jnp.asarray(ys)), axis=1)
    for row, y, m, v in zip(got, ys, ms, vs):
        want = np.array(grid_moments(lambda u: log_t(u, y), m, v))
        # Exact terms: rounding only. Quadrature terms: the default sinh-trapezoid rule
        # (96 nodes) converges exponentially; its documented accuracy (QuadratureTerm,
        # docs/ep.md) is 1e-8 of the tilted sd (we measured <= 6e-10 on these cases).
        tol = 1e-9 if term.exact else 1e-8
        scale = np.array([1.0, math.sqrt(want[2]), want[2]])
        assert np.all(np.abs(row - want) <= tol * scale), (term.name, y, m, v, row, want)


def test_hermite_rule_and_custom_terms(x64):
    """A user's own log t gives the built-in's moments; the Gauss-Hermite rule (order 64) is
    accurate where the tilted density is close to Gaussian (a moderate cavity)."""
    ms, vs = jnp.array([0.3, -2.0, 1.5]), jnp.array([0.5, 4.0, 0.01])
    ys = jnp.array([-1.0, 1.0, -1.0])
    terms = (ep.Logistic(), ep.Custom(lambda u, y: jax.nn.log_sigmoid(y * u)),
             ep.Logistic(order=64, rule="hermite"))
    builtin, custom, hermite = jax.jit(lambda ms, vs, ys: [
        jax.vmap(t.tilted)(ms, vs, ys) for t in terms])(ms, vs, ys)
    np.testing.assert_allclose(np.array(custom), np.array(builtin), rtol=1e-12, atol=1e-14)
    # Measured worst error of Gauss-Hermite-64 on these cavities: 3e-14 (see QuadratureTerm).
    np.testing.assert_allclose(np.array(hermite), np.array(builtin), rtol=1e-8, atol=1e-10)
    with pytest.raises(ConfigError, match="rule"):
        ep.Logistic(rule="simpson")


def test_bad_data_and_terms_are_refused():
    with pytest.raises(ConfigError, match="binary labels"):
        ep.Factorized(ep.Probit(), [0.0, 2.0], np.eye(2))
    with pytest.raises(ConfigError, match="non-negative integer counts"):
        ep.Factorized(ep.Poisson(), [1.5, 2.0], np.eye(2))
    with pytest.raises(ConfigError, match="unknown term"):
        ep.Factorized("probitt", [1.0, -1.0], np.eye(2))
    with pytest.raises(ConfigError, match="shape"):
        ep.Factorized("probit", [1.0, -1.0], np.ones((3, 2)))
    with pytest.raises(ConfigError, match="positive definite"):
        ep.Factorized("probit", [1.0, -1.0], np.eye(2), prior_cov=np.ones((2, 2)))
