"""Annealed importance sampling and sequential Monte Carlo (Neal, 2001; Del Moral, Doucet &
Jasra, 2006) from the fitted q to the target, with BlackJAX's HMC or MALA kernels as moves.

The path is geometric, from a base b (a mixture of Gaussians built from q, see ``run_ais``) to
the target:

    log pi_beta(z) = (1 - beta) log b(z) + beta log p(x, z),   beta: 0 -> 1.

Particles start at draws of b. At each temperature a particle's log-weight grows by
(beta_t - beta_{t-1}) (log p(z) - log b(z)) at its current state; then MCMC moves that leave
pi_{beta_t} invariant update the state. The particles form R independent replicates of M each;
a replicate resamples (systematic) when its effective sample size falls under M / 2, and its
running product of mean weights, Z_r, is an unbiased estimate of Z. With M = 1 this is plain AIS
with R independent chains; with M > 1 it is SMC, whose resampling moves particles into the
regions (another mode, a funnel's mouth) whose mass the population lags behind.

Estimate: log Z_hat = log mean_r Z_r, consistent, and biased low by Jensen's inequality (the
bias shrinks like Var(Z_r) / (2 R Z^2)). Standard error: the delta method over the i.i.d.
replicates, sd(Z_r) / (sqrt(R) mean(Z_r)), honest when Var(Z_r) is finite (Pareto k-hat < 0.5).

Schedule: a pilot run chooses each beta by bisection so that the conditional effective sample
size of the incremental weights (Zhou, Johansen & Aston, 2016) stays at ``cess`` times the
particle count, spending temperatures where the weights change fast. The pilot also tunes the
MCMC step size at each temperature from the mean acceptance rate. The final run replays that
frozen schedule with fresh particles, so that its replicates are i.i.d. and Z_hat is unbiased (a
single adaptive run would couple every replicate through the schedule it chooses). All runs
share one compiled loop (a ``lax.while_loop`` over temperatures, particles in a ``vmap``).

Preconditioning: the moves run in whitened coordinates u = L^-1 (z - c) of the base, so a target
with condition number 1e4 is as easy as a round one once q has learnt its shape.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from vifit.errors import ConfigError
from vifit.evidence.weights import pareto_khat, weights_summary

Array = jax.Array
LogDensity = Callable[[Array], Array]

# Acceptance rates aimed at: near the optimal-scaling results for each kernel (Beskos et al.
# 2013 for HMC; Roberts & Rosenthal 1998 for MALA), a little higher since the particles lag
# behind each temperature's distribution.
_TARGET_ACCEPT = {"hmc": 0.75, "mala": 0.6}


class AISConfig(NamedTuple):
    """Settings of AIS / SMC.

    particles: total particles, in the pilot run (which chooses the schedule and step sizes)
      and again in the final run (which gives the estimate).
    replicates: independent replicates the particles are split into (the standard error comes
      from their spread). ``replicates == particles`` is plain AIS: independent chains, no
      resampling. Fewer replicates of several particles each is SMC with resampling.
    cess: conditional ESS, as a fraction of the particles, kept at each tempering step; closer
      to 1 means more temperatures and a better estimate.
    max_temps: the most temperatures; the pilot jumps to beta = 1 if it gets there.
    widen, wide: the base is the mixture (1 - wide) q + wide q_widen, q_widen being q scaled
      by ``widen`` about its mean. The wide part reaches mass q misses (another mode, a heavy
      tail); the narrow part keeps the cost low when q is already good, since resampling soon
      drops the wide particles that land nowhere.
    kernel: ``"hmc"`` or ``"mala"``; integration_steps: leapfrog steps per HMC move;
      moves: MCMC moves per temperature; target_accept: acceptance rate the step size aims at.
    jitter: each move's step size is the tuned one times exp(-jitter U), U ~ Uniform(0, 1) per
      particle and move: a mixture of valid kernels, so that particles in narrow regions (a
      funnel's neck) still move.
    explore: run an exploration stage first and start the pilot and final runs from q mixed
      with a Gaussian fitted to the exploration's weighted particles (see ``run_ais``).
    rebase: with ``explore``, the most times the pilot and final runs are repeated from a base
      refitted to the last final run's particles while the estimate still moves (``settled``).
    """

    particles: int = 4096
    replicates: int = 32
    cess: float = 0.99
    max_temps: int = 1000
    widen: float = 3.0
    wide: float = 0.5
    kernel: str = "hmc"
    integration_steps: int = 32
    moves: int = 4
    target_accept: float | None = None
    jitter: float = 4.0
    explore: bool = True
    rebase: int = 2

    def checked(self) -> AISConfig:
        if self.kernel not in _TARGET_ACCEPT:
            raise ConfigError(f"unknown AIS kernel {self.kernel!r}; choose 'hmc' or 'mala'.")
        if not 0.0 < self.cess < 1.0:
            raise ConfigError(f"cess must lie in (0, 1), got {self.cess}; 0.99 is a good start.")
        if self.replicates < 2 or self.particles % self.replicates:
            raise ConfigError(
                f"particles ({self.particles}) must be a multiple of replicates "
                f"({self.replicates}), and replicates >= 2 (the standard error needs them)."
            )
        if self.widen < 1.0 or not 0.0 <= self.wide <= 1.0:
            raise ConfigError(f"need widen >= 1 and 0 <= wide <= 1, got widen={self.widen}, "
                              f"wide={self.wide} (wide=0 starts from q itself).")
        if min(self.max_temps, self.moves, self.integration_steps) < 1 or self.jitter < 0 \
                or self.rebase < 0:
            raise ConfigError("max_temps, moves and integration_steps must be positive, "
                              "jitter and rebase >= 0.")
        accept = self.target_accept or _TARGET_ACCEPT[self.kernel]
        return self._replace(target_accept=float(accept))

    @property
    def method(self) -> str:
        return "ais" if self.replicates == self.particles else "smc"


class Base(NamedTuple):
    """The start of the path, a mixture of Gaussians b(z) = sum_k pi_k N(z; c_k, L_k L_k^T),
    and the whitened coordinates u of the moves, z = center + chol @ u.

    Stored in whitened terms so that log b costs one small matrix product per component:
    with z = center + chol u, the k-th component's standardized residual is
    L_k^-1 (z - c_k) = a_k + B_k u. A pytree of arrays: a new base does not recompile the loop.
    """

    center: Array  # (d,) whitening centre
    chol: Array  # (d, d) whitening factor, lower-triangular
    log_pi: Array  # (K,) log mixture weights
    a: Array  # (K, d)  L_k^-1 (center - c_k)
    b: Array  # (K, d, d)  L_k^-1 chol
    log_det: Array  # (K,)  log |L_k| - log |chol|: log-densities below are per unit u-volume
    e: Array  # (K, d)  chol^-1 (c_k - center): component k's draws are u = e_k + M_k eps
    m: Array  # (K, d, d)  chol^-1 L_k

    def to_z(self, u: Array) -> Array:
        return self.center + u @ self.chol.T

    def sample_u(self, key: Array, shape: tuple[int, ...]) -> Array:
        """Whitened draws of b, ``shape + (d,)``."""
        k_eps, k_pick = jax.random.split(key)
        eps = jax.random.normal(k_eps, shape + self.center.shape, self.center.dtype)
        pick = jax.random.categorical(k_pick, self.log_pi, shape=shape)
        return self.e[pick] + jnp.einsum("...ij,...j->...i", self.m[pick], eps)

    def log_prob_u(self, u: Array) -> Array:
        """log b(z) at z = to_z(u), for one point ``u (d,)``: the density in z, per unit z."""
        d = u.shape[-1]
        r = self.a + self.b @ u
        comp = self.log_pi - 0.5 * jnp.sum(r**2, axis=-1) - self.log_det
        log_chol = jnp.sum(jnp.log(jnp.diag(self.chol)))
        return logsumexp(comp) - log_chol - 0.5 * d * math.log(2.0 * math.pi)


def _cholesky(cov: Array) -> Array:
    """The Cholesky factor of ``cov``, in its dtype, factored in float64 with the least ridge
    (from ``eps`` of its dtype times its mean variance, up by tens) that makes it factor: a
    float32 q whose variances span 1e8 (a Gaussian target with sds from 0.01 to 100) has a
    covariance that rounding leaves indefinite, which float32 Cholesky returns as NaN. NaN
    where no ridge up to 1000 eps of the mean variance helps (or ``cov`` is not finite)."""
    c = np.asarray(cov, np.float64)
    dtype = jnp.asarray(cov).dtype
    c = 0.5 * (c + c.T)
    scale = float(np.mean(np.diag(c))) if c.size else 0.0
    eps = float(jnp.finfo(dtype).eps)
    for ridge in [0.0] + [eps * scale * 10.0**k for k in range(4)]:
        try:
            return jnp.asarray(np.linalg.cholesky(c + ridge * np.eye(c.shape[0])), dtype)
        except np.linalg.LinAlgError:
            continue
    return jnp.full(c.shape, jnp.nan, dtype)


def mixture_base(weights: list[float], means: list[Array], covs: list[Array],
                 whiten: int = 0) -> Base:
    """The base sum_k w_k N(means[k], covs[k]), whitened by component ``whiten``."""
    from jax.scipy.linalg import solve_triangular

    chols = [_cholesky(c) for c in covs]
    if not all(bool(jnp.all(jnp.isfinite(c))) for c in chols):
        raise ConfigError("a covariance of the AIS start is not positive definite (q's "
                          "covariance, or the exploration's); check the fit.")
    center, chol = jnp.asarray(means[whiten]), chols[whiten]
    log_chol = jnp.sum(jnp.log(jnp.diag(chol)))
    a, b, log_det, e, m = [], [], [], [], []
    for mu, lk in zip(means, chols):
        a.append(solve_triangular(lk, center - mu, lower=True))
        b.append(solve_triangular(lk, chol, lower=True))
        log_det.append(jnp.sum(jnp.log(jnp.diag(lk))) - log_chol)
        e.append(solve_triangular(chol, mu - center, lower=True))
        m.append(solve_triangular(chol, lk, lower=True))
    w = jnp.asarray(weights, dtype=center.dtype)
    with np.errstate(divide="ignore"):  # a zero weight is a component never drawn
        log_pi = jnp.log(w / w.sum())
    return Base(center, chol, log_pi, jnp.stack(a), jnp.stack(b),
                jnp.stack(log_det), jnp.stack(e), jnp.stack(m))


class Schedule(NamedTuple):
    betas: Array  # (max_temps,) beta_t; 1.0 after the last used temperature
    log_steps: Array  # (max_temps,) log MCMC step size at each temperature
    accept: Array  # (max_temps,) mean acceptance rate at each temperature
    n_temps: Array  # () int32: temperatures used


class AISResult(NamedTuple):
    log_z: float  # log mean_r Z_r, nats
    se: float  # delta-method standard error over the i.i.d. replicates, nats
    log_z_reps: np.ndarray  # (replicates,) log Z_r
    spread: float  # sd of log Z_r over replicates, nats (0 when b = p)
    ess: float  # (sum Z_r)^2 / sum Z_r^2: effective number of replicates
    khat: float  # Pareto k-hat of the Z_r (finite variance needs k < 0.5)
    n_temps: int
    betas: np.ndarray  # (n_temps,) the schedule used
    accept: float  # mean acceptance rate over temperatures (pilot)
    pilot_log_z: float  # the pilot's own estimate (adaptive, so its replicates are coupled)
    explore_log_z: float  # the exploration run's estimate (nan when not run)
    history: tuple[tuple[float, float], ...]  # (log Z, se): exploration's, each final run's
    settled: bool  # the last two of ``history`` agree (``moved``); True without exploration
    z: np.ndarray  # (particles, d) final states
    logw: np.ndarray  # (particles,) their weights within replicates, times Z_r: p-weighted draws
    method: str  # "ais" or "smc"
    seconds: float  # wall time, compilation included
    compile_seconds: float


def _log_cess(log_w: Array, ell: Array, delta: Array) -> Array:
    """log of the conditional ESS fraction of the increments u = exp(delta ell) under the
    normalized weights W: (sum W u)^2 / sum W u^2."""
    inc = jnp.where(jnp.isfinite(ell), delta * ell, -jnp.inf)
    lw = log_w - logsumexp(log_w)
    return 2.0 * logsumexp(lw + inc) - logsumexp(lw + 2.0 * inc)


def _next_delta(log_w: Array, ell: Array, room: Array, log_rho: float, iters: int = 40) -> Array:
    """The largest step in beta (at most ``room``) that keeps the CESS fraction >= rho, by
    bisection (CESS decreases in delta)."""

    def ok(delta):
        return _log_cess(log_w, ell, delta) >= log_rho

    def body(_, ab):
        a, b = ab
        mid = 0.5 * (a + b)
        good = ok(mid)
        return jnp.where(good, mid, a), jnp.where(good, b, mid)

    lo, _ = jax.lax.fori_loop(0, iters, body, (jnp.zeros_like(room), room))
    # Never stall, even when one particle dominates the weights.
    delta = jnp.where(ok(room), room, lo)
    return jnp.clip(delta, jnp.minimum(1e-6, room), room)


def _make_move(base: Base, log_p: LogDensity, config: AISConfig):
    """``(key, u (n, d), beta, log_step) -> (u, mean acceptance)``: ``moves`` MCMC moves per
    particle targeting pi_beta in whitened coordinates, vmapped over particles."""
    import blackjax.mcmc.hmc as hmc
    import blackjax.mcmc.mala as mala

    hmc_kernel = config.kernel == "hmc"
    kernel, init = (hmc.build_kernel(), hmc.init) if hmc_kernel else (mala.build_kernel(),
                                                                        mala.init)
    ones = jnp.ones(base.center.shape[0])

    def move(key, u, beta, log_step):
        def log_pi(v):
            return (1.0 - beta) * base.log_prob_u(v) + beta * log_p(base.to_z(v))

        def one(k, v):
            def body(state, kk):
                k_jit, k_mv = jax.random.split(kk)
                eps = jnp.exp(log_step - config.jitter * jax.random.uniform(k_jit))
                if hmc_kernel:
                    state, info = kernel(k_mv, state, log_pi, eps, ones, config.integration_steps)
                else:
                    state, info = kernel(k_mv, state, log_pi, eps)
                return state, info.acceptance_rate

            state, acc = jax.lax.scan(body, init(v, log_pi), jax.random.split(k, config.moves))
            return state.position, jnp.mean(acc)

        u_new, acc = jax.vmap(one)(jax.random.split(key, u.shape[0]), u)
        return u_new, jnp.mean(jnp.where(jnp.isfinite(acc), acc, 0.0))

    return move


def _ell(base: Base, log_p: LogDensity, u: Array) -> Array:
    """log p - log b at ``u (n, d)``; NaN (outside the support) becomes -inf: weight zero."""
    ell = jax.vmap(log_p)(base.to_z(u)) - jax.vmap(base.log_prob_u)(u)
    return jnp.where(jnp.isnan(ell), -jnp.inf, ell)


def _initial_log_step(config: AISConfig, dim: int) -> float:
    # Whitened targets are roughly unit-scale; optimal HMC and MALA steps shrink like d^(-1/4)
    # and d^(-1/3) (Beskos et al. 2013; Roberts & Rosenthal 1998).
    if config.kernel == "hmc":
        return math.log(1.0 / dim**0.25)
    return math.log(0.5 / dim ** (1.0 / 3.0))


def _resample(key: Array, u: Array, log_w: Array, log_z: Array) -> tuple[Array, Array, Array]:
    """One replicate: fold the mean weight into ``log_z`` and resample systematically when the
    ESS is under half the particles. u (m, d), log_w (m,), log_z ()."""
    from blackjax.smc.resampling import systematic

    m = log_w.shape[0]
    log_ess = 2.0 * logsumexp(log_w) - logsumexp(2.0 * log_w)
    do = log_ess < math.log(m / 2.0)
    idx = systematic(key, jax.nn.softmax(log_w), m)
    u = jnp.where(do, u[idx], u)
    log_z = jnp.where(do, log_z + logsumexp(log_w) - math.log(m), log_z)
    return u, jnp.where(do, jnp.zeros_like(log_w), log_w), log_z


def _anneal(base: Base, log_p: LogDensity, config: AISConfig, u0: Array, key: Array,
            frozen: Schedule, adapt: Array):
    """The tempering loop from whitened starts ``u0 (R, M, d)``.

    ``adapt`` True: choose each beta by the CESS rule on the pooled weights and tune the step
    size (the pilot). False: replay ``frozen`` (the final run). Returns the schedule used,
    log Z_r ``(R,)``, the final states ``z (R, M, d)`` and log-weights ``(R, M)``.
    """
    move = _make_move(base, log_p, config)
    n_rep, m, dim = u0.shape
    t_max = config.max_temps
    log_rho = math.log(config.cess)

    def cond(c):
        t, beta = c[0], c[1]
        return jnp.where(adapt, (beta < 1.0) & (t < t_max), t < frozen.n_temps)

    def body(c):
        t, beta, u, log_w, log_z, log_step, key, sched = c
        key, k_move, k_res = jax.random.split(key, 3)
        ell = _ell(base, log_p, u.reshape(-1, dim)).reshape(n_rep, m)
        room = 1.0 - beta
        pooled = (log_z[:, None] + log_w).ravel()
        delta = _next_delta(pooled, ell.ravel(), room, log_rho)
        last = t == t_max - 1
        new_beta = jnp.where(adapt, jnp.where(last, 1.0, beta + delta),
                             frozen.betas[jnp.minimum(t, t_max - 1)])
        log_step = jnp.where(adapt, log_step, frozen.log_steps[jnp.minimum(t, t_max - 1)])
        log_w = log_w + jnp.where(jnp.isfinite(ell), (new_beta - beta) * ell, -jnp.inf)
        u, log_w, log_z = jax.vmap(_resample)(jax.random.split(k_res, n_rep), u, log_w, log_z)
        u_flat, acc = move(k_move, u.reshape(-1, dim), new_beta, log_step)
        sched = Schedule(sched.betas.at[t].set(new_beta), sched.log_steps.at[t].set(log_step),
                         sched.accept.at[t].set(acc), t + 1)
        # Robbins-Monro on the log step size; the mean over particles is a low-noise signal.
        log_step = log_step + (acc - config.target_accept)
        return t + 1, new_beta, u_flat.reshape(u.shape), log_w, log_z, log_step, key, sched

    sched = Schedule(jnp.ones(t_max), jnp.zeros(t_max), jnp.zeros(t_max),
                     jnp.zeros((), jnp.int32))
    carry = (jnp.zeros((), jnp.int32), jnp.zeros(()), u0, jnp.zeros((n_rep, m)),
             jnp.zeros(n_rep), jnp.asarray(_initial_log_step(config, dim)), key, sched)
    _, _, u, log_w, log_z, _, _, sched = jax.lax.while_loop(cond, body, carry)
    log_z_reps = log_z + logsumexp(log_w, axis=1) - math.log(m)
    return sched, log_z_reps, base.to_z(u), log_w + log_z[:, None]


def _narrow_part(mean: Array, cov: Array, components) -> list[tuple[float, Array, Array]]:
    """(weight, mean, cov) of the narrow part of the base: q's Gaussian; or, for a mixture q,
    half q's components and half the Gaussian of q's moments, which spans the space between
    the modes q found, where particles can still reach mass that none of them holds."""
    if components is None:
        return [(1.0, mean, cov)]
    w, mus, covs = (np.asarray(x, np.float64) for x in components)
    w = w / w.sum()
    return [(0.5 * float(wk), jnp.asarray(mu, mean.dtype), jnp.asarray(c, mean.dtype))
            for wk, mu, c in zip(w, mus, covs) if wk > 0] + [(0.5, mean, cov)]


def _base(narrow: list[tuple[float, Array, Array]], wide: list[tuple[float, Array, Array]],
          share: float, whiten: int) -> Base:
    """The mixture (1 - share) narrow + share wide, whitened by component ``whiten`` of the
    concatenated list (the wide parts' weights are relative: they sum to 1 within ``wide``)."""
    parts = [((1.0 - share) * w, m, c) for w, m, c in narrow]
    total = sum(w for w, _, _ in wide)
    parts += [(share * w / total, m, c) for w, m, c in wide]
    return mixture_base([p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts],
                        whiten=whiten)


def _weighted_moments(z: Array, logw: Array) -> tuple[Array, Array]:
    """Mean and covariance of particles ``z (n, d)`` under weights exp(logw) ``(n,)``, with a
    ridge of 1e-6 of the mean variance so that a degenerate population still factors."""
    w = jax.nn.softmax(jnp.where(jnp.isfinite(logw), logw, -jnp.inf))
    mean = w @ z
    zc = z - mean
    cov = (zc * w[:, None]).T @ zc
    ridge = 1e-6 * jnp.trace(cov) / z.shape[1] + jnp.finfo(z.dtype).tiny
    return mean, cov + ridge * jnp.eye(z.shape[1], dtype=z.dtype)


# Two successive estimates of log Z (each with its standard error) differ by more than
# SETTLE_Z combined standard errors and SETTLE_NATS: the later one, from a base refitted to the
# earlier run's particles, saw mass the earlier did not. On a rotated Gaussian with sds from
# 1e-3 to 1e3 (d = 10; a float32 fit 26 nats short), the exploration read -5.5 and the final
# run -1.35 +- 0.11 while log Z was 0: the final run's replicates agreed with each other and
# were all low together, which no standard error from them can show.
SETTLE_Z, SETTLE_NATS = 3.0, 0.05


def moved(earlier: tuple[float, float], later: tuple[float, float]) -> bool:
    """Whether two ``(log Z, se)`` estimates differ beyond ``SETTLE_Z`` se and
    ``SETTLE_NATS``."""
    diff = abs(later[0] - earlier[0])
    if not np.isfinite(diff):
        return not (later[0] == earlier[0])
    return diff > max(SETTLE_Z * math.hypot(earlier[1], later[1]), SETTLE_NATS)


def _refit_base(base: Base, narrow, config: AISConfig, z: Array, logw: Array, dim: int) -> Base:
    """The base (1 - wide) narrow + wide N(m, C), with m, C the weighted moments of a run's
    final particles ``z (R, M, d)``, ``logw (R, M)``, whitened by N(m, C); ``base`` itself
    where those moments do not factor."""
    p_mean, p_cov = _weighted_moments(z.reshape(-1, dim), logw.ravel())
    try:  # (the narrow part factored already: only N(m, C) can fail)
        return _base(narrow, [(config.wide, p_mean, p_cov)], config.wide, whiten=len(narrow))
    except ConfigError:
        return base


def run_ais(log_p: LogDensity, mean: Array, cov: Array, key: Array,
            config: AISConfig = AISConfig(),
            components: tuple[Array, Array, Array] | None = None) -> AISResult:
    """AIS / SMC from q = N(mean, cov) (q's mean and covariance) to the unnormalized ``log_p``.

    ``components = (weights (K,), means (K, d), covs (K, d, d))``, when q is a Gaussian mixture
    (e.g. auto's mixture of the modes found), puts that mixture beside N(mean, cov) in the
    narrow part of every base, half and half: each mode starts with its own share of particles,
    and the Gaussian of the moments keeps some between the modes.

    Three runs of one compiled loop, each with ``config.particles`` particles:
    1. exploration: adaptive, from (1 - wide) q + wide q_widen. Its weighted final particles
       give moments (m, C) of p, which see what q misses (a second mode, a wider tail).
    2. pilot: adaptive, from (1 - wide) q + wide N(m, C), whitened by C; it fixes the
       schedule and step sizes. (With ``explore=False`` the pilot starts from the base of 1.)
    3. final: fresh i.i.d. replicates along the frozen schedule, from the pilot's base; the
       estimate and its standard error come from these alone.
    4. while the final estimate has ``moved`` from the one before it (the exploration's, then
       the previous final run's), at most ``config.rebase`` times: 2 and 3 again from a base
       refitted to the final run's particles. Replicates that all stop short of the same mass
       agree with each other, so their standard error cannot show it; a run from a base that
       starts nearer to p can. ``settled`` says whether the last two estimates agreed.
    """
    config = config.checked()
    t0 = time.perf_counter()
    keys = jax.random.split(key, 6)
    n_rep = config.replicates
    m = config.particles // n_rep
    mean, cov = jnp.asarray(mean), jnp.asarray(cov)
    dim = mean.shape[0]
    t_max = config.max_temps
    anneal = jax.jit(lambda b, u, k, fr, ad: _anneal(b, log_p, config, u, k, fr, ad))
    empty = Schedule(jnp.ones(t_max), jnp.zeros(t_max), jnp.zeros(t_max),
                     jnp.zeros((), jnp.int32))
    adapt, replay = jnp.asarray(True), jnp.asarray(False)
    narrow = _narrow_part(mean, cov, components)
    base = _base(narrow, [(config.wide, mean, config.widen**2 * cov)], config.wide, whiten=0)
    # XLA on CPU compiles JAX's default "partitionable" threefry slowly for the (particles, d)
    # shaped draws of a vmapped kernel (seconds per draw site); the classic threefry lowering
    # draws from the same generator (other streams) and compiles in a fraction of the time.
    # Sharding, which the partitionable variant exists for, plays no part here.
    with jax.threefry_partitionable(False):
        u0 = base.sample_u(keys[0], (n_rep, m))
        compiled = anneal.lower(base, u0, keys[1], empty, adapt).compile()
        t_compiled = time.perf_counter()
        explore_log_z = float("nan")
        history: list[tuple[float, float]] = []
        if config.explore:
            _, reps, z, logw = compiled(base, u0, keys[1], empty, adapt)
            explore_log_z, explore_se = weights_summary(np.asarray(reps))[:2]
            history.append((explore_log_z, explore_se))
            base = _refit_base(base, narrow, config, z, logw, dim)
        for r in range(1 + (config.rebase if config.explore else 0)):
            k = keys[2:] if r == 0 else jax.random.split(jax.random.fold_in(key, r), 4)
            schedule, pilot_reps, _, _ = compiled(base, base.sample_u(k[0], (n_rep, m)), k[1],
                                                  empty, adapt)
            _, log_z_reps, z, logw = compiled(base, base.sample_u(k[2], (n_rep, m)), k[3],
                                              schedule, replay)
            history.append(weights_summary(np.asarray(log_z_reps, np.float64))[:2])
            if len(history) < 2 or not moved(*history[-2:]):
                break
            if r < config.rebase:  # each replicate's particles as one draw of p
                base = _refit_base(base, narrow, config, z,
                                   logw - logsumexp(logw, axis=1, keepdims=True), dim)
    log_z_reps = np.asarray(log_z_reps, dtype=np.float64)
    seconds = time.perf_counter() - t0
    log_z, se, ess, spread = weights_summary(log_z_reps)
    n_temps = int(schedule.n_temps)
    acc = np.asarray(schedule.accept)[:n_temps]
    return AISResult(
        log_z=log_z, se=se, log_z_reps=log_z_reps, spread=spread, ess=ess,
        khat=pareto_khat(log_z_reps), n_temps=n_temps,
        betas=np.asarray(schedule.betas)[:n_temps],
        accept=float(acc.mean()) if acc.size else float("nan"),
        pilot_log_z=weights_summary(np.asarray(pilot_reps))[0], explore_log_z=explore_log_z,
        history=tuple((float(a), float(b)) for a, b in history),
        settled=len(history) < 2 or not moved(*history[-2:]),
        z=np.asarray(z).reshape(-1, dim), logw=np.asarray(logw, np.float64).ravel(),
        method=config.method, seconds=seconds, compile_seconds=t_compiled - t0,
    )
