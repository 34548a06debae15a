"""One protocol for every way of optimizing: a *runner* takes the whole problem (``RunArgs``)
and returns the loop's ``LoopResult`` and a dict of what else it measured (it lands in
``FitResult.info``). ``vifit.fit`` reads resolve -> ``runner_for(optimizer)`` -> run ->
evaluate -> result, whatever the optimizer.

The first-order optax optimizers (``adam``, ``sgd``, ... or an optax transform) share one runner
(``vifit.optim.optax_runner``); natural gradient, L-BFGS on fixed draws and Pathfinder register
their own by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from vifit.estimators.base import Estimator
from vifit.families.base import Family, Params
from vifit.objectives.base import Objective
from vifit.target import Target


class RunArgs(NamedTuple):
    target: Target
    family: Family
    objective: Objective
    estimator: Estimator
    params: Params  # starting parameters of ``family``
    key: jax.Array
    max_steps: int
    draws: int | None  # None: the runner's own default
    lr: float | None  # None: the runner's own default (a step size, whatever it means there)
    window: int
    patience: int
    tol: float
    on_window: Callable[[int, float, float], None] | None
    options: dict[str, Any]  # runner-specific settings, from fit(..., optimizer_options=...)
    optimizer: Any = None  # the optax runner's optimizer: a name or an optax transform
    schedule: Any = None  # the optax runner's learning-rate schedule
    checkpoint: Any = None  # a vifit.optim.resume.FitCheckpoint for this stage, or None
    warm_start: bool = True  # whether the objective's warm start may run (no init_params)
    init_key: Any = None  # the key the start was drawn with (the optax lr pilot reuses it)
    minibatch: Any = None  # a vifit.data.minibatch.Minibatch: fit a DataTarget on minibatches


Runner = Callable[[RunArgs], tuple[Any, dict[str, Any]]]
_RUNNERS: dict[str, tuple[Runner, int]] = {}


def register_runner(name: str, runner: Runner, draws_default: int) -> None:
    """Make ``fit(..., optimizer=name)`` call ``runner``. ``draws_default`` is reported when
    the user gives no ``draws``."""
    _RUNNERS[name] = (runner, draws_default)


def get_runner(name: Any) -> tuple[Runner, int] | None:
    """The runner registered under ``name``, or None (an optax optimizer)."""
    if isinstance(name, str):
        _load_builtin()
        return _RUNNERS.get(name)
    return None


def runner_for(optimizer: Any) -> tuple[Runner, int | None]:
    """The runner for ``optimizer`` and its default draws (None: the estimator's own): a
    registered name, else the shared optax runner (a name of ``optimizer_names()`` or an optax
    transform)."""
    own = get_runner(optimizer)
    if own is not None:
        return own
    from vifit.optim.optax_runner import run_optax

    return run_optax, None


def runner_names() -> list[str]:
    _load_builtin()
    return sorted(_RUNNERS)


def _load_builtin() -> None:
    # Imported lazily: each module registers itself, and the loop must not import them.
    from vifit.optim import deterministic, natgrad, pathfinder  # noqa: F401
