"""Bounds hold when q is p to float precision: every standard error from the log weights
includes their floating-point rounding, so an ELBO or CUBO equal to log Z in exact arithmetic
is not on the wrong side of it by many (Monte Carlo-only) standard errors."""

from __future__ import annotations

import math

import jax.numpy as jnp

import vifit

OFFSET = 9.591  # a constant whose float32 ulp (1e-6) dwarfs the Monte Carlo error of q = p
LOG_Z = OFFSET


def log_p(z):
    return OFFSET - 0.5 * jnp.sum((z - 1.5) ** 2) - math.log(2 * math.pi)


def test_exact_q_keeps_bounds_on_the_right_side():
    target = vifit.Target(log_p, dim=2, name="exact", exact={"log_z": LOG_Z})
    start = vifit.FullRank().from_gaussian(jnp.array([1.5, 1.5]), jnp.eye(2))
    fit = vifit.fit(target, "fullrank", init_params=start, optimizer="natgrad", steps=200,
                    progress=False)
    ev = vifit.evidence(target, fit, ais=False)
    for name in ("elbo", "iwae"):
        e = ev.estimates[name]
        assert e.estimate < LOG_Z + 4 * e.se, (name, e.estimate - LOG_Z, e.se)
    cubo = ev.estimates["cubo"]
    assert cubo.estimate > LOG_Z - 4 * cubo.se, (cubo.estimate - LOG_Z, cubo.se)
    assert cubo.details["rounding_se"] > 0
