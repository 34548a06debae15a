"""The CLI takes NumPyro and PyMC model files (the libraries' own documentation examples) as
well as plain log densities, and says which it detected."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vifit.cli.models import load_model
from vifit.errors import ModelFileError

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def vifit_cli(*args):
    """The CLI in this process (Typer's runner): the same code path as the `vifit` command,
    without paying a fresh interpreter and JAX start-up per test."""
    from typer.testing import CliRunner

    from vifit.cli.main import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_fit_numpyros_own_eight_schools_from_the_cli(tmp_path):
    code, output = vifit_cli("fit", str(EXAMPLES / "numpyro_eight_schools.py"), "--steps",
                             "1000", "--out", str(tmp_path), "--no-progress")
    assert code == 0, output
    assert "detected a NumPyro model" in output
    params = json.loads((tmp_path / "result.json").read_text())["params"]
    # Latent sites and the reparameterized deterministic theta, all constrained.
    assert {"mu", "tau", "theta_base[0]", "theta[7]"} <= set(params)
    assert params["tau"]["q5"] > 0


def test_fit_pymcs_own_linear_regression_from_the_cli(tmp_path):
    pytest.importorskip("pymc")
    code, output = vifit_cli("fit", str(EXAMPLES / "pymc_linear_regression.py"), "--out",
                             str(tmp_path), "--no-progress")
    assert code == 0, output
    assert "detected a PyMC model" in output
    params = json.loads((tmp_path / "result.json").read_text())["params"]
    assert set(params) == {"alpha", "beta[0]", "beta[1]", "sigma"}
    # Least squares on the same data is the posterior mean to within the flat-ish priors'
    # pull (prior sd 10 against 100 observations): compare within 4 posterior sds.
    ns = {}
    exec((EXAMPLES / "pymc_linear_regression.py").read_text().split("model = pm.Model()")[0],
         ns)
    x = np.column_stack([np.ones(100), ns["X1"], ns["X2"]])
    coef = np.linalg.lstsq(x, ns["Y"], rcond=None)[0]
    for name, c in zip(["alpha", "beta[0]", "beta[1]"], coef):
        assert abs(params[name]["mean"] - c) < 4 * params[name]["sd"], name


def _write(tmp_path, text):
    path = tmp_path / "m.py"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_numpyro_file_conventions(tmp_path):
    target, origin = load_model(_write(tmp_path, """
        import numpyro, numpyro.distributions as dist
        def model(scale, y=None):
            mu = numpyro.sample("mu", dist.Normal(0.0, scale))
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
        args = (2.0,)
        data = {"y": 0.5}
    """))
    assert "NumPyro" in origin and target.param_names == ("mu",)


@pytest.mark.parametrize("text, message", [
    ("import jax.numpy as jnp\nmodel = 3\n", "must be a NumPyro model function or a pymc.Model"),
    ("def model():\n    pass\ndef log_density(z):\n    return 0.0\n", "defines both `model`"),
    ("def model(y):\n    pass\nargs = (1.0,)\nkwargs = {}\ndata = {}\n", "both `kwargs` and `data`"),
    ("def model():\n    pass\n", "no latent sample sites"),
])
def test_bad_model_files_say_what_to_fix(tmp_path, text, message):
    from vifit.errors import VifitError

    with pytest.raises(VifitError, match=message):
        load_model(_write(tmp_path, text))
    assert issubclass(ModelFileError, VifitError)


def test_ctrl_c_while_writing_the_outputs_says_they_are_incomplete(tmp_path, monkeypatch):
    """Ctrl-C after the fit, while result.json and the reports are written, left a partial
    directory and said nothing; now it says so and exits 130."""
    import vifit.report

    def half_written(result, out, *args, **kwargs):
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "result.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(vifit.report, "write_report", half_written)
    model = tmp_path / "g.py"
    model.write_text("import jax.numpy as jnp\ndim = 2\n"
                     "def log_density(z):\n    return -0.5 * jnp.sum(z ** 2)\n")
    code, output = vifit_cli("fit", str(model), "--family", "fullrank", "--steps", "300",
                             "--out", str(tmp_path / "out"), "--no-progress")
    assert code == 130, output
    assert "interrupted while writing the outputs" in output and "incomplete" in output


def test_ctrl_c_in_a_later_auto_stage_says_so_and_exits_130(tmp_path, monkeypatch):
    """Ctrl-C in auto's flow stage ended that stage; auto returned the Gaussian with its own
    stop reason, and `vifit fit` exited 0 as if it had finished (`vifit evidence` went on into
    AIS). auto now marks the result, and the command says what it reports."""
    import dataclasses
    import time

    import jax.numpy as jnp

    import vifit
    from vifit.auto import INTERRUPTED, _finish

    target = vifit.Target(lambda z: -0.5 * jnp.sum(z ** 2), dim=2)
    gauss = vifit.fit(target, "fullrank", steps=300, progress=False)
    rows = [{"stage": "realnvp", "decision": "stop: interrupted; keep the full-rank Gaussian",
             "why": INTERRUPTED}]
    stopped = _finish(gauss, rows, "fullrank", time.perf_counter())
    assert stopped.info["auto"]["interrupted"] and stopped.stop_reason != "interrupted"
    assert "interrupted" not in _finish(gauss, [], "fullrank", time.perf_counter()).info["auto"]

    monkeypatch.setattr(vifit, "fit", lambda *a, **k: dataclasses.replace(
        stopped, target=a[0]))
    model = tmp_path / "g.py"
    model.write_text("import jax.numpy as jnp\ndim = 2\n"
                     "def log_density(z):\n    return -0.5 * jnp.sum(z ** 2)\n")
    code, output = vifit_cli("fit", str(model), "--out", str(tmp_path / "out"),
                             "--no-progress")
    assert code == 130, output
    assert "interrupted: auto reports the last stage it finished (fullrank)" in output
    assert (tmp_path / "out" / "result.json").exists()
