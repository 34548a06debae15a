"""Training on the built-in digits: a short run improves the held-out bound by a margin set by
the evaluation's standard error, and a run killed after a checkpoint resumes exactly."""

import equinox as eqx
import jax
import numpy as np
import pytest

from conftest import z_bound
from vifit.amortized import (ELBO, CheckpointError, TrainConfig, VAEConfig, bound_per_example,
                             build_vae, load_dataset, load_model, train)
from vifit.checkpoint import save_checkpoint
from vifit.errors import ConfigError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def config(data, **kw):
    return VAEConfig(data.dim, data.kind, latent_dim=4, hidden=(32,),
                     image_shape=data.image_shape, **kw)


def test_short_training_improves_the_heldout_bound(digits):
    cfg = config(digits)
    tc = TrainConfig(epochs=15, lr=3e-3, eval_every=5)
    before = build_vae(cfg, jax.random.split(jax.random.key(tc.seed), 3)[0], digits.train)
    run = train(cfg, tc, digits, progress=False)
    key = jax.random.key(11)  # the same draws for both models: a paired comparison
    b0 = bound_per_example(ELBO(), before, digits.test, key)
    b1 = bound_per_example(ELBO(), run.model, digits.test, key)
    gain = b1 - b0
    se = gain.std(ddof=1) / np.sqrt(len(gain))
    assert gain.mean() > z_bound(1e-3) * se
    # The held-out bound recorded during training rose too, and training saw no bad step.
    held = [h["heldout_bound"] for h in run.history if "heldout_bound" in h]
    assert len(held) == 3 and held[-1] > held[0]
    assert int(run.state.rejected) == 0 and run.examples_per_second > 0


class Killed(Exception):
    pass


def test_a_killed_run_resumes_from_its_checkpoint_with_identical_results(digits, tmp_path):
    cfg = config(digits)
    tc = TrainConfig(objective="iwae", samples=3, epochs=4, checkpoint_every=2, eval_every=2)
    whole = train(cfg, tc, digits, tmp_path / "whole", progress=False)

    def kill_at_3(record):
        if record["epoch"] == 3:
            raise Killed  # after epoch 3 ran, before its (not due) checkpoint: epoch 3 is lost

    with pytest.raises(Killed):
        train(cfg, tc, digits, tmp_path / "cut", progress=False, on_epoch=kill_at_3)
    seen = []
    resumed = train(cfg, tc, digits, tmp_path / "cut", progress=False, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [3, 4]  # continued from the epoch-2 checkpoint
    for a, b in zip(jax.tree.leaves(whole.state._replace(key=jax.random.key_data(whole.state.key))),
                    jax.tree.leaves(resumed.state._replace(key=jax.random.key_data(resumed.state.key)))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    drop_time = lambda hist: [{k: v for k, v in h.items()} for h in hist]
    assert drop_time(whole.history) == drop_time(resumed.history)
    # What is on disk is the finished run, and it loads back as the same model.
    model, meta = load_model(tmp_path / "cut")
    for a, b in zip(jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)),
                    jax.tree.leaves(eqx.filter(whole.model, eqx.is_inexact_array))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert len(meta["history"]) == 4

    # Resuming with other settings is refused, naming what changed.
    with pytest.raises(ConfigError, match="lr"):
        train(cfg, TrainConfig(objective="iwae", samples=3, epochs=4, lr=5e-3), digits,
              tmp_path / "cut", progress=False)


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, {"params": {"w": np.arange(3.0)}}, {"epoch": 1})

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError):
        save_checkpoint(path, {"params": {"w": np.arange(3.0) + 1}}, {"epoch": 2})
    monkeypatch.undo()
    from vifit.checkpoint import load_group, read_meta

    assert read_meta(path) == {"epoch": 1}
    np.testing.assert_array_equal(load_group(path, "params", {"w": np.zeros(3)})["w"], np.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]  # no temporary left
    with pytest.raises(CheckpointError, match="another model"):
        load_group(path, "params", {"w": np.zeros(4)})
