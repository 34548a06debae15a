"""Divergence detection, the fit-level verdict and non-finite output: an improper density must
stop as "diverged" with a message (never "converged" and "good"), and every writer must handle
inf and NaN."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

import vifit
from vifit.optim.loop import still_improving


def _improper(dim=3):
    return vifit.Target(lambda z: jnp.sum(z), dim=dim, name="improper")


@pytest.mark.parametrize("family, optimizer", [("fullrank", "natgrad"), ("realnvp", "adam")])
def test_improper_density_diverges(family, optimizer):
    res = vifit.fit(_improper(), family, optimizer=optimizer, progress=False)
    assert res.stop_reason == "diverged"
    assert res.verdict.label == "failed"
    assert "improper" in res.verdict.text and "z[" in res.verdict.text
    assert res.steps < 10_000  # stopped when it ran off, not at the step limit


def test_auto_on_improper_density_reports_divergence():
    res = vifit.fit(_improper(), "auto", progress=False)
    assert res.stop_reason == "diverged"
    assert res.verdict.label == "failed"
    decisions = res.info["auto"]["decisions"]
    # auto did not keep a stage for its huge ELBO
    assert res.info["auto"]["chosen"] == "fullrank"
    assert any("failed" in row["decision"] for row in decisions)


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_proper_badly_scaled_gaussian_is_not_called_diverged(scale):
    # A Gaussian is exact for a full-rank q: natgrad reaches it however it is scaled.
    t = vifit.Target(lambda z: -0.5 * jnp.sum((z / scale) ** 2), dim=2)
    res = vifit.fit(t, "fullrank", optimizer="natgrad", progress=False)
    assert res.stop_reason == "converged"
    sd = np.sqrt(np.diag(res.covariance()))
    assert np.all(np.abs(sd / scale - 1) < 0.1)


def test_trend_test_sees_a_rising_series_and_not_noise():
    rng = np.random.default_rng(0)
    rising = list(np.arange(6) * 0.5 + rng.normal(0, 0.05, 6))
    assert still_improving(rising, tol=1e-3)
    flat = list(rng.normal(0, 0.05, 6))
    # a slope from pure noise is below 2 standard errors with probability ~0.97 (t, 4 dof)
    assert not still_improving(flat, tol=1e-3)
    assert not still_improving(rising[:4], tol=1e-3)  # too few windows to judge


def test_verdict_is_never_good_when_the_fit_did_not_converge():
    t = vifit.Target(lambda z: -0.5 * jnp.sum(z**2), dim=2)
    res = vifit.fit(t, "meanfield", steps=50, progress=False)
    assert res.stop_reason == "max_steps"
    assert res.verdict.label != "good"
    assert "50 steps" in res.verdict.text


def _strict(text: str):
    def bad(name):
        raise AssertionError(f"non-JSON number {name} in output")

    return json.loads(text, parse_constant=bad)


def test_cli_on_improper_density_writes_nulls_and_exits_1(tmp_path):
    model = tmp_path / "improper.py"
    model.write_text("import jax.numpy as jnp\ndim = 3\n"
                     "def log_density(z):\n    return jnp.sum(z)\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "vifit", "fit", str(model), "--family",
                           "realnvp", "--no-progress", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "diverged" in errors[0]
    record = _strict((out / "result.json").read_text())
    assert record["stop_reason"] == "diverged" and record["verdict_label"] == "failed"
    for v in record["params"].values():
        for x in v.values():
            assert x is None or math.isfinite(x)
    assert (out / "report.md").read_text().count("failed") >= 1
    assert (out / "draws.nc").stat().st_size > 0 and (out / "elbo.png").stat().st_size > 0


def test_json_writer_turns_inf_and_nan_into_null():
    from vifit.jsonio import dumps

    text = dumps({"a": float("inf"), "b": np.float32("nan"), "c": [1.0, -np.inf],
                  "d": np.array([np.nan, 2.0]), "e": (np.bool_(True), np.int64(3))})
    assert _strict(text) == {"a": None, "b": None, "c": [1.0, None], "d": [None, 2.0],
                             "e": [True, 3]}


def test_parameters_keep_the_model_order_everywhere(tmp_path):
    d = 12
    t = vifit.Target(lambda z: -0.5 * jnp.sum(z**2), dim=d)
    res = vifit.fit(t, "meanfield", steps=200, progress=False)
    want = [f"z[{i}]" for i in range(d)]
    assert list(res.summary().index) == want
    assert list(res.sample(0, 10)) == want
    assert list(res.to_arviz(0, 10).posterior.data_vars) == want
    assert list(res.to_dict(0, 100)["params"]) == want
    named = vifit.Target(lambda z: -0.5 * jnp.sum(z**2), dim=3, param_names=["b", "c", "a"])
    res = vifit.fit(named, "meanfield", steps=200, progress=False)
    assert list(res.summary().index) == ["b", "c", "a"]
