"""First-order optimizers by name, built from optax, with the learning rate kept in the optimizer
state (``optax.inject_hyperparams``) so the loop can read or lower it without recompiling."""

from __future__ import annotations

from collections.abc import Callable

import optax

from vifit.errors import ConfigError
from vifit.optim.component_units import component_adam

_OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": optax.adam,
    "component-adam": component_adam,  # a mixture's components each in its own units
    "sgd": optax.sgd,
    "adagrad": optax.adagrad,
    "rmsprop": optax.rmsprop,
}


def _schedules(lr: float, steps: int) -> dict[str, Callable[[], optax.Schedule]]:
    """Each schedule by name, built only when asked for (a fit of a few steps cannot have a
    warm-up, and must not fail because of one it does not use)."""
    steps = max(int(steps), 2)
    return {
        "constant": lambda: optax.constant_schedule(lr),
        "cosine": lambda: optax.cosine_decay_schedule(lr, decay_steps=steps, alpha=0.01),
        "exponential": lambda: optax.exponential_decay(
            lr, transition_steps=max(steps // 10, 1), decay_rate=0.7),
        "warmup_cosine": lambda: optax.warmup_cosine_decay_schedule(
            lr / 10, lr, warmup_steps=max(steps // 20, 1), decay_steps=steps, end_value=lr / 100
        ),
    }


def optimizer_names() -> list[str]:
    return sorted(_OPTIMIZERS)


def schedule_names() -> list[str]:
    return sorted(_schedules(1.0, 10))


def make_optimizer(
    optimizer: str | optax.GradientTransformation,
    lr: float = 1e-2,
    schedule: str | optax.Schedule | None = None,
    steps: int = 10_000,
    clip: float | None = 1e3,
) -> optax.GradientTransformation:
    """An optax transform from a name (``adam``, ``sgd``, ``adagrad``, ``rmsprop``) or as given.

    ``schedule``: ``None``/``"constant"``, ``"cosine"``, ``"exponential"``, ``"warmup_cosine"``
    (over ``steps``), or any optax schedule. ``clip`` bounds the global gradient norm, which keeps
    one wild Monte Carlo gradient from throwing the fit far away.
    """
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    if optimizer not in _OPTIMIZERS:
        raise ConfigError(
            f"unknown optimizer {optimizer!r}; choose one of {', '.join(optimizer_names())}, "
            "or pass an optax.GradientTransformation."
        )
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < float("inf"):
        raise ConfigError(f"the learning rate must be a positive finite number, got {lr!r}.")
    if schedule is None:
        schedule = "constant"
    if isinstance(schedule, str):
        table = _schedules(lr, steps)
        if schedule not in table:
            raise ConfigError(
                f"unknown schedule {schedule!r}; choose one of {', '.join(sorted(table))}."
            )
        schedule = table[schedule]()
    elif not callable(schedule):
        raise ConfigError(f"schedule must be a name ({', '.join(schedule_names())}) or an optax "
                          f"schedule (a function of the step), got {schedule!r}.")
    base = optax.inject_hyperparams(_OPTIMIZERS[optimizer])(learning_rate=schedule)
    if clip is None:
        return base
    return optax.chain(optax.clip_by_global_norm(clip), base)
