"""Natural-gradient VI for Gaussian families: the Bayesian learning rule with the positive-
definite correction of Lin, Schmidt & Khan (2020, "Handling the positive-definite constraint in
the Bayesian learning rule", ICML), i.e. the improved variational online Newton update.

For q = N(m, S^-1) the natural gradient of the ELBO in the natural parameters gives (Khan & Lin,
2017; Khan et al., 2018), with step size rho:

    G      = E_q[-grad^2 log p(z)] - S                      (natural gradient for the precision)
    S_new  = S + rho G + (rho^2 / 2) G S^-1 G               (PD for any rho > 0: equals
                                                             1/2 [S + (S + rho G) S^-1 (S + rho G)])
    m_new  = m + rho S_new^-1 E_q[grad log p(z)]

Every expectation is estimated from ``draws`` reparameterized draws with the score of q as a
control variate (E_q[grad log q] = 0 and grad^2 log q = -S): we average grad log p - grad log q
and -grad^2 log p + grad^2 log q, which are exactly zero at q = p, so near the optimum the
updates are nearly noise-free (the natural-gradient analogue of sticking the landing).

The Hessian expectation is either the exact Hessian averaged over draws (``hessian="exact"``,
d gradient evaluations per draw, the default for dense covariances) or the gradient-only
Stein/Bonnet estimate E_q[grad^2 f] = E_q[S (z - m) grad f(z)^T] (``hessian="stein"``, the
default for diagonal ones, where only its diagonal is used). On a Gaussian target with exact
Hessians the precision is right after one step and the mean converges geometrically at rate
(1 - rho): tens of steps where Adam needs thousands.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from vifit.errors import ConfigError
from vifit.families.base import Family
from vifit.optim.loop import State, StepInfo, _all_finite, _where, no_rejections
from vifit.optim.runner import RunArgs, register_runner

DEFAULT_RHO = 0.2
# Trust region on the mean: at most this many of the new q's standard deviations per step.
# Far from the posterior a wide q's precision is small and the gradient large, so the full
# Newton-like step can overshoot into regions where log p overflows (the GP-Poisson catalog
# model went from an ELBO of -876 to non-finite in 100 steps). Near the optimum steps are far
# shorter than this and the update is unchanged.
DEFAULT_MAX_STEP = 3.0


def _check(family: Family, hessian: str) -> str:
    if family.gaussian_form is None:
        raise ConfigError(
            f"optimizer 'natgrad' updates a Gaussian's mean and precision; family "
            f"{family.name!r} is not one of those. Use family='fullrank' or 'meanfield', or "
            "optimizer='adam'."
        )
    if hessian == "auto":
        return "exact" if family.gaussian_form == "dense" else "stein"
    if hessian not in ("exact", "stein"):
        raise ConfigError(f"hessian must be 'exact', 'stein' or 'auto', got {hessian!r}.")
    return hessian


def _trust(length: jax.Array, max_step: float) -> jax.Array:
    """The factor that shortens a mean step of Mahalanobis length ``length`` to ``max_step``."""
    return jnp.minimum(1.0, max_step / jnp.maximum(length, 1e-30))


def make_natgrad_step(family: Family, log_density, draws: int, rho: float,
                      hessian: str = "auto", max_step: float = DEFAULT_MAX_STEP):
    """One iBLR step on a ``State`` (its ``opt_state`` is unused), with the loop's guard: a step
    whose ELBO or new parameters are not finite is not taken."""
    hessian = _check(family, hessian)
    dense = family.gaussian_form == "dense"
    batched = hasattr(log_density, "at")  # a minibatch density (vifit.data.minibatch)

    def step(state: State, x=None, shared=None) -> tuple[State, StepInfo]:
        density = log_density.at(x, shared) if batched else log_density
        value_grad = jax.vmap(jax.value_and_grad(density))
        hess = jax.vmap(jax.hessian(density))
        key, sub = jax.random.split(state.key)
        params = state.params
        m = family.mean(params)
        cov = family.covariance(params)
        z = family.sample(params, sub, draws)
        logp, g = value_grad(z)
        elbo = jnp.mean(logp - family.batch_log_prob(params, z))
        r = z - m
        if dense:
            chol = jnp.linalg.cholesky(cov)
            prec = jsl.cho_solve((chol, True), jnp.eye(m.shape[0], dtype=m.dtype))
            score_q = -r @ prec  # grad log q(z_i) = -S (z_i - m), S symmetric
            g_mean = jnp.mean(g - score_q, axis=0)
            if hessian == "exact":
                big_g = -jnp.mean(hess(z), axis=0) - prec
            else:
                cross = jnp.einsum("ni,nj->ij", r @ prec, g - score_q) / draws
                big_g = -0.5 * (cross + cross.T)
            big_g = 0.5 * (big_g + big_g.T)
            new_prec = prec + rho * big_g + 0.5 * rho**2 * big_g @ cov @ big_g
            new_cov = jnp.linalg.inv(new_prec)
            new_cov = 0.5 * (new_cov + new_cov.T)
            step_m = rho * new_cov @ g_mean
            new_m = m + step_m * _trust(jnp.sqrt(step_m @ new_prec @ step_m), max_step)
        else:
            prec = 1.0 / jnp.diag(cov)
            score_q = -r * prec
            g_mean = jnp.mean(g - score_q, axis=0)
            if hessian == "exact":
                big_g = -jnp.mean(jax.vmap(jnp.diag)(hess(z)), axis=0) - prec
            else:
                big_g = -jnp.mean(r * prec * (g - score_q), axis=0)
            new_prec = prec + rho * big_g + 0.5 * rho**2 * big_g**2 / prec
            new_cov = jnp.diag(1.0 / new_prec)
            step_m = rho * g_mean / new_prec
            new_m = m + step_m * _trust(jnp.sqrt(jnp.sum(step_m**2 * new_prec)), max_step)
        new_params = family.from_gaussian(new_m, new_cov)
        ok = jnp.isfinite(elbo) & _all_finite(new_params)
        new = State(params=_where(ok, new_params, params), opt_state=state.opt_state, key=key,
                    rejected=state.rejected + (~ok).astype(jnp.int32))
        return new, StepInfo(jnp.where(ok, elbo, jnp.nan), ok)

    return step


def run_natgrad(args: RunArgs) -> tuple[Any, dict[str, Any]]:
    """Runner for ``fit(..., optimizer="natgrad")``: the compiled loop over iBLR steps.
    ``lr`` is the step size rho (default 0.2); ``draws`` default 16."""
    from vifit.optim.loop import run_loop

    rho, draws, hessian, max_step, step, probe, state, config = _parts(args)
    loop = run_loop(state, step, config, on_window=args.on_window, probe=probe,
                    checkpoint=args.checkpoint, feed=args.minibatch, family=args.family)
    return loop, {"natgrad": {"rho": rho, "hessian": _check(args.family, hessian),
                              "draws": draws, "max_step": max_step}}


def _programs(args: RunArgs) -> list[tuple]:
    """The loop's chunk that ``run_natgrad(args)`` will run, with its first arguments
    (``vifit.engine.stage_programs``); none on minibatches."""
    from vifit.optim.loop import first_chunk

    if args.minibatch is not None:
        return []
    *_, step, probe, state, config = _parts(args)
    return [first_chunk(step, state, config, probe)]


def _parts(args: RunArgs):
    """The checked settings, the step, the probe, the first state and the loop's settings of
    a natgrad fit: the same objects for the same settings (``reused``)."""
    from vifit.optim.loop import LoopConfig, make_probe, reused

    if not args.target.differentiable:
        raise ConfigError("optimizer 'natgrad' needs gradients of log p; this target is "
                          "differentiable=False. Use optimizer='adam' with estimator='score'.")
    rho = DEFAULT_RHO if args.lr is None else float(args.lr)
    if not 0.0 < rho <= 1.0:
        raise ConfigError(f"natgrad's step size (lr) must be in (0, 1], got {rho}.")
    draws = 16 if args.draws is None else int(args.draws)
    hessian = args.options.get("hessian", "auto")
    max_step = float(args.options.get("max_step", DEFAULT_MAX_STEP))
    if not max_step > 0:
        raise ConfigError(f"natgrad's max_step must be positive, got {max_step}.")
    density = args.minibatch if args.minibatch is not None else args.target.log_density
    step = reused(make_natgrad_step, args.family, density, draws, rho, hessian, max_step,
                  keep=args.minibatch is None)
    state = State(params=args.params, opt_state=(), key=args.key,
                  rejected=no_rejections())
    config = LoopConfig(max_steps=args.max_steps, draws=draws, window=args.window,
                        patience=args.patience, tol=args.tol)
    return rho, draws, hessian, max_step, step, reused(make_probe, args.family), state, config


run_natgrad.programs = _programs
register_runner("natgrad", run_natgrad, draws_default=16)
