"""A data fit sharded over 4 CPU devices draws the same minibatches and the same noise as on
one: its steps agree to float64 rounding. Run in a fresh process, since the device count is
fixed when JAX starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp, numpy as np, vifit
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    n, d = 20_003, 4          # N not a multiple of 4: the rows are padded, never read
    x = rng.normal(size=(n, d)); y = (rng.random(n) < 1 / (1 + np.exp(-x @ np.ones(d)))) * 1.0
    def log_lik(z, b):
        eta = b["x"] @ z
        return b["y"] * eta - jnp.logaddexp(0.0, eta)
    t = vifit.DataTarget(lambda z: -0.5 * jnp.sum(z**2), log_lik, {"x": x, "y": y}, dim=d)
    out = {}
    from vifit.engine import fit_one
    for opt in ("natgrad", "adam"):
        for k in (1, 4):
            # the loop is what is compared: no final checks (the mode search on the rows
            # would add ~20 s of float64 climbs per fit, the same on 1 and 4 devices)
            r = fit_one(t, "fullrank", optimizer=opt, batch_size=256, devices=k, steps=300,
                        seed=1, progress=False, final_checks=False)
            out[f"{opt}{k}"] = {"trace": r.trace.tolist(), "mean": r.mean().tolist(),
                                "elbo": r.elbo, "devices": r.info["minibatch"]["devices"]}
    print(json.dumps(out))
""")


def test_four_devices_match_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    import numpy as np

    for opt in ("natgrad", "adam"):
        one, four = out[f"{opt}1"], out[f"{opt}4"]
        assert (one["devices"], four["devices"]) == (1, 4)
        a, b = np.asarray(one["trace"][:100]), np.asarray(four["trace"][:100])
        # float64 sums split over 4 devices round differently: ~1e-16 relative per step,
        # amplified by 100 steps of a contracting optimizer, far below 1e-9.
        np.testing.assert_allclose(a, b, rtol=1e-9)
        np.testing.assert_allclose(one["mean"], four["mean"], rtol=1e-6, atol=1e-8)
