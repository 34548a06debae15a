"""lr='auto': the pilot picks a rate from the grid, and a fit started from it converges."""

import numpy as np

import vifit
from conftest import gaussian_log_density
from test_fit import COV, MEAN, gaussian_kl

SCALE = 10.0  # a posterior 10x wider (and further) than the families' start expects


def test_auto_learning_rate_fits_a_badly_scaled_target():
    log_density, _ = gaussian_log_density(MEAN * SCALE, COV * SCALE**2)
    target = vifit.Target(log_density, dim=4)
    kl = lambda r: gaussian_kl(r.mean(), r.covariance(), MEAN * SCALE, COV * SCALE**2)
    auto = vifit.fit(target, "fullrank", lr="auto", seed=0, steps=1500, progress=False)
    pilot = auto.info["lr_search"]
    assert pilot["chosen"] in pilot["grid"] and pilot["chosen"] > 0.01
    assert np.argmax(pilot["scores"]) == pilot["grid"].index(pilot["chosen"])
    assert auto.stop_reason == "converged"
    # 0.01 nats: the accuracy test_fit asks of a converged fit. The default rate, given the
    # same budget (pilot steps included), is still far away.
    assert kl(auto) < 0.01
    fixed = vifit.fit(target, "fullrank", seed=0, steps=1500 + pilot["pilot_steps"],
                      progress=False)
    assert kl(fixed) > 0.01
