"""fit(callback=...) is called between compiled chunks with the steps done and the window's
mean objective."""

import numpy as np

import vifit
from conftest import gaussian_log_density
from test_fit import COV, MEAN


def test_callback_sees_every_window_of_the_trace():
    log_density, _ = gaussian_log_density(MEAN, COV)
    calls = []
    result = vifit.fit(vifit.Target(log_density, dim=4), "meanfield", steps=450, window=100,
                       seed=0, progress=False, callback=lambda n, v: calls.append((n, v)))
    steps = [n for n, _ in calls]
    assert steps == list(range(100, result.steps, 100)) + [result.steps]
    for n, value in calls:
        window = result.trace[max(0, (n - 1) // 100 * 100):n]
        assert np.isclose(value, np.nanmean(window), rtol=1e-5)
