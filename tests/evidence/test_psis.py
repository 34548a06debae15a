"""vifit's own PSIS: the generalized Pareto fit recovers known shapes, and (where ArviZ 0.2x is
installed) it gives ArviZ's numbers, so k-hats mean the same under either ArviZ."""

import numpy as np
import pytest

from vifit.evidence.psis import gpd_fit, gpd_quantile, psis, tail_length


@pytest.mark.parametrize("k", [0.2, 0.5, 0.9])
def test_gpd_fit_recovers_shape(k):
    # Exact GPD draws by inversion; the fit's k has sd about (1 + k) / sqrt(m) for m draws
    # (the MLE's asymptotic sd), plus a prior pull of 10 (0.5 - k) / (m + 10).
    rng = np.random.default_rng(1)
    m, sigma = 4000, 2.0
    x = np.sort(gpd_quantile(rng.uniform(size=m), k, sigma))
    k_hat, sigma_hat = gpd_fit(x)
    bias = 10 * (0.5 - k) / (m + 10)
    assert abs(k_hat - k - bias) < 4 * (1 + k) / np.sqrt(m)
    assert abs(sigma_hat / sigma - 1) < 0.1


def test_psis_on_light_and_heavy_tails():
    rng = np.random.default_rng(2)
    n = 4000
    _, k_light = psis(rng.normal(0, 0.3, n))  # log-normal weights, tiny sd: light tail
    _, k_heavy = psis(np.log(rng.pareto(1 / 0.9, n)))  # Pareto weights with k = 0.9
    assert k_light < 0.3
    assert abs(k_heavy - 0.9) < 4 * 1.9 / np.sqrt(tail_length(n))
    lw = rng.normal(0, 2, n)
    smoothed, _ = psis(lw)
    assert smoothed.max() <= lw.max() + 1e-12  # capped at the largest raw weight
    order = np.argsort(lw)
    assert np.all(np.diff(smoothed[order]) >= -1e-12)  # smoothing keeps the order


@pytest.mark.parametrize("m", [20, 1777])
def test_tied_exceedances_read_as_a_bounded_tail(m):
    # Weights made equal by rounding: most of the grid lies outside the tied exceedances'
    # support, where the profile likelihood is NaN; at m = 1777 that made every grid weight NaN
    # and the fit divided by zero. A tail with one value is bounded: k far below 0.
    for value in (1.0, 1e-3, 1.9e-6):
        k, sigma = gpd_fit(np.full(m, value))
        assert k < -1 and sigma > 0


def test_a_tail_constant_to_rounding_has_no_shape():
    """Log weights 1.8 + 1e-6 t_2 in float32 (a q equal to p but for rounding): the top 190
    of 4,000 span 2e-4 nats in steps of 1.2e-7 (62 distinct values), and the Pareto fit read
    0.58 (on an exact mixture's fit, 1.17). Smoothing them changes nothing; k-hat is 0. The
    same shape at a visible scale keeps its k-hat."""
    from vifit.evidence.psis import CONSTANT_SPREAD

    t = np.random.default_rng(0).standard_t(2.0, 4000)
    lw = (np.float32(1.8) + np.float32(1e-6) * t.astype(np.float32)).astype(np.float64)
    top = np.sort(lw)[-tail_length(lw.size) - 1:]
    assert top[-1] - top[0] < CONSTANT_SPREAD
    smoothed, k = psis(lw)
    assert k == 0.0 and np.array_equal(smoothed, lw)
    assert psis(1.8 + t)[1] > 0.4


def test_too_short_a_tail_has_no_k():
    lw, k = psis(np.array([0.0, 1.0, 2.0, 3.0, 4.0]))
    assert k == np.inf and np.allclose(lw, [0, 1, 2, 3, 4])


def test_matches_arviz_psislw_where_present():
    az = pytest.importorskip("arviz")
    if not hasattr(az, "psislw"):
        pytest.skip("ArviZ 1.x has no az.psislw")
    rng = np.random.default_rng(3)
    for n, scale in [(30, 1.0), (1000, 0.5), (8000, 3.0)]:
        lw = rng.standard_t(2.0, n) * scale
        want, k_want = az.psislw(lw.copy(), reff=1.0, normalize=False)
        got, k_got = psis(lw)
        assert k_got == pytest.approx(float(k_want), abs=1e-10)
        np.testing.assert_allclose(got, want, atol=1e-10)
