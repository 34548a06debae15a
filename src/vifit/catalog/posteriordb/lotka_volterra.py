"""Lotka-Volterra predator-prey dynamics of the Hudson's Bay Company hare and lynx pelts
(posteriordb ``hudson_lynx_hare-lotka_volterra``; 1900-1920, thousands of pelts):

    du/dt = (alpha - beta v) u,  dv/dt = (-gamma + delta u) v   (u: hares, v: lynx),
    theta = (alpha, beta, gamma, delta) > 0,
    alpha, gamma ~ N(1, 0.5^2),  beta, delta ~ N(0.05, 0.05^2)  (truncated to theta > 0),
    z_init_k ~ LogNormal(log 10, 1),  sigma_k ~ LogNormal(-1, 1),
    z(t) = the ODE's solution from z(0) = z_init, at t = 1, ..., 20,
    y_init_k ~ LogNormal(log z_init_k, sigma_k^2),  y_tk ~ LogNormal(log z_k(t), sigma_k^2).

The Stan program solves the ODE with ``integrate_ode_rk45`` (relative tolerance 1e-5,
absolute 1e-3); here it is classical fixed-step Runge-Kutta 4 with 20 steps a year (h = 0.05)
in a ``lax.scan``, differentiable by JAX. In float64 it matches an rtol 1e-10 solution to
about 1e-7 relative at the posterior's parameters (tests/catalog/test_posteriordb.py); in
float32 rounding gives about 1e-6. ``z`` (Stan's transformed parameter) is a deterministic
site.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from vifit.adapters.numpyro import from_numpyro
from vifit.catalog.posteriordb import load
from vifit.target import Target

DESCRIPTION = ("Lotka-Volterra ODE, hare and lynx pelts, posteriordb "
               "hudson_lynx_hare-lotka_volterra (real, N=20, d=8)")

STEPS_PER_UNIT = 20  # RK4 steps per unit of time (h = 0.05 years)


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Measurement times ``ts (N,)``, ``y_init (2,)`` and ``y (N, 2)`` (hares, lynx)."""
    d = load("hudson_lynx_hare")
    return (np.asarray(d["ts"], dtype=np.float64), np.asarray(d["y_init"], dtype=np.float64),
            np.asarray(d["y"], dtype=np.float64))


def dz_dt(z, theta):
    u, v = z[0], z[1]
    alpha, beta, gamma, delta = theta[0], theta[1], theta[2], theta[3]
    return jnp.stack([(alpha - beta * v) * u, (-gamma + delta * u) * v])


def solve(z_init, theta, ts, steps_per_unit: int = STEPS_PER_UNIT):
    """The ODE's state at times ``ts (N,)`` (increasing, > 0) from ``z_init`` at t = 0:
    ``(N, 2)``. Every interval [t_{n-1}, t_n] takes the same (static) number of equal RK4
    steps, ceil(steps_per_unit x the longest interval)."""
    gaps = np.diff(np.concatenate([[0.0], np.asarray(ts, dtype=np.float64)]))
    steps = max(1, int(np.ceil(steps_per_unit * gaps.max() - 1e-9)))
    h = jnp.asarray(gaps / steps, dtype=z_init.dtype)

    def interval(z, h_n):
        def rk4(z, _):
            k1 = dz_dt(z, theta)
            k2 = dz_dt(z + 0.5 * h_n * k1, theta)
            k3 = dz_dt(z + 0.5 * h_n * k2, theta)
            k4 = dz_dt(z + h_n * k3, theta)
            return z + h_n / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4), None

        z, _ = jax.lax.scan(rk4, z, None, length=steps)
        return z, z

    _, zs = jax.lax.scan(interval, z_init, h)
    return zs


def model(ts, y_init=None, y=None):
    theta = numpyro.sample("theta", dist.TruncatedNormal(
        jnp.array([1.0, 0.05, 1.0, 0.05]), jnp.array([0.5, 0.05, 0.5, 0.05]), low=0.0
    ).to_event(1))
    z_init = numpyro.sample("z_init", dist.LogNormal(jnp.log(10.0), 1.0).expand([2]).to_event(1))
    sigma = numpyro.sample("sigma", dist.LogNormal(-1.0, 1.0).expand([2]).to_event(1))
    z = numpyro.deterministic("z", solve(z_init, theta, ts))
    numpyro.sample("y_init", dist.LogNormal(jnp.log(z_init), sigma).to_event(1), obs=y_init)
    numpyro.sample("y", dist.LogNormal(jnp.log(z), sigma).to_event(2), obs=y)


def make() -> Target:
    ts, y_init, y = data()
    return from_numpyro(model, ts, y_init=jnp.asarray(y_init), y=jnp.asarray(y),
                        target_name="lotka_volterra")
