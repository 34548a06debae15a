"""Pathfinder (Zhang, Carpenter, Gelman & Vehtari, 2022, JMLR): follow L-BFGS toward the mode
of log p and, at every iterate, form the Gaussian that the L-BFGS curvature pairs imply; keep the
one with the highest ELBO.

At iterate x_l with gradient g_l of f = -log p and the last ``history`` curvature pairs
(s_j = x_{j+1} - x_j, y_j = g_{j+1} - g_j, kept when s_j . y_j > 0), the dense BFGS inverse-
Hessian estimate is built from H_0 = (s.y / y.y) I by

    H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T,   rho = 1 / (s . y),

oldest pair first, and the Gaussian is N(x_l - H g_l, H): one quasi-Newton step from x_l, with
H as its covariance. Our one addition (``secant_fit=True``): a second candidate covariance per
iterate, the symmetrized least-squares solution of the secant equations H y_j = s_j over all
kept pairs, H = sym(S^T (Y^T)^+). On a Gaussian target y_j = A s_j exactly, so once the pairs
span R^d this candidate is A^-1 itself, where the BFGS recursion is exact only with exact line
searches; elsewhere it is often not positive definite (then it is skipped) and the ELBO decides
between the two. Its ELBO is estimated with the same ``draws`` standard-normal draws at
every iterate (common random numbers, so the comparison between iterates is not decided by
Monte Carlo noise). Because the best iterate is chosen by ELBO and not by closeness to the mode,
Pathfinder still returns a sensible Gaussian when the mode is a poor summary or does not exist
(a funnel's density is unbounded at its neck: L-BFGS runs off, the early iterates win).

This module uses optax's L-BFGS (``vifit.optim.lbfgs``) rather than BlackJAX's Pathfinder so that
the full dense covariance is available to start any family (``Family.from_gaussian``) and the
core package does not need BlackJAX; bench/ compares the two. The covariance is dense: cost
O(history d^2 + d^3) per iterate, meant for d up to a few hundred.
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vifit.errors import TargetError
from vifit.optim.lbfgs import LBFGSState, make_lbfgs
from vifit.optim.loop import LoopResult
from vifit.optim.runner import RunArgs, register_runner
from vifit.rng import standard_normal
from vifit.target import Target

_LOG_2PI = math.log(2.0 * math.pi)


class PathfinderResult(NamedTuple):
    mean: np.ndarray  # (d,) mean of the chosen Gaussian
    cov: np.ndarray  # (d, d) its covariance
    elbo: float  # its ELBO, estimated at the fixed draws
    best_iter: int  # which L-BFGS iterate it came from (1-based; 0: none beat the start)
    elbo_path: np.ndarray  # (iters,) the ELBO estimate at each iterate (nan: no new Gaussian)
    iters: int  # L-BFGS iterations taken
    stop_reason: str  # "converged" | "max_steps" | "non-finite"
    seconds: float


class _Path(NamedTuple):
    lb: LBFGSState
    s_hist: jax.Array  # (J, d) curvature pairs, oldest first
    y_hist: jax.Array  # (J, d)
    valid: jax.Array  # (J,) bool
    best_elbo: jax.Array
    best_mean: jax.Array  # (d,)
    best_cov: jax.Array  # (d, d)
    best_iter: jax.Array  # () int32


def dense_inverse_hessian(s_hist: jax.Array, y_hist: jax.Array, valid: jax.Array) -> jax.Array:
    """The BFGS inverse-Hessian estimate ``(d, d)`` from pairs ``(J, d)`` (oldest first;
    ``valid`` marks real pairs), starting from the scaled identity of the newest pair."""
    d = s_hist.shape[1]
    eye = jnp.eye(d, dtype=s_hist.dtype)
    newest = jnp.max(jnp.where(valid, jnp.arange(valid.shape[0]), -1))
    s_n, y_n = s_hist[newest], y_hist[newest]
    gamma = jnp.where(newest >= 0, jnp.dot(s_n, y_n) / jnp.dot(y_n, y_n), 1.0)

    def update(h, pair):
        # (I - rho s y^T) H (I - rho y s^T) + rho s s^T expanded into rank-one terms: O(d^2)
        # per pair where the matrix products cost O(d^3) (in d = 300, 160 s of Pathfinder).
        s, y, ok = pair
        rho = 1.0 / jnp.where(ok, jnp.dot(s, y), 1.0)
        hy = h @ y
        new = (h - rho * (jnp.outer(s, hy) + jnp.outer(hy, s))
               + (rho * rho * jnp.dot(y, hy) + rho) * jnp.outer(s, s))
        return jnp.where(ok, new, h), None

    h, _ = jax.lax.scan(update, gamma * eye, (s_hist, y_hist, valid))
    return 0.5 * (h + h.T)


def secant_fit_inverse_hessian(s_hist: jax.Array, y_hist: jax.Array,
                               valid: jax.Array) -> jax.Array:
    """The symmetrized least-squares solution of H y_j = s_j over the valid pairs."""
    mask = valid[:, None].astype(s_hist.dtype)
    s_t, y_t = (s_hist * mask).T, (y_hist * mask).T  # (d, J)
    h = s_t @ jnp.linalg.pinv(y_t)
    return 0.5 * (h + h.T)


def _gaussian_elbo(log_density, mean, cov, eps):
    chol = jnp.linalg.cholesky(cov)
    z = mean + eps @ chol.T
    log_q = (-0.5 * jnp.sum(eps**2, axis=1) - jnp.sum(jnp.log(jnp.diag(chol)))
             - 0.5 * mean.shape[0] * _LOG_2PI)
    return jnp.mean(jax.vmap(log_density)(z) - log_q)


def pathfinder(target: Target, *, seed: int | jax.Array = 0, init: Any = None,
               max_iters: int = 200, history: int | None = None, draws: int = 32,
               gtol: float = 1e-6, secant_fit: bool = True) -> PathfinderResult:
    """Run single-path Pathfinder on ``target`` from ``init`` (default ``target.init``).

    Args:
      max_iters: most L-BFGS iterations (one compiled scan of this length).
      history: curvature pairs kept for the covariance (default max(10, d + 2)); L-BFGS's own
        memory is min(history, 10).
      draws: standard-normal draws for each iterate's ELBO (the same draws for all).
      gtol: stop when every |d log p / dz| is below this.
    """
    if not target.differentiable:
        raise TargetError("Pathfinder follows gradients of log p; this target is "
                          "differentiable=False. Use fit(..., estimator='score') instead.")
    key = jax.random.key(seed) if isinstance(seed, int) else seed
    x0 = jnp.asarray(target.init if init is None else init, dtype=target.init.dtype)
    d = x0.shape[0]
    history = max(10, d + 2) if history is None else int(history)
    neg = lambda x: -target.log_density(x)
    lb_init, lb_step = make_lbfgs(neg, memory=min(history, 10), gtol=gtol)
    eps = jnp.asarray(standard_normal(key, (draws, d), x0.dtype))

    def body(p: _Path, _):
        lb = lb_step(p.lb)
        moved = (lb.iters > p.lb.iters) & ~lb.failed
        s, y = lb.x - p.lb.x, lb.grad - p.lb.grad
        sy = jnp.dot(s, y)
        # Positive curvature along s, tested by the angle between s and y: the paper's
        # s.y > eps |y|^2 is not invariant to the scale of z, and in float32 it rejected every
        # pair where p's sd is below about 3e-4 (curvature above 1 / eps), so a narrow
        # posterior got no Gaussian at all.
        ulp = jnp.finfo(x0.dtype).eps
        accept = moved & (sy > ulp * jnp.sqrt(jnp.dot(s, s) * jnp.dot(y, y)))
        shift = lambda h, v: jnp.where(accept, jnp.concatenate([h[1:], v[None]]), h)
        s_hist, y_hist = shift(p.s_hist, s), shift(p.y_hist, y)
        valid = jnp.where(accept, jnp.concatenate([p.valid[1:], jnp.array([True])]), p.valid)

        def gaussian(_):
            h = dense_inverse_hessian(s_hist, y_hist, valid)
            elbo = _gaussian_elbo(target.log_density, lb.x - h @ lb.grad, h, eps)
            if secant_fit:
                h2 = secant_fit_inverse_hessian(s_hist, y_hist, valid)
                elbo2 = _gaussian_elbo(target.log_density, lb.x - h2 @ lb.grad, h2, eps)
                use2 = jnp.isfinite(elbo2) & ~(elbo2 <= elbo)  # also when elbo is nan
                h, elbo = jnp.where(use2, h2, h), jnp.where(use2, elbo2, elbo)
            return h, elbo

        # No new pair, no new Gaussian: the iterations after L-BFGS stops cost nothing.
        h, elbo = jax.lax.cond(accept, gaussian,
                               lambda _: (p.best_cov, jnp.full_like(p.best_elbo, -jnp.inf)),
                               None)
        mean = lb.x - h @ lb.grad
        better = accept & jnp.isfinite(elbo) & (elbo > p.best_elbo)
        new = _Path(lb, s_hist, y_hist, valid,
                    jnp.where(better, elbo, p.best_elbo), jnp.where(better, mean, p.best_mean),
                    jnp.where(better, h, p.best_cov),
                    jnp.where(better, lb.iters, p.best_iter))
        return new, jnp.where(accept, elbo, jnp.nan)

    @jax.jit
    def run(x0):
        lb = lb_init(x0)
        eye = jnp.eye(d, dtype=x0.dtype)
        start = _Path(lb, jnp.zeros((history, d), x0.dtype), jnp.zeros((history, d), x0.dtype),
                      jnp.zeros(history, bool), _gaussian_elbo(target.log_density, x0, eye, eps),
                      x0, eye, jnp.zeros((), jnp.int32))
        return jax.lax.scan(body, start, None, length=max_iters)

    t0 = time.perf_counter()
    final, path = run(x0)
    iters = int(final.lb.iters)
    seconds = time.perf_counter() - t0
    if bool(final.lb.failed):
        stop = "non-finite"
    elif bool(final.lb.done):
        stop = "converged"
    else:
        stop = "max_steps"
    return PathfinderResult(
        mean=np.asarray(final.best_mean), cov=np.asarray(final.best_cov),
        elbo=float(final.best_elbo), best_iter=int(final.best_iter),
        elbo_path=np.asarray(path)[:iters], iters=iters, stop_reason=stop, seconds=seconds,
    )


def run_pathfinder(args: RunArgs) -> tuple[LoopResult, dict[str, Any]]:
    """Runner for ``fit(..., optimizer="pathfinder")``: Pathfinder alone; ``family`` is started
    from its Gaussian (exactly for fullrank, the closest member otherwise) and not optimized
    further. ``draws`` (default 32) are the ELBO draws per iterate, ``max_steps`` caps the
    L-BFGS iterations at 1000."""
    res = pathfinder(args.target, seed=args.key, max_iters=min(args.max_steps, 1000),
                     draws=32 if args.draws is None else int(args.draws),
                     history=args.options.get("history"))
    params = args.family.from_gaussian(jnp.asarray(res.mean), jnp.asarray(res.cov))
    loop = LoopResult(params=params, trace=res.elbo_path, steps=res.iters, rejected=0,
                      stop_reason=res.stop_reason, seconds=res.seconds)
    return loop, {"pathfinder": _summary(res)}


def _summary(res: PathfinderResult) -> dict[str, Any]:
    return {"elbo": res.elbo, "best_iter": res.best_iter, "iters": res.iters,
            "stop_reason": res.stop_reason, "seconds": res.seconds}


register_runner("pathfinder", run_pathfinder, draws_default=32)
