"""Compile and run seconds (vifit.clock), NumPy draws from JAX keys (vifit.rng), and the
command line's XLA setting (vifit.cache.fast_compile)."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

import vifit
from vifit.clock import timed
from vifit.rng import numpy_rng, standard_normal


def test_timed_counts_compiling_and_not_running():
    f = jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T)
    x = jnp.ones((300, 300))
    with timed() as first:
        f(x).block_until_ready()
    with timed() as again:  # compiled already: nothing to compile
        for _ in range(20):
            f(x).block_until_ready()
    assert first.compile_seconds > 0
    assert first.compile_seconds <= first.seconds
    assert again.compile_seconds == 0.0
    assert again.run_seconds == again.seconds > 0


def test_timed_blocks_nest():
    g = jax.jit(lambda x: x * 3.0 + 1.0)
    with timed() as outer:
        with timed() as inner:
            g(jnp.arange(7.0)).block_until_ready()
    assert 0 < inner.compile_seconds <= outer.compile_seconds


def test_fit_records_timing():
    target = vifit.Target(lambda z: -0.5 * jnp.sum((z - 1.0) ** 2), dim=3)
    res = vifit.fit(target, "meanfield", steps=300, progress=False)
    t = res.info["timing"]
    assert set(t) == {"seconds", "compile_seconds", "run_seconds"}
    assert t["compile_seconds"] > 0  # a fresh closure: its programs are compiled here
    assert abs(t["compile_seconds"] + t["run_seconds"] - t["seconds"]) < 2e-3
    assert res.to_dict()["timing"] == t


def test_numpy_draws_follow_the_key():
    a = standard_normal(jax.random.key(3), (500, 2), np.float32)
    b = standard_normal(jax.random.key(3), (500, 2), np.float32)
    c = standard_normal(jax.random.key(4), (500, 2), np.float32)
    d = standard_normal(jax.random.fold_in(jax.random.key(3), 1), (500, 2), np.float32)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, d)
    # raw uint32 keys give the same stream as the typed key they hold
    raw = jax.random.key_data(jax.random.key(3))
    assert np.array_equal(numpy_rng(raw).standard_normal(5),
                          numpy_rng(jax.random.key(3)).standard_normal(5))
    # standard normal: mean 0, sd 1 within 5 standard errors over 1000 draws
    x = a.astype(np.float64).ravel()
    assert abs(x.mean()) < 5 / np.sqrt(x.size) and abs(x.std() - 1) < 5 / np.sqrt(2 * x.size)


def _xla_flags_after_cli(env_flags):
    code = ("import os, sys; from vifit.cache import fast_compile; fast_compile(); "
            "print(os.environ.get('XLA_FLAGS', ''))")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "VIFIT_XLA_OPT_LEVEL")}
    env.update(env_flags)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return out.stdout.strip()


def test_cli_compile_level_and_the_users_choice():
    from vifit.cache import LEGACY_EMITTERS_FLAG, _jaxlib_version, LEGACY_EMITTERS_JAXLIB

    legacy = _jaxlib_version().startswith(LEGACY_EMITTERS_JAXLIB)
    quick = "--xla_backend_optimization_level=1" + (f" {LEGACY_EMITTERS_FLAG}" if legacy else "")
    assert _xla_flags_after_cli({}) == quick
    # a level of the user's choosing: full code generation, no legacy emitters
    assert _xla_flags_after_cli({"VIFIT_XLA_OPT_LEVEL": "2"}) == \
        "--xla_backend_optimization_level=2"
    mine = "--xla_backend_optimization_level=3 --xla_cpu_enable_fast_math=false"
    assert _xla_flags_after_cli({"XLA_FLAGS": mine}) == mine
    other = "--xla_force_host_platform_device_count=2"
    assert _xla_flags_after_cli({"XLA_FLAGS": other}) == other + " " + quick


def test_cli_xla_flags_are_known_to_this_jaxlib():
    """An XLA flag this jaxlib does not know aborts the process at its first computation
    (jaxlib 0.12 dropped the fusion-emitter switch): the command line's flags must start it."""
    code = ("import os; from vifit.cache import fast_compile; fast_compile(); "
            "import jax.numpy as jnp; print(float(jnp.ones(3).sum()))")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "VIFIT_XLA_OPT_LEVEL")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "3.0", out.stderr[-2000:]


def test_flow_fit_programs_reach_the_persistent_cache(tmp_path):
    """A flow's fitting loop and evaluation are written to the cache (a host callback in them,
    as equinox's checks inside a trace made, keeps a program out of it)."""
    code = ("import vifit, vifit.cache as c, jax.numpy as jnp; c.enable(r'%s'); "
            "t = vifit.Target(lambda z: -0.5 * jnp.sum(z ** 2), dim=2); "
            "vifit.fit(t, 'realnvp', steps=200, progress=False)" % tmp_path)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    names = {p.name.split("-")[0] for p in tmp_path.iterdir()}
    assert {"jit_chunk", "jit_draw"} <= names, sorted(names)
