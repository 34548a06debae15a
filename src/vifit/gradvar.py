"""Gradient-variance report: how noisy each applicable estimator is on *your* model, at a given
q, for the same number of target evaluations, so the choice is made with data.

For every estimator, ``reps`` independent gradient estimates are drawn at fixed parameters,
each using as many draws as ``budget`` target evaluations buy (``budget // evals_per_draw``,
rounded down to whole groups of the objective's K): one evaluation per draw for the pathwise
and score estimators (pathwise ones also differentiate it), ``d * K`` per draw for ``rb``.
The table gives the total variance (trace of the covariance of one estimate), and for biased
estimators their bias measured against the least noisy unbiased one, so that the mean squared
error ``total_variance + bias^2`` compares them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.flatten_util
import numpy as np

from vifit.api import resolve_estimator, resolve_family
from vifit.errors import ConfigError, VifitError
from vifit.estimators import Estimator, estimator_names
from vifit.families import Family
from vifit.families.base import Params
from vifit.objectives import Objective, get_objective
from vifit.target import Target

COLUMNS = ["estimator", "draws", "target_evals", "total_variance", "variance_se", "relative",
           "bias", "mse", "note"]


def applicable_estimators(target: Target, family: Family, objective: Objective) -> list[str]:
    """Registered estimator names that accept this target, family and objective."""
    names = []
    for name in estimator_names():
        try:
            resolve_estimator(name, target, objective, family)
        except VifitError:
            continue
        names.append(name)
    return names


def _estimates(est: Estimator, objective: Objective, target: Target, family: Family,
               params: Params, draws: int, reps: int, key: jax.Array) -> np.ndarray:
    keys = jax.random.split(key, reps)

    @jax.jit
    def one(k):
        grads, _ = est.loss_grad(objective, target.log_density, family, params, k, draws)
        return jax.flatten_util.ravel_pytree(grads)[0]

    return np.asarray(jax.lax.map(one, keys, batch_size=min(reps, 50)), dtype=np.float64)


def gradient_variance(
    target: Target,
    family: str | Family | None = None,
    params: Params | Any = None,
    *,
    objective: str | Objective = "elbo",
    estimators: Sequence[str | Estimator] | None = None,
    budget: int = 256,
    reps: int = 200,
    seed: int = 0,
):
    """A table (pandas DataFrame, one row per estimator) of gradient variances at one q.

    Args:
      target: the model.
      family: the family (name or object); taken from ``params`` when that is a FitResult.
      params: the family's parameters, a ``FitResult`` (its fitted q), or ``None`` for the
        initial q that ``fit`` would start from.
      objective: whose gradient is estimated (name or object).
      estimators: names or objects; default: every registered estimator that applies.
      budget: target evaluations per gradient estimate, the same for every estimator.
      reps: independent estimates per estimator (the variance's own error shrinks as
        1/sqrt(reps); ``variance_se`` reports it).
      seed: for the initial parameters and the draws.

    Columns: ``estimator``, ``draws`` (per estimate), ``target_evals`` (= draws x evaluations
    per draw), ``total_variance`` (trace of the covariance of one estimate), ``variance_se``,
    ``relative`` (to the smallest total variance among unbiased estimators), ``bias`` (norm of
    the mean's distance to the least noisy unbiased estimator's mean, noise removed; 0 for
    unbiased estimators, NaN when there is no unbiased reference), ``mse`` (total_variance +
    bias^2), ``note`` (why an estimator is biased, or could not run).
    """
    import pandas as pd

    if hasattr(params, "params") and hasattr(params, "family"):  # a FitResult
        family = params.family if family is None else family
        params = params.params
    if int(budget) < 1 or int(reps) < 3:
        raise ConfigError("budget must be >= 1 and reps >= 3.")
    fam, obj = resolve_family(target, family), get_objective(objective)
    key_init = jax.random.split(jax.random.key(seed), 4)[0]  # as fit() derives it
    key_draws = jax.random.fold_in(jax.random.key(seed), 1)
    if params is None:
        params = fam.init(key_init, target.dim, loc=target.init)
    specs = list(estimators) if estimators else applicable_estimators(target, fam, obj)
    k = obj.group_size()
    rows = []
    for spec in specs:
        est = resolve_estimator(spec, target, obj, fam)
        label = spec if isinstance(spec, str) and spec != est.name else est.label()
        per_draw = est.evals_per_draw(fam, params)
        draws = int(budget) // per_draw // k * k
        need = max(est.min_draws(), k)
        if draws < need:
            rows.append({"estimator": label, "draws": 0, "target_evals": 0,
                         "note": f"needs a budget of at least {need * per_draw} evaluations"})
            continue
        g = _estimates(est, obj, target, fam, params, draws, int(reps), key_draws)
        dev = np.sum((g - g.mean(0)) ** 2, axis=1) * reps / (reps - 1)
        rows.append({"estimator": label, "draws": draws, "target_evals": draws * per_draw,
                     "total_variance": float(dev.mean()),
                     "variance_se": float(dev.std(ddof=1) / np.sqrt(reps)),
                     "note": est.bias(obj) or "", "_mean": g.mean(0),
                     "_biased": bool(est.bias(obj))})
    return _finish(pd.DataFrame(rows), int(reps))


def _finish(table, reps: int):
    import pandas as pd

    for col in ["total_variance", "variance_se", "_mean", "_biased"]:
        if col not in table:
            table[col] = np.nan
    ran = table["total_variance"].notna()
    unbiased = table[ran & (table["_biased"] == False)]  # noqa: E712 (a pandas mask)
    ref = unbiased.loc[unbiased["total_variance"].idxmin()] if len(unbiased) else None
    bias = []
    for _, row in table.iterrows():
        if not np.isfinite(row["total_variance"]):
            bias.append(np.nan)
        elif not row["_biased"]:
            bias.append(0.0)
        elif ref is None:
            bias.append(np.nan)
        else:  # E|m_b - m_ref|^2 = bias^2 + (tr_b + tr_ref) / reps: remove the noise part
            sq = np.sum((row["_mean"] - ref["_mean"]) ** 2)
            sq -= (row["total_variance"] + ref["total_variance"]) / reps
            bias.append(float(np.sqrt(max(sq, 0.0))))
    table["bias"] = bias
    table["mse"] = table["total_variance"] + table["bias"] ** 2
    best = ref["total_variance"] if ref is not None else table["total_variance"].min()
    table["relative"] = table["total_variance"] / best
    table["target_evals"] = table["target_evals"].astype(int)
    table["draws"] = table["draws"].astype(int)
    return pd.DataFrame(table[COLUMNS]).reset_index(drop=True)
