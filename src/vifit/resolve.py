"""Resolve what a fit will use: the family configured for the target, the objective, the
gradient estimator and the draws per step; incompatible combinations raise ConfigError with the
fix. Shared by ``vifit.fit``, the optimizers' runners and ``vifit.gradvar``."""

from __future__ import annotations

from vifit.errors import ConfigError
from vifit.estimators import Estimator, get_estimator
from vifit.families import Family, get_family
from vifit.objectives import Objective, get_objective
from vifit.target import Target


def resolve_estimator(spec: str | Estimator | None, target: Target, objective: Objective,
                      family: Family) -> Estimator:
    """The estimator for ``spec`` (default: the family's own for the ELBO, e.g. ``stratified``
    for mixtures, else the objective's choice), checked against the target, the objective and
    the family; ConfigError with the fix when they do not fit."""
    if spec is None:
        own = family.default_estimator if objective.linear_in_weights else None
        spec = own if own and target.differentiable else objective.default_estimator(
            target.differentiable)
    estimator = get_estimator(spec)
    if estimator.needs_target_grad and not target.differentiable:
        raise ConfigError(
            f"estimator {estimator.name!r} differentiates log p, but this target was declared "
            "differentiable=False; use estimator='score'"
            + (", 'rb' or 'relaxed'." if target.discrete else ".")
        )
    estimator.check(objective)
    estimator.check_target(target, family)
    estimator.check_family(family)
    return estimator


def resolve(target: Target, family: str | Family | None, objective: str | Objective,
            estimator: str | Estimator | None) -> tuple[Family, Objective, Estimator]:
    """The family (configured for ``target``), objective and estimator a fit would use;
    incompatible combinations raise ConfigError with the fix. ``family=None`` picks
    ``fullrank`` for continuous targets, ``bernoulli``/``categorical`` for discrete ones."""
    fam = resolve_family(target, family)
    obj = get_objective(objective)
    return fam, obj, resolve_estimator(estimator, target, obj, fam)


def resolve_family(target: Target, family: str | Family | None) -> Family:
    """The family for ``target``: as given (configured for the target), or by default
    ``fullrank`` for continuous targets and ``bernoulli``/``categorical`` for discrete ones."""
    if family is None:
        family = ("fullrank" if not target.discrete
                  else "bernoulli" if target.n_states == 2 else "categorical")
    return get_family(family).for_target(target)


def resolve_draws(draws: int | None, objective: Objective, estimator: Estimator) -> int:
    """Draws per step: the estimator's default rounded up to whole groups of the objective's
    K, or ``draws`` checked against both."""
    k = objective.group_size()
    if draws is None:
        return -(-max(estimator.default_draws(), k) // k) * k
    draws = int(draws)
    if draws < estimator.min_draws():
        raise ConfigError(
            f"estimator {estimator.name!r} as configured needs at least {estimator.min_draws()} "
            f"draws per step, got draws={draws}."
        )
    if draws % k:
        lo, hi = max(k, draws // k * k), -(-draws // k) * k
        raise ConfigError(
            f"objective {objective.label()} averages groups of K={k} draws; draws={draws} is "
            f"not a multiple of {k}: use draws={lo}" + (f" or {hi}." if hi != lo else ".")
        )
    return draws
