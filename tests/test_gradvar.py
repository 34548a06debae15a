"""The gradient-variance report (API and `vifit gradvar`) and the new CLI options."""

import numpy as np
import pytest

import vifit
from test_cli import vifit_cli


def test_report_on_a_gaussian_ranks_estimators_at_equal_cost():
    target = vifit.Target(lambda z: -0.5 * (z[0] ** 2 + 4 * z[1] ** 2), dim=2)
    table = vifit.gradient_variance(target, "meanfield", objective=vifit.IWAE(K=4), budget=64,
                                    reps=200)
    rows = table.set_index("estimator")
    assert set(rows.index) == {"dreg", "reparam", "stl"}  # score and rb do not apply here
    assert (rows["target_evals"] == 64).all() and (rows["draws"] == 64).all()
    assert "biased" in rows.loc["stl", "note"] and rows.loc["dreg", "bias"] == 0
    assert np.isclose(rows["relative"].min(), 1.0)
    # The report's variance is the trace of the covariance; its se must make sense.
    assert (rows["variance_se"] < rows["total_variance"]).all()
    with pytest.raises(vifit.ConfigError, match="mean-field discrete family"):
        vifit.gradient_variance(target, "meanfield", estimators=["rb"])


def test_gradvar_cli_on_the_ising_model():
    proc = vifit_cli("gradvar", "ising", "--reps", "50", "--budget", "64", "--at", "init")
    assert proc.returncode == 0, proc.stderr
    rows = {cells[0]: cells[1:] for line in proc.stdout.splitlines()
            if len(cells := [c.strip() for c in line.split("│")[1:-1]]) == 7}
    assert {"score", "rb", "relaxed (tau=0.5) [1]", "score_plain"} <= set(rows)
    # rb pays 32 evaluations per draw on 16 spins: 64 evaluations buy 2 draws.
    assert rows["rb"][:2] == ["2", "64"] and rows["score"][:2] == ["64", "64"]
    assert "[1] relaxed (tau=0.5): relaxation at temperature 0.5: biased" in proc.stdout


def test_fit_cli_takes_an_objective_and_refuses_partial_groups():
    proc = vifit_cli("fit", "linear_regression", "--objective", "iwae", "--K", "8",
                     "--draws", "20", "--no-progress")
    assert proc.returncode == 1 and proc.stderr.startswith("error:")
    assert "multiple of 8" in proc.stderr and "Traceback" not in proc.stderr
