"""`vifit fit FILE.py` on a data model (log_prior, log_lik, data, dim): detected, fitted on
minibatches, and the same answer from two processes on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import numpy as np

MODEL = textwrap.dedent("""
    import numpy as np
    import jax.numpy as jnp
    rng = np.random.default_rng(0)
    n, dim = 40_000, 3
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = (x @ np.array([1.0, -0.5, 0.25]) + rng.normal(size=n)).astype(np.float32)
    data = {"x": x, "y": y}
    param_names = ["a", "b", "c"]
    def log_prior(z):
        return -0.5 * jnp.sum(z**2)
    def log_lik(z, batch):
        return -0.5 * (batch["y"] - batch["x"] @ z) ** 2
""")


def _run(*args, timeout=300):
    return subprocess.Popen([sys.executable, "-m", "vifit", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_data_model_file_one_and_two_processes(tmp_path):
    model = tmp_path / "regression.py"
    model.write_text(MODEL)
    port = str(_free_port())
    common = ["fit", str(model), "--no-progress", "--family", "fullrank", "--seed", "3"]
    one = _run(*common, "--batch-size", "512", "--out", str(tmp_path / "one"))
    out1, err1 = one.communicate(timeout=300)
    assert one.returncode == 0, err1[-2000:]
    assert "detected a data model" in out1 and "40,000 rows" in out1
    assert "minibatches: 512 of 40,000 rows" in out1
    assert "row evaluations" in out1
    dist = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    procs = [_run(*common, "--batch-size", "512", *dist, "--process-id", str(i),
                  *(["--out", str(tmp_path / "two")] if i == 0 else [])) for i in range(2)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-2000:]
            outs.append(out)
    finally:
        for p in procs:
            p.kill()
    assert "process 0 of 2 reads rows 0..19,999" in outs[0]
    # only process 0 prints and writes (Gloo's own C++ greeting aside)
    assert "posterior summary" not in outs[1] and "detected" not in outs[1]
    a = json.loads((tmp_path / "one" / "result.json").read_text())
    b = json.loads((tmp_path / "two" / "result.json").read_text())
    # Exact posterior: regression with unit noise and a N(0, I) prior.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40_000, 3)).astype(np.float32).astype(np.float64)
    y = (x @ np.array([1.0, -0.5, 0.25]) + rng.normal(size=40_000)).astype(np.float32)
    prec = np.eye(3) + x.T @ x
    mean = np.linalg.solve(prec, x.T @ y)
    sd = np.sqrt(np.diag(np.linalg.inv(prec)))
    for rec in (a, b):
        got = np.array([rec["params"][k]["mean"] for k in ("a", "b", "c")])
        assert np.max(np.abs(got - mean) / sd) < 0.1
    # one process runs the mode search on the rows (d = 3: at best "usable with care", for the
    # dimension); two processes each hold half the rows and run none, and say so
    assert a["verdict_label"] == "usable with care" and "The mode search" in a["verdict"]
    assert b["verdict_label"] == "usable with care" and "No mode search ran" in b["verdict"]
    assert abs(a["log_z"] - b["log_z"]) < 3 * max(a["log_z_se"], 1e-3) + 1e-3


def test_data_flags_refused_for_a_plain_model(tmp_path):
    model = tmp_path / "plain.py"
    model.write_text("import jax.numpy as jnp\ndim = 2\ndef log_density(z):\n"
                     "    return -0.5 * jnp.sum(z**2)\n")
    p = _run("fit", str(model), "--batch-size", "10", "--no-progress")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 1
    assert err.strip().splitlines()[-1].startswith("error: --batch-size")


def test_data_model_missing_log_lik(tmp_path):
    model = tmp_path / "half.py"
    model.write_text("import numpy as np\nimport jax.numpy as jnp\ndim = 1\n"
                     "data = np.zeros((5, 1))\ndef log_prior(z):\n    return -0.5 * jnp.sum(z**2)\n")
    p = _run("fit", str(model), "--no-progress")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 1
    assert "defines no log_lik" in err
