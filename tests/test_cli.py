"""The command line as a user meets it."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

RESULT_KEYS = {"elbo", "elbo_se", "log_z", "log_z_se", "khat", "steps", "stop_reason", "seconds",
               "params"}


def vifit_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "vifit", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_fit_builtin_writes_the_report(tmp_path):
    out = tmp_path / "out"
    proc = vifit_cli("fit", "linear_regression", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "log Z" in proc.stdout and "k-hat" in proc.stdout
    record = json.loads((out / "result.json").read_text())
    assert RESULT_KEYS <= set(record)
    assert set(record["params"]["beta[0]"]) == {"mean", "sd", "q5", "q50", "q95"}
    assert abs(record["log_z"] - record["exact_log_z"]) < 1e-3
    assert record["bracket"] == {"lower": record["elbo"], "upper": None}
    assert "bracket: log Z >=" in proc.stdout and "report.html" in proc.stdout
    for name in ["draws.nc", "elbo.png", "report.md", "report.html"]:
        assert (out / name).stat().st_size > 0
    import arviz as az

    idata = az.from_netcdf(out / "draws.nc")
    assert idata.posterior["beta[0]"].shape == (1, 4000)


def test_fit_a_model_file(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(textwrap.dedent("""
        import jax.numpy as jnp
        dim = 2
        param_names = ["a", "b"]
        def log_density(z):
            return -0.5 * jnp.sum((z - jnp.array([1.0, -1.0])) ** 2)
    """))
    out = tmp_path / "out"
    proc = vifit_cli("fit", str(model), "--family", "meanfield", "--estimator", "score",
                     "--steps", "3000", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    params = json.loads((out / "result.json").read_text())["params"]
    # 4000 summary draws: the mean's Monte Carlo error is about 1/sqrt(4000) = 0.016.
    assert abs(params["a"]["mean"] - 1.0) < 0.1 and abs(params["b"]["mean"] + 1.0) < 0.1
    assert np.isclose(params["a"]["sd"], 1.0, atol=0.1)


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "no_such_model.py"], "not found"),
        (["fit", "nonsense"], "neither a built-in example"),
        (["fit", "eight_schools", "--family", "normalish"], "unknown family"),
        (["fit", "eight_schools", "--estimator", "magic"], "unknown estimator"),
        (["fit", "EMPTY"], "defines no `log_density`"),
        (["fit", "BROKEN"], "importing"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    (tmp_path / "empty.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    args = [{"EMPTY": str(tmp_path / "empty.py"), "BROKEN": str(tmp_path / "broken.py")}.get(a, a)
            for a in args]
    proc = vifit_cli(*args, cwd=tmp_path)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert message in lines[0] and "Traceback" not in proc.stderr


def test_list_shows_examples():
    proc = vifit_cli("list")
    assert proc.returncode == 0 and "eight_schools" in proc.stdout


LOUD_MODEL = """
import os, sysconfig, warnings
import jax.numpy as jnp
# A library's warning, as if raised from an installed package, and the user's own.
warnings.warn_explicit("a library's refactor notice", FutureWarning,
                       filename=os.path.join(sysconfig.get_paths()["purelib"], "somelib", "x.py"),
                       lineno=1)
warnings.warn("the user's own warning")
dim = 1
def log_density(z):
    return -0.5 * jnp.sum(z ** 2)
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_other_libraries_warnings_go_to_a_log(tmp_path, verbose):
    model = tmp_path / "loud.py"
    model.write_text(LOUD_MODEL)
    out = tmp_path / "out"
    args = ["fit", str(model), "--family", "meanfield", "--steps", "200", "--out", str(out),
            "--no-progress"] + (["--verbose"] if verbose else [])
    proc = vifit_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "the user's own warning" in proc.stderr
    if verbose:
        assert "refactor notice" in proc.stderr and not (out / "warnings.log").exists()
    else:
        assert "refactor notice" not in proc.stdout + proc.stderr
        assert "refactor notice" in (out / "warnings.log").read_text()
        assert "warnings.log" in proc.stderr and "--verbose" in proc.stderr


@pytest.mark.parametrize("code, rc, err", [(None, 0, ""), (3, 3, ""), ("boom", 1, "boom")])
def test_quick_exit_runs_the_exit_handlers_and_keeps_the_status(code, rc, err):
    """The command line ends without the interpreter's teardown (``_leave``): the exit
    handlers (the warnings log, JAX's clean-up) still run, output is flushed, and the exit
    status is the one ``sys.exit(code)`` would give."""
    script = ("import atexit, sys; from vifit.cli.main import _leave; "
              "atexit.register(lambda: print('handler ran', flush=False)); "
              "sys.stdout.write('buffered'); "
              f"_leave({code!r})")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == rc
    assert out.stdout == "bufferedhandler ran\n"
    assert out.stderr.strip() == err


def test_prefetch_leaves_a_failing_import_to_the_foreground():
    from vifit.cli.prefetch import start

    thread = start(("vifit_no_such_module", "json"))
    thread.join(timeout=60)
    assert not thread.is_alive() and "json" in sys.modules


def test_the_command_tunes_the_garbage_collector_for_one_job():
    """``vifit`` (``main``) collects every GC_THRESHOLDS[0] allocations, not Python's 700: JAX's
    350,000 objects made every full collection cost 0.1 s (test_cli only checks the setting;
    the measurement is in the comment at GC_THRESHOLDS)."""
    script = ("import atexit, gc, sys; from vifit.cli.main import main; "
              "atexit.register(lambda: print(gc.get_threshold())); "
              "sys.argv = ['vifit', 'list']; main()")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    from vifit.cli.main import GC_THRESHOLDS

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(GC_THRESHOLDS)
