"""Silent-failure audit: what ``vifit.fit(target, "auto")`` reports on hostile targets.

    PYTHONPATH=src .venv/bin/python bench/hostile_audit.py               # all targets
    PYTHONPATH=src .venv/bin/python bench/hostile_audit.py --markdown    # the table as Markdown
    PYTHONPATH=src .venv/bin/python bench/hostile_audit.py --only cauchy,two_modes
    PYTHONPATH=src .venv/bin/python bench/hostile_audit.py --baseline    # rows worse than docs/hostile.md's
    PYTHONPATH=src .venv/bin/python bench/hostile_audit.py --details     # verdict texts, notes,
                                                                         # auto's decisions

Each target is a sum of one-dimensional log factors, one per coordinate, written once for both
JAX (the density vifit fits) and NumPy (the truth, by adaptive quadrature of each factor: log Z,
mean and sd per coordinate). The targets: improper (linear, flat, and flat in one coordinate
only), standard Cauchy (heavy tails, no mean: the truth is log Z and the quantiles), a support
boundary (log p = -inf for z[0] < 0: a half-normal), a NaN region (log p = NaN where
z[0] > 3, or > 1: the truth is the Gaussian truncated there, which is also how vifit's
importance sampling reads NaN), Gaussians with sd 1e6 and 1e-6, a Gaussian whose log p is
offset by -1e6 or by -3e7 (which float32 resolves to 0.06 or 2 nats), N(1e6, 0.01^2) (its
coordinates resolved to steps of 0.06), a plateau (flat on
|z_i| < 1 with steep Gaussian walls), two far-apart modes (N(-8, 1) and N(8, 1) in z[0],
weights 0.5/0.5 and 0.3/0.7), and a few of them again in d = 10.

Each is fitted with ``vifit.fit(target, "auto", progress=False, seed=0)``, the CLI's default
(``--seed`` picks another seed).
Measured per row: stop reason, rejected steps out of all optimizer steps (of the stage
reported: a step with a non-finite ELBO, gradient or new parameters is not taken), the fit's
verdict (``result.verdict.label``), the family auto chose, k-hat, ELBO, PSIS log Z and its
error against the truth, the worst posterior-mean error in truth sds and the worst sd ratio
q/truth (from q's closed-form mean and covariance when the family has them, else from 20,000
draws of q), wall seconds, and the first note.

"Answer right" means all of: log Z known and |log Z error| < 0.1 nats; every coordinate's mean
within 0.1 truth sd; every sd within 10%. For coordinates without a mean (Cauchy) the median
stands in for the mean (error in units of the half interquartile range) and the 5/25/75/95%
quantiles' distances from the median stand in for the sd (ratio q/truth, the worst of the
four), from 40,000 of the draws vifit reports (``result.sample()``: resampled toward p by its
default rule). An improper target has no right answer. A row is *silently wrong*
when the verdict is "good" and the answer is not right.

An exception of type ``vifit.errors.VifitError`` is a clear error (an acceptable outcome); any
other exception is a defect, reported with the last line of its traceback. A fit that runs
longer than ``--timeout`` seconds (default 120) is stopped between compiled chunks and
reported as a defect. The exit status is 1 when any row is silently wrong, a defect exception
or a timeout, else 0. Times are wall seconds on this machine, compilation included.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate

import vifit
from vifit.errors import VifitError

LOGZ_TOL = 0.1  # nats
MEAN_TOL = 0.1  # truth sds
SD_TOL = 0.1  # relative
N_DRAWS = 20_000  # draws of q when its family has no closed-form mean/covariance
N_DRAWS_QUANTILE = 40_000  # draws of q for quantile-based checks (Cauchy)
QUANTILES = (0.05, 0.25, 0.75, 0.95)

# A log factor: (x, xp) -> log density at x, with xp = jax.numpy or numpy.
LogFactor = Callable[[Any, ModuleType], Any]


# --------------------------------------------------------------------------- targets and truth

@dataclass(frozen=True)
class Factor:
    """One coordinate's unnormalized log density, with where its mass lies (for quadrature)."""

    log_f: LogFactor
    loc: float = 0.0  # quadrature is done in u = (x - loc) / scale
    scale: float = 1.0
    breaks: tuple[float, ...] = ()  # points (in x) where log_f has a kink, jump or mode
    proper: bool = True
    quantiles: Callable[[float], float] | None = None  # exact quantile function, if no mean
    offset: float = 0.0  # added to log_f in the target, to log Z in the truth (not integrated)


@dataclass(frozen=True)
class Truth:
    log_z: float
    mean: np.ndarray  # NaN where undefined (then ``quantiles`` holds the truth)
    sd: np.ndarray
    quantiles: dict[int, dict[float, float]] = field(default_factory=dict)  # coord -> p -> q_p


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    factors: tuple[Factor, ...]
    differentiable: bool = True  # False: the fit may not use gradients of log p

    @property
    def dim(self) -> int:
        return len(self.factors)

    def log_density(self, z: jax.Array) -> jax.Array:
        return sum((f.log_f(z[i], jnp) + f.offset for i, f in enumerate(self.factors)),
                   jnp.asarray(0.0))

    def target(self) -> vifit.Target:
        return vifit.Target(self.log_density, dim=self.dim, name=self.name,
                            differentiable=self.differentiable)

    def truth(self) -> Truth | None:
        if not all(f.proper for f in self.factors):
            return None
        log_z, means, sds, quantiles = 0.0, [], [], {}
        for i, f in enumerate(self.factors):
            lz, m, s = _moments_1d(f)
            log_z += lz
            means.append(m)
            sds.append(s)
            if f.quantiles is not None:
                quantiles[i] = {p: f.quantiles(p) for p in (*QUANTILES, 0.5)}
        return Truth(log_z, np.array(means), np.array(sds), quantiles)


def _moments_1d(f: Factor) -> tuple[float, float, float]:
    """log Z, mean, sd of exp(log_f) by quadrature in u = (x - loc) / scale; NaN of log_f counts
    as zero density. Mean and sd are NaN for a factor given by its quantiles (no mean)."""

    def density(u: float) -> float:
        v = float(f.log_f(np.float64(f.loc + f.scale * u), np))
        return math.exp(v) if math.isfinite(v) else 0.0

    breaks = sorted((b - f.loc) / f.scale for b in f.breaks)
    edges = [-math.inf, *breaks, math.inf] if breaks else [-math.inf, 0.0, math.inf]

    def integral(g: Callable[[float], float]) -> float:
        with warnings.catch_warnings():  # a zero mean cannot meet a relative tolerance
            warnings.simplefilter("ignore", integrate.IntegrationWarning)
            return sum(integrate.quad(g, a, b, epsabs=1e-14, epsrel=1e-11, limit=500)[0]
                       for a, b in zip(edges[:-1], edges[1:]))

    z0 = integral(density)
    log_z = math.log(z0) + math.log(f.scale) + f.offset
    if f.quantiles is not None:
        return log_z, math.nan, math.nan
    m_u = integral(lambda u: u * density(u)) / z0
    v_u = integral(lambda u: (u - m_u) ** 2 * density(u)) / z0
    return log_z, f.loc + f.scale * m_u, f.scale * math.sqrt(v_u)


def normal(loc: float = 0.0, sd: float = 1.0) -> Factor:
    return Factor(lambda x, xp: -0.5 * ((x - loc) / sd) ** 2, loc=loc, scale=sd)


def linear() -> Factor:
    return Factor(lambda x, xp: 1.0 * x, proper=False)


def flat() -> Factor:
    return Factor(lambda x, xp: 0.0 * x, proper=False)


def cauchy() -> Factor:
    return Factor(lambda x, xp: -xp.log1p(x * x),
                  quantiles=lambda p: math.tan(math.pi * (p - 0.5)))


def half_normal() -> Factor:
    return Factor(lambda x, xp: xp.where(x >= 0.0, -0.5 * x * x, -xp.inf), breaks=(0.0,))


def nan_above(cut: float) -> Factor:
    return Factor(lambda x, xp: xp.where(x > cut, xp.nan, -0.5 * x * x), breaks=(cut,))


def plateau(steep: float = 1e2) -> Factor:
    return Factor(lambda x, xp: xp.where(xp.abs(x) < 1.0, 0.0,
                                         -0.5 * steep * (xp.abs(x) - 1.0) ** 2),
                  breaks=(-1.0, 1.0))


def two_modes(w_left: float, sep: float = 8.0) -> Factor:
    a, b = math.log(w_left), math.log(1.0 - w_left)
    return Factor(lambda x, xp: xp.logaddexp(a - 0.5 * (x + sep) ** 2, b - 0.5 * (x - sep) ** 2),
                  breaks=(-sep, 0.0, sep))


def spike(w: float, at: float, sd: float) -> Factor:
    """(1 - w) N(0, 1) + w N(at, sd^2): a mode far narrower than its neighbour."""
    a, b = math.log(1.0 - w), math.log(w) - math.log(sd)
    return Factor(lambda x, xp: xp.logaddexp(a - 0.5 * x ** 2, b - 0.5 * ((x - at) / sd) ** 2),
                  breaks=(0.0, at - 10 * sd, at, at + 10 * sd))


def spike_and_slab(y: float, sd: float) -> Factor:
    """The posterior of z under the prior 0.5 N(0, sd^2) + 0.5 N(0, 1) and one observation
    y ~ N(z, 1)."""
    a = math.log(0.5) - math.log(sd)

    def log_f(x, xp):
        prior = xp.logaddexp(a - 0.5 * (x / sd) ** 2, math.log(0.5) - 0.5 * x ** 2)
        return prior - 0.5 * (y - x) ** 2

    return Factor(log_f, breaks=(-10 * sd, 0.0, 10 * sd, y / 2))


def cases() -> list[Case]:
    huge = (1.0, -1.0, 0.5)  # locations in units of the sd
    return [
        Case("improper_linear", "log p = sum(z): grows without bound", (linear(), linear())),
        Case("improper_flat", "log p = 0 * sum(z): flat, Z infinite", (flat(), flat())),
        Case("improper_one_coord", "N(0,1) in z[0], flat in z[1]", (normal(), flat())),
        Case("cauchy", "standard Cauchy per coordinate (no mean)", (cauchy(), cauchy())),
        Case("half_normal", "z[0] >= 0 (log p = -inf below), N(0,1) otherwise",
             (half_normal(), normal())),
        Case("nan_region", "N(0,1), log p = NaN where z[0] > 3", (nan_above(3.0), normal())),
        Case("nan_region_wide", "N(0,1), log p = NaN where z[0] > 1",
             (nan_above(1.0), normal())),
        Case("huge_scale", "N(mu, 1e6^2) per coordinate, mu = 1e6 * (1, -1, 0.5)",
             tuple(normal(m * 1e6, 1e6) for m in huge)),
        Case("tiny_scale", "N(mu, 1e-6^2) per coordinate, mu = 1e-6 * (1, -1, 0.5)",
             tuple(normal(m * 1e-6, 1e-6) for m in huge)),
        Case("large_offset", "N(0,1) per coordinate, log p offset by -1e6 (float32 steps "
             "of 0.06)", (replace(normal(), offset=-5e5),) * 2),
        Case("huge_offset", "N(0,1) per coordinate, log p offset by -3e7 (float32 steps of 2)",
             (replace(normal(), offset=-1.5e7),) * 2),
        Case("far_narrow", "N(1e6, 0.01^2) per coordinate (float32 steps of 0.06 there)",
             (normal(1e6, 0.01),) * 2),
        Case("narrow_far", "N(100, 1e-4^2) per coordinate (curvature 1e8; float32 steps "
             "of 0.08 sds there)", (normal(100.0, 1e-4),) * 3),
        Case("spike_far", "0.7 N(0,1) + 0.3 N(50, 1e-4^2), d = 1: a narrow mode far out",
             (spike(0.3, 50.0, 1e-4),)),
        Case("spike_and_slab", "per coordinate: prior 0.5 N(0, 1e-3^2) + 0.5 N(0,1), one "
             "observation 2.5 ~ N(z, 1) (the spike 23% of the mass)",
             (spike_and_slab(2.5, 1e-3),) * 2),
        Case("plateau", "log p = 0 on |z_i| < 1, -50 (|z_i| - 1)^2 outside",
             (plateau(), plateau())),
        Case("two_modes", "0.5 N(-8,1) + 0.5 N(8,1) in z[0], N(0,1) in z[1]",
             (two_modes(0.5), normal())),
        Case("two_modes_unequal", "0.3 N(-8,1) + 0.7 N(8,1) in z[0], N(0,1) in z[1]",
             (two_modes(0.3), normal())),
        Case("two_modes_far", "0.5 N(-100,1) + 0.5 N(100,1) in z[0], N(0,1) in z[1]",
             (two_modes(0.5, sep=100.0), normal())),
        Case("two_modes_no_grad", "two_modes with differentiable=False (no mode search)",
             (two_modes(0.5), normal()), differentiable=False),
        Case("cauchy_10d", "standard Cauchy per coordinate, d = 10", (cauchy(),) * 10),
        Case("two_modes_10d", "0.5 N(-8,1) + 0.5 N(8,1) in z[0], N(0,1) in z[1..9]",
             (two_modes(0.5),) + (normal(),) * 9),
    ]


# --------------------------------------------------------------------------- measuring a fit

class FitTimeout(BaseException):
    """Raised from a timer signal; a BaseException so that no ``except Exception`` eats it."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise FitTimeout after ``seconds`` (on the main thread, between compiled calls)."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise FitTimeout

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Row:
    name: str
    dim: int
    what: str
    outcome: str = "fit"  # "fit" | "clear error: ..." | "DEFECT: ..." | "TIMEOUT ..."
    stop_reason: str = ""
    steps: int = 0
    rejected: int = 0  # optimizer steps not taken (non-finite ELBO, gradient or parameters)
    verdict: str = ""
    family: str = ""
    khat: float = math.nan
    elbo: float = math.nan
    log_z: float = math.nan
    exact_log_z: float | None = None
    mean_err: float = math.nan  # worst |mean_q - mean| / sd (Cauchy: median, in half-IQRs)
    sd_ratio: float = math.nan  # sd_q / sd farthest from 1 (Cauchy: quantile spreads)
    seconds: float = math.nan
    note: str = ""
    right: bool = False
    details: list[str] = field(default_factory=list)

    @property
    def log_z_err(self) -> float:
        return math.nan if self.exact_log_z is None else self.log_z - self.exact_log_z

    @property
    def silently_wrong(self) -> bool:
        return self.outcome == "fit" and self.verdict == "good" and not self.right

    @property
    def defect(self) -> bool:
        return self.silently_wrong or self.outcome.startswith(("DEFECT", "TIMEOUT"))


def _worst_ratio(ratios: np.ndarray) -> float:
    """The ratio farthest from 1 on the log scale; the first non-finite or non-positive one
    if there is any."""
    if not np.all(np.isfinite(ratios)) or np.any(ratios <= 0):
        bad = ratios[~np.isfinite(ratios) | (ratios <= 0)]
        return float(bad[0])
    return float(ratios[np.argmax(np.abs(np.log(ratios)))])


def _q_moments(result: vifit.FitResult) -> tuple[np.ndarray, np.ndarray]:
    """The mean and sd per coordinate that vifit reports: ``result.summary()`` (importance-
    weighted toward p where the k-hat allows it, else q's own; identity constrain here)."""
    table = result.summary(result.seed, N_DRAWS)
    return table["mean"].to_numpy(np.float64), table["sd"].to_numpy(np.float64)


def compare(result: vifit.FitResult, truth: Truth) -> tuple[float, float]:
    """(worst mean error in truth sds, worst sd ratio) of q against the truth."""
    errs: list[float] = []
    ratios: list[float] = []
    has_mean = np.isfinite(truth.mean)
    if has_mean.any():
        m, s = _q_moments(result)
        errs += list(np.abs(m[has_mean] - truth.mean[has_mean]) / truth.sd[has_mean])
        ratios += list(s[has_mean] / truth.sd[has_mean])
    if truth.quantiles:
        # what vifit reports as posterior draws: resampled toward p by its default rule
        draws = result.sample(jax.random.key(0), N_DRAWS_QUANTILE)
        z = np.concatenate([np.asarray(v, np.float64).reshape(N_DRAWS_QUANTILE, -1)
                            for v in draws.values()], axis=1)
        for i, tq in truth.quantiles.items():
            col = z[:, i]
            med = float(np.median(col)) if np.all(np.isfinite(col)) else math.nan
            half_iqr = 0.5 * (tq[0.75] - tq[0.25])
            errs.append(abs(med - tq[0.5]) / half_iqr)
            for p in QUANTILES:
                qp = float(np.quantile(col, p)) if np.all(np.isfinite(col)) else math.nan
                ratios.append((qp - med) / (tq[p] - tq[0.5]))
    err_arr = np.array(errs)
    worst_err = float(np.max(err_arr)) if np.all(np.isfinite(err_arr)) else math.nan
    return worst_err, _worst_ratio(np.array(ratios))


def audit(case: Case, timeout: float, seed: int = 0) -> Row:
    row = Row(case.name, case.dim, case.what)
    truth = case.truth()
    row.exact_log_z = None if truth is None else truth.log_z
    t0 = time.perf_counter()
    try:
        with time_limit(timeout):
            target = case.target()
            result = vifit.fit(target, "auto", progress=False, seed=seed)
            row.seconds = time.perf_counter() - t0
            row.stop_reason = result.stop_reason
            row.steps, row.rejected = result.steps, result.rejected
            verdict = result.verdict
            row.verdict = verdict.label
            row.family = result.family.name
            row.khat, row.elbo, row.log_z = result.khat, result.elbo, result.log_z
            row.note = result.notes[0] if result.notes else ""
            row.details = [f"verdict: {verdict.text}"] + [f"note: {n}" for n in result.notes]
            for d in result.info.get("auto", {}).get("decisions", []):
                nums = (f" ELBO {d['elbo']:.4g}, k-hat {d['khat']:.2f}, {d['steps']} steps;"
                        if "khat" in d else "")
                row.details.append(f"auto {d['stage']}:{nums} {d['decision']} ({d['why']})")
            if truth is not None:
                row.mean_err, row.sd_ratio = compare(result, truth)
    except VifitError as exc:
        row.seconds = time.perf_counter() - t0
        row.outcome = f"clear error: {type(exc).__name__}: {exc}"
    except FitTimeout:
        row.seconds = time.perf_counter() - t0
        row.outcome = f"TIMEOUT after {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 - any other exception is what the audit reports
        row.seconds = time.perf_counter() - t0
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        row.outcome = f"DEFECT: {last}"
        row.details = traceback.format_exc().splitlines()[-6:]
    row.right = (truth is not None and row.outcome == "fit"
                 and abs(row.log_z_err) < LOGZ_TOL
                 and row.mean_err < MEAN_TOL
                 and abs(row.sd_ratio - 1.0) < SD_TOL)
    return row


# --------------------------------------------------------------------------- the table

COLUMNS = ("target", "d", "stop", "rejected/steps", "verdict", "family", "k-hat", "ELBO", "log Z", "exact",
           "log Z err", "mean err/sd", "sd ratio", "s", "right?", "silently wrong?", "note")


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}" if abs(x) >= 1e4 or (x != 0 and abs(x) < 1e-3) else f"{x:.{digits}f}"


def cells(row: Row, note_chars: int | None) -> list[str]:
    note = row.note if row.outcome == "fit" else row.outcome
    if note_chars is not None and len(note) > note_chars:
        note = note[:note_chars - 3] + "..."
    fitted = row.outcome == "fit"
    return [
        row.name, str(row.dim),
        row.stop_reason if fitted else "-",
        f"{row.rejected}/{row.steps}" if fitted else "-",
        row.verdict if fitted else "-",
        row.family if fitted else "-",
        _num(row.khat, 2) if fitted else "-",
        _num(row.elbo, 4) if fitted else "-",
        _num(row.log_z, 4) if fitted else "-",
        _num(row.exact_log_z, 4),
        _num(row.log_z_err, 3) if fitted else "-",
        _num(row.mean_err, 3) if fitted else "-",
        _num(row.sd_ratio, 3) if fitted else "-",
        f"{row.seconds:.1f}",
        "yes" if row.right else "no",
        "YES" if row.silently_wrong else "no",
        note,
    ]


def render(rows: Sequence[Row], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for row in rows:
            lines.append("| " + " | ".join(c.replace("|", "\\|")
                                            for c in cells(row, 150)) + " |")
        return "\n".join(lines)
    table = [list(COLUMNS)] + [cells(row, 70) for row in rows]
    widths = [max(len(r[j]) for r in table) for j in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--only", default="", help="comma-separated target names")
    parser.add_argument("--details", action="store_true",
                        help="also print each row's verdict text, notes and auto's decisions")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds per fit before it is stopped and reported (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="the fits' seed (default 0)")
    parser.add_argument("--baseline", type=Path, nargs="?", const=BASELINE, default=None,
                        help="list rows worse than an earlier run's (default: the committed "
                             "bench/baselines/hostile_audit.json, seed 0)")
    args = parser.parse_args(argv)
    chosen = cases()
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        unknown = sorted(set(wanted) - {c.name for c in chosen})
        if unknown:
            parser.error(f"unknown target(s) {unknown}; known: {[c.name for c in chosen]}")
        chosen = [c for c in chosen if c.name in wanted]
    rows = []
    for case in chosen:
        row = audit(case, args.timeout, args.seed)
        print(f"# {row.name}: {row.outcome if row.outcome != 'fit' else row.verdict} "
              f"({row.seconds:.1f} s)", file=sys.stderr, flush=True)
        rows.append(row)
    print(render(rows, args.markdown))
    if args.details:
        for row in rows:
            print(f"\n## {row.name} (d={row.dim}): {row.what}")
            for line in row.details:
                print(f"  {line}")
    bad = [r.name for r in rows if r.defect]
    if bad:
        print(f"\nsilently wrong, defect or timeout: {', '.join(bad)}", file=sys.stderr)
    if args.baseline is not None:
        worse = worse_than([cells(r, None) for r in rows],
                           json.loads(args.baseline.read_text()))
        print(f"\nagainst {args.baseline}: " + (f"{len(worse)} worse or changed" if worse
                                                 else "no row worse or changed"))
        for line in worse:
            print(f"  {line}")
        bad += worse
    return 1 if bad else 0


# The committed rows of docs/hostile.md's table (seed 0). A row is named by ``worse_than``
# where it is no longer right, its verdict or family changed, or its log Z error grew by more
# than WORSE nats and by half: "silently wrong?" cannot see a fit that got worse and says so.
BASELINE = Path(__file__).parent / "baselines" / "hostile_audit.json"
WORSE = 0.05


def worse_than(table: list[list[str]], baseline: list[dict]) -> list[str]:
    """What got worse in the rendered rows ``table`` (``cells``) than in ``baseline``."""
    old = {r["target"]: r for r in baseline}
    worse = []
    for row in (dict(zip(COLUMNS, values)) for values in table):
        was = old.get(row["target"])
        if was is None:
            continue
        for col in ("verdict", "family", "right?"):
            if row[col] != was[col]:
                worse.append(f"{row['target']}: {col} {was[col]} -> {row[col]}")
        try:
            a, b = abs(float(was["log Z err"])), abs(float(row["log Z err"]))
        except ValueError:  # "-": no fit, or no exact answer
            continue
        if b > a + WORSE and b > 1.5 * a:
            worse.append(f"{row['target']}: log Z err {was['log Z err']} -> {row['log Z err']}")
    return worse


if __name__ == "__main__":
    sys.exit(main())
