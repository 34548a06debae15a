"""Optimizers that are not an optax transform on a stochastic gradient (natural gradient,
L-BFGS on fixed draws, Pathfinder) plug into ``vifit.fit`` as *runners*, by name.

A runner takes the whole problem (``RunArgs``) and returns the loop's ``LoopResult`` and a dict
of what else it measured (it lands in ``FitResult.info``). The first-order optax optimizers
keep using ``vifit.optim.loop`` directly; nothing about them changes.
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


def runner_names() -> list[str]:
    _load_builtin()
    return sorted(_RUNNERS)


def _load_builtin() -> None:
    # Imported lazily: each module registers itself, and the loop must not import them.
    from vifit.optim import deterministic, natgrad, pathfinder  # noqa: F401
