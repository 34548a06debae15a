"""`vifit fit MODEL --method ep` as a user meets it."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

MODEL = textwrap.dedent("""
    import jax.numpy as jnp
    import numpy as np
    import vifit

    rng = np.random.default_rng(3)
    x = np.column_stack([np.ones(40), rng.normal(size=(40, 2))])
    y = rng.poisson(np.exp(x @ np.array([0.5, 0.4, -0.3]))).astype(float)

    def log_t(u, count):  # the user's own Poisson term, log link
        return count * u - jnp.exp(u)

    ep_model = vifit.ep.Factorized(vifit.ep.Custom(log_t), y, x, prior_sd=2.0,
                                   param_names=["a", "b1", "b2"], name="my_poisson")
""")


def vifit_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "vifit", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_fit_a_user_model_with_ep(tmp_path):
    (tmp_path / "model.py").write_text(MODEL)
    out = tmp_path / "out"
    proc = vifit_cli("fit", "model.py", "--method", "ep", "--ep-schedule", "parallel",
                     "--damping", "0.3", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "k-hat" in proc.stdout and "EP" in proc.stdout and "sweeps" in proc.stdout
    record = json.loads((out / "result.json").read_text())
    assert record["ep"]["converged"] and record["ep"]["schedule"] == "parallel"
    assert record["estimator"] == "ep-parallel" and set(record["params"]) == {"a", "b1", "b2"}
    # log Z by EP and by importance sampling from the EP Gaussian: a Poisson GLM posterior is
    # close to Gaussian, so they agree to well within 0.1 nats (the EP accuracy specification
    # used for probit regression in test_ep_fit.py) plus a few standard errors.
    assert abs(record["ep"]["log_z"] - record["log_z"]) < 0.1 + 4 * record["log_z_se"]
    assert np.isfinite(record["khat"]) and (out / "draws.nc").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["fit", "eight_schools", "--method", "ep"], "neither a built-in EP model"),
    (["fit", "NOEP", "--method", "ep"], "defines no `ep_model`"),
    (["fit", "eight_schools", "--method", "mcmc"], "unknown method"),
])
def test_ep_bad_input_is_one_clear_line(tmp_path, args, message, capsys):
    # In process (the success test above covers the real subprocess): these fail before any
    # fitting, and a fresh interpreter per case would cost more than the checks.
    import typer

    from vifit.cli.main import app

    (tmp_path / "noep.py").write_text("x = 1\n")
    args = [str(tmp_path / "noep.py") if a == "NOEP" else a for a in args]
    with pytest.raises((SystemExit, typer.Exit)) as exit_info:
        app(args, standalone_mode=True)
    code = getattr(exit_info.value, "code", getattr(exit_info.value, "exit_code", None))
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert message in lines[0]


def test_an_ep_model_file_also_loads_as_a_vi_target(tmp_path):
    from vifit.cli.models import load_model

    (tmp_path / "model.py").write_text(MODEL)
    target, origin = load_model(str(tmp_path / "model.py"))
    assert target.dim == 3 and "ep_model" in origin
    names, _ = target.constrained_names()
    assert names == ["a", "b1", "b2"]
