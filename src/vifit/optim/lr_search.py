"""``lr="auto"``: choose the learning rate of a stochastic optimizer by a short pilot.

Every learning rate of a log-spaced grid runs ``pilot_steps`` steps from the same start with the
same random draws (common random numbers), all at once under ``jax.vmap`` (the learning rate
lives in the optimizer state, ``optax.inject_hyperparams``, so one compiled program serves the
whole grid). Each is scored by its mean ELBO over the second half of the pilot, the quantity the
fit is after: too small a rate has not climbed, too large a rate is jittery (a lower mean) or
diverges (any non-finite step disqualifies it). The fit then starts from where the winner's pilot
ended.

Why a pilot rather than a schedule alone: the right Adam step size for the log-scale and
location parameters of VI varies by orders of magnitude between targets (it scales with the
posterior's widths), and a schedule cannot fix a start that is 30x off; a 200-step pilot over 5
rates costs about as much as a few hundred steps of one fit. A schedule (``schedule=``) still
applies to the main fit on top.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vifit.errors import ConfigError
from vifit.optim.loop import State, make_step
from vifit.optim.optimizers import _OPTIMIZERS

DEFAULT_GRID = (0.003, 0.01, 0.03, 0.1, 0.3)


def search_lr(objective, estimator, family, log_density, optimizer: str | Any, params, key,
              draws: int, grid: tuple[float, ...] = DEFAULT_GRID,
              pilot_steps: int = 200, clip: float = 1e3) -> tuple[float, Any, dict[str, Any]]:
    """The chosen learning rate, the parameters its pilot ended at, and a record of the pilot
    (grid, scores, steps) for ``FitResult.info``."""
    if not isinstance(optimizer, str) or optimizer not in _OPTIMIZERS:
        raise ConfigError(f"lr='auto' searches the rate of a named optimizer "
                          f"({', '.join(sorted(_OPTIMIZERS))}); give a number for {optimizer!r}.")
    # A numeric rate (not a schedule) in the injected hyperparameters, so that setting it per
    # grid point sticks; clipped like make_optimizer's.
    opt = optax.chain(optax.clip_by_global_norm(clip),
                      optax.inject_hyperparams(_OPTIMIZERS[optimizer])(learning_rate=1.0))
    step = make_step(objective, estimator, family, log_density, opt, draws)
    base = opt.init(params)
    lrs = jnp.asarray(grid, dtype=jax.tree.leaves(params)[0].dtype)

    @jax.jit
    def pilot(lrs):
        def one(lr):
            opt_state = optax.tree_utils.tree_set(base, learning_rate=lr)
            state = State(params=params, opt_state=opt_state, key=key,
                          rejected=jnp.zeros((), jnp.int32))
            final, infos = jax.lax.scan(lambda s, _: step(s), state, None, length=pilot_steps)
            return final.params, infos.objective, final.rejected
        return jax.vmap(one)(lrs)

    finals, traces, rejected = pilot(lrs)
    traces = np.asarray(traces)
    half = traces[:, pilot_steps // 2:]
    scores = np.where(np.asarray(rejected) == 0, np.nanmean(half, axis=1), -np.inf)
    scores = np.where(np.isfinite(scores) & _healthy(family, finals, key), scores, -np.inf)
    best = int(np.argmax(scores))
    chosen = jax.tree.map(lambda x: x[best], finals)
    record = {"grid": list(map(float, grid)), "scores": [float(s) for s in scores],
              "disqualified": [float(g) for g, sc in zip(grid, scores) if not np.isfinite(sc)],
              "chosen": float(grid[best]), "pilot_steps": pilot_steps * len(grid)}
    return float(grid[best]), chosen, record


def _healthy(family, finals, key, n: int = 256) -> np.ndarray:
    """Which pilots ended at a q whose log density is numerically sound: where the family has a
    closed-form entropy, -mean(log q) at q's own draws must match it within 6 standard errors.

    Why: too large a rate can drive a full-rank q to a nearly singular Cholesky factor, where
    float32 ``log_prob`` (a triangular solve) returns log q ~ -1e15 at q's own draws and the
    ELBO estimate becomes a huge positive number (seen on eight schools at lr = 0.3): such a
    pilot "wins" on garbage."""
    def check(params):
        z = family.sample(params, key, n)
        neg_logq = -family.batch_log_prob(params, z)
        se = jnp.std(neg_logq) / jnp.sqrt(n)
        return jnp.abs(jnp.mean(neg_logq) - family.entropy(params)) <= 6.0 * se + 1e-3

    try:
        jax.eval_shape(family.entropy, jax.tree.map(lambda x: x[0], finals))
    except NotImplementedError:
        return np.ones(jax.tree.leaves(finals)[0].shape[0], bool)
    return np.asarray(jax.jit(jax.vmap(check))(finals))
