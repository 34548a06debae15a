"""Checkpoint and resume: a fit killed (SIGKILL) or interrupted (Ctrl-C) and run again with the
same command ends with the same numbers as one never interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

import vifit
from vifit.checkpoint import read_meta
from vifit.errors import ConfigError

# Many draws per step make each 100-step window slow enough (~0.2 s, 14 windows) to stop the
# fit mid-way.
CMD = ["fit", "eight_schools", "--family", "fullrank", "--draws", "4096", "--no-progress"]


def _default_sigint() -> None:
    # pytest-xdist workers ignore SIGINT, and a child inherits that (Python keeps an ignored
    # SIGINT as it is): give the fit the disposition a user's terminal gives it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run(args, **kw):
    return subprocess.run([sys.executable, "-m", "vifit", *args], capture_output=True,
                          text=True, timeout=600, **kw)


def _numbers(path):
    record = json.loads(path.read_text())
    record.pop("seconds")  # wall times differ from run to run; the fit's numbers must not
    record.pop("timing")
    record.get("info", {}).pop("timing", None)
    record.get("info", {}).get("tails", {}).pop("seconds", None)
    record.get("info", {}).get("modes", {}).pop("seconds", None)
    return record


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    proc = _run([*CMD, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return _numbers(out / "result.json")


def _stop_midway(tmp_path, sig):
    """Start the checkpointed fit, send ``sig`` once its first checkpoint is on disk."""
    ck = tmp_path / "ck"
    proc = subprocess.Popen([sys.executable, "-m", "vifit", *CMD, "--checkpoint", str(ck),
                             "--checkpoint-every", "0", "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    stage = ck / "fit.npz"
    deadline = time.monotonic() + 300
    while not stage.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    meta = read_meta(stage)
    assert not meta["finished"], "the fit ended before it could be stopped; the test is void"
    return ck, proc.returncode, err


def test_killed_fit_resumes_to_the_same_numbers(tmp_path, uninterrupted):
    ck, rc, _ = _stop_midway(tmp_path, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    proc = _run([*CMD, "--checkpoint", str(ck), "--checkpoint-every", "0", "--out",
                 str(tmp_path / "out")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming from the checkpoint" in proc.stdout
    assert _numbers(tmp_path / "out" / "result.json") == uninterrupted


def test_ctrl_c_stops_cleanly_writes_outputs_and_resumes(tmp_path, uninterrupted):
    ck, rc, err = _stop_midway(tmp_path, signal.SIGINT)
    assert rc == 130 and "Traceback" not in err, err[-2000:]
    stopped = json.loads((tmp_path / "out" / "result.json").read_text())
    assert stopped["stop_reason"] == "interrupted"
    assert stopped["verdict_label"] != "good"
    proc = _run([*CMD, "--checkpoint", str(ck), "--checkpoint-every", "0", "--out",
                 str(tmp_path / "out")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _numbers(tmp_path / "out" / "result.json") == uninterrupted


def test_checkpoint_of_another_fit_is_refused(tmp_path):
    t = vifit.Target(lambda z: -0.5 * jnp.sum(z**2), dim=2, name="g")
    first = vifit.fit(t, "meanfield", steps=300, progress=False, checkpoint=tmp_path)
    again = vifit.fit(t, "meanfield", steps=300, progress=False, checkpoint=tmp_path)
    assert again.steps == first.steps and again.elbo == first.elbo
    np.testing.assert_array_equal(again.mean(), first.mean())
    with pytest.raises(ConfigError, match="different fit.*seed"):
        vifit.fit(t, "meanfield", steps=300, seed=1, progress=False, checkpoint=tmp_path)
