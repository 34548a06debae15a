"""`vifit vae train|eval|sample` as a user meets them (in-process, to share compiled code)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vifit.cli.main import app

runner = CliRunner()
TINY = ["--hidden", "16", "--epochs", "2", "--eval-samples", "100", "--no-progress"]


def vae(*args):
    return runner.invoke(app, ["vae", *map(str, args)])


def test_train_eval_sample_write_their_files(tmp_path):
    out = tmp_path / "run"
    res = vae("train", "--out", out, *TINY)
    assert res.exit_code == 0, res.output
    assert "log p(x), IS-100" in res.stdout and "active units" in res.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    assert {"log_likelihood", "elbo", "iwae_5", "iwae_50", "active_units"} <= set(test)
    assert test["log_likelihood"]["samples"] == 100 and metrics["epochs"] == 2
    # IS-100 >= ELBO up to Monte Carlo error: a bound ordering the numbers must respect.
    assert test["log_likelihood"]["mean"] > test["elbo"]["mean"] - 5 * test["elbo"]["se"]
    for name in ["checkpoint.npz", "history.png", "samples.png", "reconstructions.png",
                 "latent.png", "manifold.png"]:  # latent 2 by default: the latent plots too
        assert (out / name).stat().st_size > 0, name

    res = vae("eval", "--out", out, "--samples", "100", "--limit", "50")
    assert res.exit_code == 0, res.output
    ev = json.loads((out / "eval-test.json").read_text())
    assert ev["n_examples"] == 50 and ev["log_likelihood"]["samples"] == 100

    res = vae("sample", "--out", out, "--n", "9", "--no-mean")
    assert res.exit_code == 0, res.output
    x = np.load(out / "samples.npy")
    assert x.shape == (9, 64) and set(np.unique(x)) <= {0.0, 1.0}

    # Same settings again: the finished run resumes to nothing and is not retrained.
    res = vae("train", "--out", out, *TINY, "--no-plots")
    assert res.exit_code == 0 and "this call: 0.0 s" in res.stdout
    # Other settings into the same folder: refused with the fix.
    res = vae("train", "--out", out, "--hidden", "16", "--epochs", "3", "--no-progress")
    assert res.exit_code == 1 and res.stderr.startswith("error:") and "--no-resume" in res.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "missing.npz"], "not found"),
    (["train", "--likelihood", "gaussian", "--data", "digits", "--arch", "rnn"], "unknown architecture"),
    (["train", "--objective", "iwae", "--kl", "mc"], "takes no option kl"),
    (["train", "--flow", "2", "--kl", "analytic", "--epochs", "1"], "--kl mc"),
    (["eval", "--out", "nowhere"], "no checkpoint"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    if "--out" not in args:
        args = [*args, "--out", tmp_path / "x"]
    res = vae(*args)
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.stderr
