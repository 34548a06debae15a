"""The EP algebra, in the whitened coordinates of vifit.ep.model: sites, cavities, updates,
sweeps and the EP log Z. Pure functions; the driver (vifit.ep.run) jits them per model.

Site i is a Gaussian in its projection u_i = c_i + b_i^T w, in natural parameters,

    t~_i(u) = Z~_i exp(-tau_i u^2 / 2 + nu_i u),

so q(w) = N(mean, cov) with cov^-1 = I + B^T diag(tau) B and cov^-1 mean = B^T (nu - tau c).
The marginal of u_i under q is N(m_i, s_i); its cavity has precision 1/s_i - tau_i and shift
m_i/s_i - nu_i. Moment matching the tilted distribution gives the proposed site

    tau_i' = 1/var_hat - tau_cav,   nu_i' = mean_hat/var_hat - nu_cav,

and a step of size ``step`` = 1 - damping moves (tau_i, nu_i) that fraction of the way there.

Safeguards (never a crash, never an improper q):
  - a site whose cavity is improper (precision <= 0, possible once some sites are negative),
    whose tilted moments are not finite, or whose update would make q improper is skipped for
    this sweep and counted;
  - parallel sweeps halve the step until the new q is proper (at most ``_BACKTRACK`` times;
    then the sweep is not taken);
  - with ``clip=True`` a negative proposed precision is set to 0 and the shift chosen so the
    new marginal mean still equals the tilted mean.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from vifit.ep.terms import Term

Array = jax.Array
_BACKTRACK = 10


class EPState(NamedTuple):
    tau: Array  # (n,) site precisions, in 1 / (units of u)^2
    nu: Array  # (n,) site shifts (precision times mean)
    mean: Array  # (d,) mean of q in whitened coordinates
    cov: Array  # (d, d) covariance of q in whitened coordinates


class SweepInfo(NamedTuple):
    change: Array  # () largest relative change a valid site asked for (before damping)
    skipped: Array  # () int32: site updates not taken (see the module docstring)
    step: Array  # () the step taken: 1 - damping, less after parallel backtracking
    log_z: Array  # () log Z_EP of the state the sweep started from (NaN if some cavity is bad)
    improper: Array  # () int32: sites whose cavity was improper at the start of the sweep


class Problem(NamedTuple):
    """What the algebra needs of a vifit.ep.Factorized, as arrays."""

    proj: Array  # (n, d) rows b_i
    offset: Array  # (n,) c_i
    data: object  # pytree, leading axis n


def init_state(problem: Problem) -> EPState:
    """All sites flat (tau = nu = 0): q is the prior, N(0, I) in whitened coordinates."""
    n, d = problem.proj.shape
    zeros = jnp.zeros(n, problem.proj.dtype)
    dtype = problem.proj.dtype
    return EPState(zeros, zeros, jnp.zeros(d, dtype), jnp.eye(d, dtype=dtype))


def posterior(problem: Problem, tau: Array, nu: Array) -> tuple[Array, Array, Array, Array]:
    """q from the sites: ``(mean, cov, chol of the precision, proper)`` by one Cholesky."""
    b = problem.proj
    prec = jnp.eye(b.shape[1], dtype=b.dtype) + (b.T * tau) @ b
    chol = jnp.linalg.cholesky(0.5 * (prec + prec.T))
    proper = jnp.all(jnp.isfinite(chol)) & jnp.all(jnp.diag(chol) > 0)
    mean = jsl.cho_solve((chol, True), b.T @ (nu - tau * problem.offset))
    cov = jsl.cho_solve((chol, True), jnp.eye(b.shape[1], dtype=b.dtype))
    return mean, 0.5 * (cov + cov.T), chol, proper


def marginals(problem: Problem, mean: Array, cov: Array) -> tuple[Array, Array]:
    """Mean ``m (n,)`` and variance ``s (n,)`` of every projection u_i under q."""
    b = problem.proj
    return b @ mean + problem.offset, jnp.einsum("ij,jk,ik->i", b, cov, b)


def _propose(term: Term, tau, nu, m, s, datum, clip: bool):
    """One site's proposal: ``(tau', nu', valid, log Z_hat, tau_cav, nu_cav)``."""
    tiny = 10.0 * jnp.finfo(s.dtype).eps
    tau_cav = 1.0 / s - tau
    nu_cav = m / s - nu
    valid = (s > 0) & (tau_cav > tiny / s)
    safe_tau = jnp.where(valid, tau_cav, 1.0)
    log_z, mh, vh = term.tilted(nu_cav / safe_tau, 1.0 / safe_tau, datum)
    valid = valid & jnp.isfinite(log_z) & jnp.isfinite(mh) & jnp.isfinite(vh) & (vh > 0)
    vh = jnp.where(valid, vh, 1.0)
    new_tau = 1.0 / vh - tau_cav
    new_nu = mh / vh - nu_cav
    if clip:  # keep the tilted mean, give up the part of the variance match a tau < 0 needs
        new_tau = jnp.maximum(new_tau, 0.0)
        new_nu = mh * (tau_cav + new_tau) - nu_cav
    return (jnp.where(valid, new_tau, tau), jnp.where(valid, new_nu, nu), valid, log_z,
            tau_cav, nu_cav)


def _relative_change(old, new):
    return jnp.abs(new - old) / (1.0 + jnp.abs(old))


def sequential_sweep(term: Term, problem: Problem, state: EPState, step: Array,
                     clip: bool) -> tuple[EPState, SweepInfo]:
    """Update the sites one at a time in index order, each against the q left by the last
    (rank-one updates of cov and mean); then recompute q from the sites by Cholesky so rounding
    does not accumulate over sweeps."""

    def body(carry, i):
        tau, nu, mean, cov = carry
        b, c = problem.proj[i], problem.offset[i]
        datum = jax.tree.map(lambda x: x[i], problem.data)
        cov_b = cov @ b
        m, s = c + b @ mean, b @ cov_b
        new_tau, new_nu, valid, *_ = _propose(term, tau[i], nu[i], m, s, datum, clip)
        d_tau = step * (new_tau - tau[i])
        d_nu = step * (new_nu - nu[i])
        denom = 1.0 + d_tau * s  # > 0 in exact arithmetic whenever the cavity is proper
        ok = valid & (denom > 10.0 * jnp.finfo(s.dtype).eps)
        d_tau, d_nu = jnp.where(ok, d_tau, 0.0), jnp.where(ok, d_nu, 0.0)
        denom = jnp.where(ok, denom, 1.0)
        cov = cov - (d_tau / denom) * jnp.outer(cov_b, cov_b)
        mean = mean + cov_b * (d_nu - d_tau * m) / denom
        change = jnp.where(valid, jnp.maximum(_relative_change(tau[i], new_tau),
                                              _relative_change(nu[i], new_nu)), 0.0)
        tau = tau.at[i].add(d_tau)
        nu = nu.at[i].add(d_nu)
        return (tau, nu, mean, 0.5 * (cov + cov.T)), (change, ~ok)

    log_z, improper = log_evidence(term, problem, state)
    n = problem.proj.shape[0]
    (tau, nu, mean, cov), (change, skipped) = jax.lax.scan(
        body, tuple(state), jnp.arange(n))
    fresh_mean, fresh_cov, _, proper = posterior(problem, tau, nu)
    mean = jnp.where(proper, fresh_mean, mean)
    cov = jnp.where(proper, fresh_cov, cov)
    info = SweepInfo(jnp.max(change), jnp.sum(skipped).astype(jnp.int32),
                     jnp.asarray(step, dtype=tau.dtype), log_z, improper)
    return EPState(tau, nu, mean, cov), info


def parallel_sweep(term: Term, problem: Problem, state: EPState, step: Array,
                   clip: bool) -> tuple[EPState, SweepInfo]:
    """Update every site against the same q, then recompute q once; halve the step until the
    new q is proper."""
    m, s = marginals(problem, state.mean, state.cov)
    new_tau, new_nu, valid, log_zhat, tau_cav, nu_cav = jax.vmap(
        _propose, in_axes=(None, 0, 0, 0, 0, 0, None))(
        term, state.tau, state.nu, m, s, problem.data, clip)
    log_z, improper = _log_z(problem, state, m, s, valid, log_zhat, tau_cav, nu_cav)
    change = jnp.where(valid, jnp.maximum(_relative_change(state.tau, new_tau),
                                          _relative_change(state.nu, new_nu)), 0.0)

    def attempt(carry):
        k, cur_step, *_ = carry
        cur_step = jnp.where(k == 0, cur_step, 0.5 * cur_step)
        tau = state.tau + cur_step * (new_tau - state.tau)
        nu = state.nu + cur_step * (new_nu - state.nu)
        mean, cov, _, proper = posterior(problem, tau, nu)
        return k + 1, cur_step, proper, EPState(tau, nu, mean, cov)

    def again(carry):
        k, _, proper, _ = carry
        return (~proper) & (k < _BACKTRACK)

    dtype = state.tau.dtype
    first = (jnp.asarray(0), jnp.asarray(step, dtype), jnp.asarray(False), state)
    _, taken, proper, new_state = jax.lax.while_loop(again, attempt, first)
    new_state = jax.tree.map(lambda a, b: jnp.where(proper, a, b), new_state, state)
    skipped = jnp.where(proper, jnp.sum(~valid), valid.shape[0]).astype(jnp.int32)
    return new_state, SweepInfo(jnp.max(change), skipped, jnp.where(proper, taken, 0.0),
                                log_z, improper)


def log_evidence(term: Term, problem: Problem, state: EPState) -> tuple[Array, Array]:
    """The EP estimate of log Z at ``state`` and the number of sites whose cavity is improper
    (then log Z is NaN).

        log Z_EP = sum_i log Z~_i
                   + log integral N(w; 0, I) prod_i exp(-tau_i u_i^2/2 + nu_i u_i) dw,

    with Z~_i the site normalizer that makes the cavity times the site integrate to Z_hat_i
    (Minka, 2001; Rasmussen & Williams, 2006, eq. 3.65, here for projections and any sign of
    tau). It is exact when every term is Gaussian and when the terms act on independent
    coordinates."""
    m, s = marginals(problem, state.mean, state.cov)
    _, _, valid, log_zhat, tau_cav, nu_cav = jax.vmap(
        _propose, in_axes=(None, 0, 0, 0, 0, 0, None))(
        term, state.tau, state.nu, m, s, problem.data, False)
    return _log_z(problem, state, m, s, valid, log_zhat, tau_cav, nu_cav)


def _log_z(problem, state, m, s, valid, log_zhat, tau_cav, nu_cav) -> tuple[Array, Array]:
    b, c, tau, nu = problem.proj, problem.offset, state.tau, state.nu
    safe = jnp.where(valid, tau_cav, 1.0)
    # log Z~_i, using tau_cav + tau_i = 1/s_i and nu_cav + nu_i = m_i/s_i.
    log_site = log_zhat - 0.5 * jnp.log(s * safe) + 0.5 * nu_cav**2 / safe - 0.5 * m**2 / s
    chol = jnp.linalg.cholesky(state.cov)  # log |precision| = -log |cov|
    h = b.T @ (nu - tau * c)
    gauss = (jnp.sum(jnp.log(jnp.diag(chol))) + 0.5 * h @ state.mean
             + jnp.sum(nu * c - 0.5 * tau * c**2))
    total = jnp.sum(log_site) + gauss
    bad = jnp.sum(~valid).astype(jnp.int32)
    return jnp.where((bad == 0) & jnp.all(jnp.isfinite(chol)), total, jnp.nan), bad
