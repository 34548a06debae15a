"""The new optimizers, families and CAVI from the command line."""

import json

import numpy as np

from conftest import z_bound
from test_cli import vifit_cli


def test_fit_with_natgrad_writes_its_info(tmp_path):
    out = tmp_path / "out"
    proc = vifit_cli("fit", "linear_regression", "--optimizer", "natgrad", "--steps", "300",
                     "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "natural gradient: step 0.2" in proc.stdout
    record = json.loads((out / "result.json").read_text())
    assert record["optimizer"] == "natgrad" and record["info"]["natgrad"]["hessian"] == "exact"
    # the posterior is Gaussian, so q can be exact: IS log Z within its standard error
    assert abs(record["log_z"] - record["exact_log_z"]) < z_bound(1e-3) * record["log_z_se"] + 1e-4


def test_bad_family_setting_and_lr_are_one_line_errors():
    proc = vifit_cli("fit", "gaussian", "--family", "mixture:q=2", "--no-progress")
    assert proc.returncode == 1 and proc.stderr.startswith("error: family 'mixture' has no")
    proc = vifit_cli("fit", "gaussian", "--lr", "fast", "--no-progress")
    assert proc.returncode == 1 and "--lr must be a number or 'auto'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cavi_linreg_on_a_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    y = 1.5 + x @ np.array([2.0, -1.0]) + rng.normal(scale=0.5, size=80)
    path = tmp_path / "d.csv"
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header="a,b,y", comments="")
    proc = vifit_cli("cavi", "linreg", str(path), "--y", "y")
    assert proc.returncode == 0, proc.stderr
    assert "never decreased" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("(intercept): mean"))
    mean, sd = float(line.split()[2].rstrip(",")), float(line.split()[4])
    assert abs(mean - 1.5) < z_bound(1e-3) * sd  # the posterior covers the true intercept
    proc = vifit_cli("cavi", "linreg", str(path), "--y", "nope")
    assert proc.returncode == 1 and proc.stderr.startswith("error: no column 'nope'")
