"""The new optimizers, families and CAVI from the command line."""

import numpy as np

from conftest import z_bound
from test_cli import vifit_cli


def test_fit_with_natgrad_prints_its_info():
    proc = vifit_cli("fit", "linear_regression", "--optimizer", "natgrad", "--steps", "300",
                     "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "natural gradient: step 0.2, exact Hessian, 16 draws per step" in proc.stdout
    lines = [ln for ln in proc.stdout.splitlines()
             if ln.startswith(("log Z ", "exact log Z")) and "=" in ln]
    values = {ln.split("=")[0].strip(): float(ln.split("=")[1].split()[0]) for ln in lines}
    se = float(next(ln for ln in lines if "±" in ln).split("±")[1].split()[0])
    # the posterior is Gaussian, so q can be exact: IS log Z within its standard error
    assert abs(values["log Z"] - values["exact log Z"]) < z_bound(1e-3) * se + 1e-4


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


def test_auto_lines_keep_square_brackets():
    """Reasons quote E_q[w^4], x[0] and the like; rich's console would read them as markup
    and drop them."""
    from rich.console import Console

    from vifit.cli.extras import info_lines

    info = {"auto": {"chosen": "fullrank", "total_seconds": 1.0, "decisions": [
        {"stage": "fullrank", "decision": "keep [it]", "why": "E_q[w^4] is finite"}]}}
    console = Console(record=True, width=200)
    for line in info_lines(info):
        console.print(line)
    text = console.export_text()
    assert "keep [it]" in text and "E_q[w^4] is finite" in text
