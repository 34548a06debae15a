"""A data fit split over two processes on 127.0.0.1 (jax.distributed, CPU): each process
holds half the rows, and the result is the one-process fit's, within Monte Carlo error (here
to float32 rounding: the same minibatches and draws, sums split differently)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent("""
    import json, sys
    pid, nproc, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    from vifit.data import hosts
    if nproc > 1:
        hosts.initialize(f"127.0.0.1:{port}", nproc, pid)
    import numpy as np, jax.numpy as jnp, vifit
    rng = np.random.default_rng(0)
    n, d = 20_001, 3
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-x @ np.ones(d)))).astype(np.float32)
    lo, hi = hosts.row_range(n, pid, nproc)   # this process reads only its own rows
    def log_lik(z, b):
        eta = b["x"] @ z
        return b["y"] * eta - jnp.logaddexp(0.0, eta)
    t = vifit.DataTarget(lambda z: -0.5 * jnp.sum(z**2), log_lik,
                         {"x": x[lo:hi], "y": y[lo:hi]}, dim=d)
    r = vifit.fit(t, "fullrank", batch_size=256, seed=1, steps=300, progress=False,
                  distributed=nproc > 1)
    print("RESULT " + json.dumps({"mean": r.mean().tolist(), "log_z": r.log_z,
                                  "log_z_se": r.log_z_se, "info": r.info["minibatch"],
                                  "sd": np.sqrt(np.diag(r.covariance())).tolist()}))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _result(out: str) -> dict:
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_two_processes_match_one():
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(i), "2", port],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-3000:]
            outs.append(_result(out))
    finally:
        for p in procs:
            p.kill()
    one = subprocess.run([sys.executable, "-c", SCRIPT, "0", "1", port], capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    single = _result(one.stdout)
    a, b = outs
    assert a == b  # every process ends with the same answer
    assert a["info"]["processes"] == 2 and a["info"]["rows"] == single["info"]["rows"]
    sd = np.asarray(single["sd"])
    # Monte Carlo error of q's mean after 300 steps is ~0.05 sd; rounding is far below that.
    assert np.max(np.abs(np.asarray(a["mean"]) - single["mean"]) / sd) < 0.01
    assert abs(a["log_z"] - single["log_z"]) < 3 * single["log_z_se"] + 1e-3
