"""Deterministic ADVI: the ELBO at a fixed set of draws, maximized by L-BFGS (Giordano, Ingram
& Broderick, 2024, "Black box variational inference with a deterministic objective", JMLR).

    F(theta) = (1/M) sum_m f_m(theta),   f_m = log p(T_theta(eps_m)) + H(q_theta)

with eps_1..eps_M drawn once (common random numbers) and the entropy H in closed form where the
family has one (Gaussians); otherwise f_m = log p(z_m) - log q(z_m). F is a smooth deterministic
function, so a second-order method converges to its optimum to optimizer tolerance, with no
learning rate. The price is that theta-hat optimizes the M-draw objective, not the ELBO: the
fresh-draw ELBO reported by ``fit`` shows the difference, and two sampling-error estimates say
how large it can be:

  - ``fixed_elbo_se``: sd_m(f_m) / sqrt(M), the Monte Carlo error of F at theta-hat;
  - ``fresh_elbo``: the same terms on 2000 fresh draws; when the fixed-draw ELBO exceeds it by
    more than 3 standard errors, ``info["lbfgs_fixed"]["warning"]`` says q is fitted to its
    draws (on the 2-d banana with M = 30: -0.03 fixed vs -1.45 fresh; with M = 200 they agree);
  - ``mean_se``: the standard error of q's mean over redraws of the eps (DADVI's "linear
    response" sandwich, their section 4): Cov(theta-hat) ~ H^+ Cov_m(grad f_m) H^+ / M with H
    the Hessian of F, mapped to the mean by the delta method. Computed when theta has at most
    ``sandwich_max`` coordinates (the Hessian is dense).

On a Gaussian target with a full-rank q the fixed-draw optimum is known in closed form (see
tests/optim/test_deterministic.py): it is the target only as M -> infinity, and it exists only
when M > d (the draws' sample covariance must be invertible). Below that the fixed-draw objective
is unbounded (q's scale grows without limit along directions no draw explores), so for the
dense (full-rank) Gaussian a given M <= d is refused, and the default M is 10 d (at least 30):
measured with the full-rank family, fresh-draw ELBO against natural-gradient VI's -31.53 on
eight schools (d = 10) and -329.51 on radon (d = 34):

    eight schools  M = 30: -35.86   M = 40: -33.43   M = 100: -31.91   M = 200: -31.79
    radon          M = 30: -2e36    M = 68: -355.7   M = 136: -333.7   M = 340: -330.8

The diagonal families are not affected (each scale meets every draw): their default is 30, as
in the paper, which used mean-field.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from vifit.errors import ConfigError
from vifit.families.base import Family, Params
from vifit.optim.lbfgs import make_lbfgs
from vifit.optim.loop import LoopResult
from vifit.optim.runner import RunArgs, register_runner

DEFAULT_DRAWS = 30
DENSE_DRAWS_PER_DIM = 10


def default_fixed_draws(family: Family, dim: int) -> int:
    """M for ``lbfgs-fixed`` when the caller gives none (see the module docstring)."""
    if family.gaussian_form == "dense":
        return max(DEFAULT_DRAWS, DENSE_DRAWS_PER_DIM * dim)
    return DEFAULT_DRAWS
FRESH_DRAWS = 2000
OVERFIT_Z = 3.0


def _has_entropy(family: Family, params: Params) -> bool:
    try:
        jax.eval_shape(family.entropy, params)
    except NotImplementedError:
        return False
    return True


def fixed_draw_terms(family: Family, log_density, params0: Params, key: jax.Array, draws: int):
    """``theta -> f (M,)``, the per-draw terms of the fixed-draw ELBO (see module docstring).
    For stratified families (mixtures) a term is one draw per component, weighted."""
    if family.stratified:
        def terms(theta):
            z, log_q, w = family.sample_strata_and_log_prob(theta, key,
                                                            draws * getattr(family, "k", 1))
            k, m, d = z.shape
            logw = jax.vmap(log_density)(z.reshape(k * m, d)).reshape(k, m) - log_q
            return w @ logw
        return terms
    if not family.reparameterized:
        raise ConfigError(f"optimizer 'lbfgs-fixed' differentiates draws of q; family "
                          f"{family.name!r} draws are not differentiable. Use optimizer='adam'.")
    if _has_entropy(family, params0):
        def terms(theta):
            z = family.sample(theta, key, draws)
            return jax.vmap(log_density)(z) + family.entropy(theta)
    else:
        def terms(theta):
            z = family.sample(theta, key, draws)
            return jax.vmap(log_density)(z) - family.batch_log_prob(theta, z)
    return terms


def sandwich_mean_se(family: Family, terms, params: Params) -> np.ndarray:
    """Standard errors ``(d,)`` of q's mean over redraws of the fixed draws, by the sandwich
    H^+ Cov(grad f_m) H^+ / M and the delta method."""
    flat, unravel = ravel_pytree(params)

    @jax.jit
    def pieces(v):
        per = lambda u: terms(unravel(u))
        jac = jax.jacrev(per)(v)  # (M, P) per-draw gradients
        hess = jax.hessian(lambda u: jnp.mean(per(u)))(v)  # (P, P)
        jm = jax.jacrev(lambda u: family.mean(unravel(u)))(v)  # (d, P)
        return jac, hess, jm

    jac, hess, jm = (np.asarray(x, dtype=np.float64) for x in pieces(flat))
    m = jac.shape[0]
    centred = jac - jac.mean(axis=0)
    meat = centred.T @ centred / (m - 1) / m
    # Parameters the objective ignores (the unused triangle of a Cholesky factor) give zero
    # rows in H; the pseudo-inverse leaves them out.
    rtol = 1e-8 if flat.dtype == jnp.float64 else 1e-4
    h_pinv = np.linalg.pinv(hess, rcond=rtol, hermitian=True)
    cov_theta = h_pinv @ meat @ h_pinv
    return np.sqrt(np.maximum(np.diag(jm @ cov_theta @ jm.T), 0.0))


def run_fixed_draws(args: RunArgs, sandwich_max: int = 2000) -> tuple[LoopResult, dict[str, Any]]:
    """Runner for ``fit(..., optimizer="lbfgs-fixed")``. ``draws`` is M (default
    ``default_fixed_draws``: 30, or 10 d for the full-rank Gaussian);
    ``max_steps`` bounds the L-BFGS iterations; ``lr`` is not used (the line search sets the
    step)."""
    if not args.target.differentiable:
        raise ConfigError("optimizer 'lbfgs-fixed' differentiates log p; this target is "
                          "differentiable=False. Use optimizer='adam' with estimator='score'.")
    dim = args.target.dim
    m = default_fixed_draws(args.family, dim) if args.draws is None else int(args.draws)
    if m < 2:
        raise ConfigError(f"lbfgs-fixed needs at least 2 fixed draws, got {m}.")
    if args.family.gaussian_form == "dense" and m <= dim:
        raise ConfigError(
            f"lbfgs-fixed with the {args.family.name} family needs more fixed draws than "
            f"dimensions (M > d = {dim}; got {m}): with fewer, q's scale can grow without limit "
            f"along directions no draw explores. Use draws >= {DENSE_DRAWS_PER_DIM * dim} "
            "(the default) or the meanfield family.")
    terms = fixed_draw_terms(args.family, args.target.log_density, args.params, args.key, m)
    objective = lambda theta: -jnp.mean(terms(theta))
    gtol = float(args.options.get("gtol", 1e-6))
    init, step = make_lbfgs(objective, memory=int(args.options.get("memory", 10)), gtol=gtol)

    @jax.jit
    def chunk(st):
        def body(s, _):
            s = step(s)
            return s, -s.value
        return jax.lax.scan(body, st, None, length=args.window)

    t0 = time.perf_counter()
    st = init(args.params)
    trace: list[np.ndarray] = []
    while not bool(st.done) and int(st.iters) < args.max_steps:
        before = int(st.iters)
        t_chunk = time.perf_counter()
        st, values = chunk(st)
        taken = int(st.iters) - before
        trace.append(np.asarray(values)[:taken])
        if args.on_window is not None and taken:
            args.on_window(int(st.iters), float(-st.value),
                           taken / max(time.perf_counter() - t_chunk, 1e-9))
    seconds = time.perf_counter() - t0
    steps = int(st.iters)
    if bool(st.failed):
        stop = "non-finite"
    elif bool(st.done):
        stop = "converged"
    else:
        stop = "max_steps"
    params = st.x
    f = np.asarray(jax.jit(terms)(params), dtype=np.float64)
    # The same terms on fresh draws: how much of the fixed-draw ELBO is fitted to its draws.
    fresh_terms = fixed_draw_terms(args.family, args.target.log_density, params,
                                   jax.random.fold_in(args.key, 1), FRESH_DRAWS)
    g = np.asarray(jax.jit(fresh_terms)(params), dtype=np.float64)
    g = g[np.isfinite(g)]
    info: dict[str, Any] = {
        "fixed_draws": m,
        "fixed_elbo": float(f.mean()),
        "fixed_elbo_se": float(f.std(ddof=1) / np.sqrt(m)),
        "fresh_elbo": float(g.mean()),
        "fresh_elbo_se": float(g.std(ddof=1) / np.sqrt(g.size)),
        "grad_max_abs": float(jnp.max(jnp.abs(ravel_pytree(st.grad)[0]))),
    }
    gap = info["fixed_elbo"] - info["fresh_elbo"]
    if gap > OVERFIT_Z * np.hypot(info["fixed_elbo_se"], info["fresh_elbo_se"]):
        info["warning"] = (f"the fixed-draw ELBO exceeds the fresh-draw ELBO by {gap:.3g} nats "
                           f"(> {OVERFIT_Z:g} standard errors): q is fitted to its {m} draws; "
                           "use more draws (draws=...).")
    n_params = ravel_pytree(params)[0].size
    if n_params <= sandwich_max:
        try:
            info["mean_se"] = sandwich_mean_se(args.family, terms, params).tolist()
        except NotImplementedError:
            info["mean_se"] = None  # the family has no closed-form mean
    else:
        info["mean_se"] = None
        info["mean_se_skipped"] = f"{n_params} parameters > sandwich_max={sandwich_max}"
    trace_arr = np.concatenate(trace) if trace else np.zeros(0)
    loop = LoopResult(params=params, trace=trace_arr[:steps], steps=steps, rejected=0,
                      stop_reason=stop, seconds=seconds)
    return loop, {"lbfgs_fixed": info}


register_runner("lbfgs-fixed", run_fixed_draws, draws_default=DEFAULT_DRAWS)
