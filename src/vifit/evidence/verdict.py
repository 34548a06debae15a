"""Which log Z estimate to trust, and how far: the rule behind ``EvidenceResult.verdict``.

Two estimates are *in disagreement* when they differ by more than Z_DISAGREE combined standard
errors (3: a false alarm rate of 0.3% per comparison under normal errors).

Recommended estimate:
1. AIS/SMC, when it ran and its own checks pass: at least a tenth of its replicates carry
   weight (the ESS of the replicate estimates Z_r), it is not below a lower bound, and it
   settled (its last two runs, each from a base refitted to the one before, agree). AIS starts
   from q (and a widened q) and anneals to p, so it sees mass that plain importance sampling
   from q misses. The Pareto k-hat of the Z_r only lowers the label (0.5 or more: "usable with
   care"): from a few dozen replicates it is too rough an estimate to reject on.
   Exceptions: when PSIS passes its own check and is *above* AIS, PSIS is recommended: both
   are unbiased for Z, so in log space both err low when they miss mass, and the higher of two
   trustworthy ones is the better. When both pass, PSIS's k-hat is below 0.5 and they agree,
   the one with the smaller standard error is recommended.
2. Otherwise PSIS, when its k-hat is below 0.7.
3. Otherwise IWAE-K, the tightest lower bound, or AIS's last run where settling was its only
   failed check and it is higher (it too errs low in log space): the verdict is then
   "not reliable".

Label:
- "good": the recommended estimate's own diagnostics are clean (k-hat < 0.5; for AIS also a
  replicate spread under 1 nat), it agrees with the other point estimate, no lower bound is above
  it and it is not above a CUBO that is itself trustworthy.
- "usable with care": the recommended estimate stands but something is off: AIS and PSIS disagree
  (typically q misses a mode or a tail), a k-hat of 0.5 or more (PSIS: below 0.7), a wide AIS replicate
  spread, an estimate above CUBO, or AIS was not run (then nothing could see modes q misses, and
  PSIS's k-hat cannot either).
- "not reliable": no point estimate passes its checks; or AIS fails its own checks but still
  lands more than ``AIS_ABOVE_NATS`` nats and ``AIS_ABOVE_Z`` combined standard errors above
  PSIS (its replicates saw mass that q misses, so PSIS is too low).

In more than ``SEARCH_BLIND_DIM`` dimensions, with several modes found in more than
``MULTIMODE_TRUST_DIM``, or when the fit's mode search was still finding new modes when its
rounds ran out, the label is at best "usable with care" and CUBO is never a verified bound:
there a mode that every search missed is a measured failure (docs/evidence.md, "Mixtures",
"Narrower still"), and no estimate can see it.

Where vifit summed p over every state of a discrete target (estimate "enumeration", kind
"exact"), the sum is recommended and the label is "good"; the bounds are checked against it
alone, and the bracket is the sum widened by its allowance for the rounding of log p. A search
over states whose states are too many to sum vouches for "good" in no dimension (a state of high
probability among improbable neighbours escapes its climbs).

CUBO is used only when the Pareto k-hat of w is below 0.5 (else E_q[w^2] is infinite and its
finite estimate is no bound) and when AIS does not find mass beyond PSIS (CUBO is computed from
the same draws of q, so it is blind to what q misses); a CUBO below a lower bound is reported as
CUBO failing, since its estimate is biased low when w^2 is heavy-tailed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from vifit.evidence.importance import shortfall

Z_DISAGREE = 3.0
KHAT_GOOD, KHAT_OK = 0.5, 0.7
MAX_SPREAD = 1.0  # nats: sd of the AIS replicates' log Z_r above which we call them unsettled
# A rejected AIS this far above PSIS (nats, and combined standard errors) makes it not reliable.
AIS_ABOVE_NATS, AIS_ABOVE_Z = 1.0, 2.0
# Share of the Laplace mass, among the modes reached by climbs from AIS's final particles, that
# lies in modes q does not cover: from 1% at best "usable with care"; from 10%, when AIS agrees
# with PSIS (it did not find that mass either), "not reliable".
MISSED_CARE, MISSED_UNRELIABLE = 0.01, 0.1
# Above this many dimensions nothing vifit runs can vouch that no separated mode was missed:
# measured on Gaussian mixtures with exact log Z (docs/evidence.md, "Mixtures"), in d = 10 (8
# components 10 sds apart) and d = 20 the search, AIS and the climbs from AIS's particles all
# missed narrow modes at once and agreed on a log Z 0.4 to 1.6 nats low; in d = 5 a 0.2-weight
# mode with a quarter of the sd, 8 sds beside a 0.8-weight one, escaped the search in 5 of 10
# seeds and the evidence read "good" 0.22 nats low in 2 of 5 (in d = 4 the search found it in
# 9 of 10, and fit plus evidence in 8 of 8). There "good" is out of reach and CUBO is no
# verified bound. In d = 3 and 4 a mode narrower still is missed the same way (2026-12-07,
# bench/narrow_mode.py: 0.1 of the mass with a 40th of its neighbour's sd in d = 3, a 20th in
# d = 4, 8 of the neighbour's sds away: fit and evidence read "good" 0.105 nats low, with
# CUBO stood behind as an upper bound below log Z, in 3 of 3 and 2 of 3 seeds); in d = 2 a
# mode with a 100th of the sd was found in every seed, its basin holding enough of the draws
# the search weighs (``vifit.modes._dense_frames``).
SEARCH_BLIND_DIM = 2


def search_blind(dim: int | None, modes: dict | None) -> bool:
    """In ``dim`` dimensions "good" and CUBO's upper bound are out of reach whatever the fit's
    search (``modes``, its record) found: beyond ``SEARCH_BLIND_DIM``, or for any search over
    states (``blind_states``)."""
    if dim is None:
        return False
    return bool(modes and modes.get("states")) or dim > SEARCH_BLIND_DIM


def blind_evidence(dim: int) -> str:
    """What was measured to escape every search in ``dim`` (> ``SEARCH_BLIND_DIM``)
    dimensions, for the verdicts' texts."""
    if dim <= 4:  # where that measurement was made
        return ("in d = 3 and 4 a mode of 0.1 of the mass, 20 to 40 times narrower than its "
                "neighbour and 8 of the neighbour's sds away, escaped most searches, and log Z "
                "was 0.105 nats low")
    return ("on test mixtures in d = 5 to 20, narrow modes 6 to 10 sds away were missed by "
            "all of them at once, and log Z was 0.2 to 1.6 nats low")


# A search over states climbs from a few hundred starts by single-site changes; a state of
# high probability whose neighbours are improbable is reached only by a climb that starts next
# to it. On 3 sites of 100 states (a smooth bump, and one state holding 30% of the mass) the
# search missed that state and the fit read "good" with log Z 0.39 nats low (2026-12-07). Where
# the states are few enough vifit sums p over all of them (``vifit.discrete.enumerable``) and
# the verdicts rest on that sum; elsewhere no search over states vouches for "good".
def blind_states(states: int) -> str:
    """Why a search over ``states`` states (too many to sum) cannot rule out a missed mode,
    for the verdicts' texts."""
    from vifit.discrete import ENUMERATE_MAX_STATES

    count = f"{states:,}" if math.isfinite(states) else "many"
    return (f"the {count} states are too many for vifit to sum (at most "
            f"{ENUMERATE_MAX_STATES:,}, within the search's flop budget), and a state of high "
            "probability among improbable neighbours escapes every climb that does not start "
            "beside it: on 3 sites of 100 states, one state with 30% of the mass beside a "
            "smooth bump was missed and log Z read 0.39 nats low")


# With several modes found, beyond this dimension the search cannot be taken as complete: on
# mixture(4, 5, 6, seed=3) of bench/evidence_mixtures.py (d = 5) a 0.4-weight mode with sds
# 0.3-1 between wider ones has a basin that about 1 climb in 700 reaches; the search, AIS and
# every estimate missed it at once and agreed on a log Z 0.51 nats low. In d = 2 every search
# found every mode on every test mixture.
MULTIMODE_TRUST_DIM = 2


def multimode_blind(dim: int | None, modes: dict | None) -> bool:
    """Several modes were found in more than ``MULTIMODE_TRUST_DIM`` dimensions: a narrow one
    among them may have escaped every search."""
    return (dim is not None and dim > MULTIMODE_TRUST_DIM and bool(modes)
            and int(modes.get("found", 0) or 0) > 1)


class Estimate(NamedTuple):
    """One estimator's answer. ``kind``: "lower" (a lower bound in expectation), "upper" (an
    upper bound in expectation), "point" (a consistent estimate of log Z) or "exact" (a sum
    over every state, ``se`` the allowance for the rounding of log p)."""

    name: str
    estimate: float  # nats
    se: float  # Monte Carlo standard error, nats
    kind: str
    seconds: float  # wall time, including the draws from q it uses
    details: dict


class EvidenceVerdict(NamedTuple):
    label: str  # "good" | "usable with care" | "not reliable"
    recommended: str  # name of the estimate vifit trusts most
    text: str  # the plain-language verdict with its reasons
    reasons: tuple[str, ...]
    # bounds vifit does not stand behind, name -> why (see ``unverified_bounds``)
    unverified: dict = {}


KHAT_W2 = 0.25  # k-hat of w below which E_q[w^4] is finite, so CUBO's standard error exists


def unverified_bounds(estimates: dict[str, Estimate], verdict: EvidenceVerdict,
                      dim: int | None = None, modes: dict | None = None,
                      tails: dict | None = None) -> dict[str, str]:
    """The estimates of kind "lower" or "upper" that vifit does not stand behind, with why.

    A lower bound (ELBO, IWAE) is a bound in expectation by Jensen's inequality whatever q is;
    it is rejected only when it is not finite or lies above the recommended estimate beyond
    ``Z_DISAGREE`` standard errors (then something is numerically wrong with it or with the
    point estimate). An upper bound (CUBO) is a bound only when E_q[w^2] is finite *and* its
    estimate from q's draws sees all of p; vifit stands behind it only when the k-hat of w is
    below ``KHAT_W2`` (E_q[w^4] finite: the estimate and its error bar mean something), AIS ran,
    passed its checks and finds no mass beyond importance sampling from q, the verdict is not
    "not reliable", and it is not below a lower bound or the recommended estimate. Mass that
    neither q nor AIS reaches (a mode nobody found) can still make it too low.
    """
    exact = _exact(estimates)
    if exact is not None:
        return _against_exact(estimates, exact)
    rec = estimates.get(verdict.recommended)
    lowers = [e for e in estimates.values() if e.kind == "lower" and np.isfinite(e.estimate)]
    out: dict[str, str] = {}
    for name, est in estimates.items():
        if est.kind == "lower":
            if not np.isfinite(est.estimate):
                out[name] = "not finite"
            elif rec is not None and rec.kind != "lower" and _gap(est, rec) > Z_DISAGREE:
                out[name] = (f"above the recommended {rec.name} estimate by "
                             f"{est.estimate - rec.estimate:.3g} nats, beyond their errors")
        elif est.kind == "upper":
            why = _upper_problem(est, estimates, verdict, lowers, rec)
            if not why and _unsaturated(modes):
                why = ("the fit's mode search was still finding new modes when it stopped: "
                       "this estimate from q's draws cannot see the modes it did not reach")
            if not why and reduced_search(modes):
                why = ("the fit's mode search was cut short (log p is costly), so a mode it "
                       "would have reached may be missed, and this estimate from q's draws "
                       "would then be too low")
            if not why and multimode_blind(dim, modes):
                why = (f"the mode search found {modes['found']} modes in d = {dim}: a narrow "
                       "mode among them can escape the search and AIS (measured in d = 5), "
                       "and this estimate from q's draws would then be too low")
            if not why and search_blind(dim, modes):
                why = ("the search over states cannot rule out a mode it missed, and this "
                       "estimate from q's draws would then be too low"
                       if modes and modes.get("states") else
                       f"in d = {dim} a separated mode can escape the mode search and AIS "
                       f"({blind_evidence(dim)}), and this estimate from q's draws would then "
                       "be too low")
            if not why:
                why = _uncovered(est, modes, _missed_by_q(estimates.get("ais")))
            if not why and tails and tails.get("flag") == "light":
                why = ("the tail check finds p's tails heavier than q's: E_q[w^2] is then "
                       "infinite and this estimate from q's draws is too low")
            if why:
                out[name] = why
    return out


def _uncovered(est: Estimate, modes: dict | None, beyond_ais: float) -> str:
    """Why an upper bound from q's draws is none where modes were found that q does not cover
    and their share of the mass costs more log Z (``shortfall``) than the bound's own
    standard error; "" otherwise. A mean-field q on a 1-D mixture with 1% of the mass 550 of
    q's sds away (found by the fit's search, under ``MISSED_CARE``) gave CUBO 0.009 nats below
    log Z with a standard error of 0.0004 (bench/random_targets.py --evidence, seed 29)."""
    share = max(float((modes or {}).get("missed_mass_fraction") or 0.0), beyond_ais)
    if not (share > 0 and shortfall(share) > est.se):
        return ""
    return (f"modes that q does not cover hold about {100 * share:.2g}% of the mass (found by "
            "the mode search); this estimate from q's draws cannot see them and is about "
            f"{shortfall(share):.2g} nats too low")


def _exact(estimates: dict[str, Estimate]) -> Estimate | None:
    """The sum over every state, where vifit made one and it is finite."""
    est = next((e for e in estimates.values() if e.kind == "exact"), None)
    return est if est is not None and np.isfinite(est.estimate) else None


def _against_exact(estimates: dict[str, Estimate], exact: Estimate) -> dict[str, str]:
    """The bounds that the sum over every state refutes: a lower bound above it or an upper
    bound below it beyond their errors (or not finite). Where p has been summed nothing else
    need vouch for a bound: it is checked."""
    out: dict[str, str] = {}
    for name, est in estimates.items():
        if est.kind not in ("lower", "upper"):
            continue
        if not np.isfinite(est.estimate):
            out[name] = "not finite"
        elif est.kind == "lower" and _gap(est, exact) > Z_DISAGREE:
            out[name] = (f"above the exact log Z (the sum over every state) by "
                         f"{est.estimate - exact.estimate:.3g} nats, beyond its error")
        elif est.kind == "upper" and _gap(exact, est) > Z_DISAGREE:
            out[name] = (f"below the exact log Z (the sum over every state) by "
                         f"{exact.estimate - est.estimate:.3g} nats, beyond its error")
    return out


def _missed_by_q(ais: Estimate | None) -> float:
    """The share of mode mass beyond q that climbs from AIS's particles found (0 if none)."""
    if ais is None:
        return 0.0
    beyond = ais.details.get("modes_beyond_q") or {}
    return float(beyond.get("missed_mass_fraction") or 0.0)


def _upper_problem(est: Estimate, estimates: dict[str, Estimate], verdict: EvidenceVerdict,
                   lowers: list[Estimate], rec: Estimate | None) -> str:
    if not np.isfinite(est.estimate):
        return "not finite"
    k_w = _khat(est)
    if not (np.isfinite(k_w) and k_w < KHAT_W2):
        return (f"the k-hat of the weights is {k_w:.2f} (>= {KHAT_W2}): E_q[w^4] is infinite, "
                "so the estimate of E_q[w^2] is unreliable and biased low")
    if verdict.label == "not reliable":
        return "no estimate of log Z passes its checks"
    ais, psis = estimates.get("ais"), estimates.get("psis")
    if ais is None:
        return ("AIS was not run: nothing checked that q's draws see all of p (a missed mode "
                "makes this estimate too low)")
    if not np.isfinite(ais.estimate) or _ais_problems(ais, lowers):
        return "AIS failed its checks: nothing confirmed that q's draws see all of p"
    if psis is not None and _gap(ais, psis) > Z_DISAGREE:
        return "AIS finds mass that q misses: this estimate from q's draws cannot see it"
    if _missed_by_q(ais) >= MISSED_CARE:
        return ("climbs from AIS's final particles reach modes q does not cover: this estimate "
                "from q's draws cannot see them")
    low = max(lowers, key=lambda e: _gap(e, est), default=None)
    if low is not None and _gap(low, est) > Z_DISAGREE:
        return f"below the {low.name} lower bound beyond their errors"
    if rec is not None and rec is not est and _gap(rec, est) > Z_DISAGREE:
        return f"below the recommended {rec.name} estimate beyond their errors"
    return ""


def bracket(estimates: dict[str, Estimate], unverified: dict[str, str]
            ) -> dict[str, float | None]:
    """The tightest bounds vifit stands behind: the largest verified lower and the smallest
    verified upper estimate (None where there is none); where p was summed over every state,
    that sum widened by its rounding allowance."""
    exact = _exact(estimates)
    if exact is not None:
        return {"lower": exact.estimate - exact.se, "upper": exact.estimate + exact.se}
    ok = [e for n, e in estimates.items() if n not in unverified and np.isfinite(e.estimate)]
    lows = [e.estimate for e in ok if e.kind == "lower"]
    ups = [e.estimate for e in ok if e.kind == "upper"]
    return {"lower": max(lows) if lows else None, "upper": min(ups) if ups else None}


def _gap(a: Estimate, b: Estimate) -> float:
    """How many combined standard errors ``a`` is above ``b`` (negative when below)."""
    se = math.hypot(a.se, b.se)
    diff = a.estimate - b.estimate
    if not np.isfinite(diff):
        return math.copysign(math.inf, diff) if not math.isnan(diff) else 0.0
    return diff / se if se > 0 else math.copysign(math.inf, diff) if diff else 0.0


def _khat(est: Estimate | None) -> float:
    return float(est.details.get("khat", float("nan"))) if est is not None else float("nan")


def _ais_problems(ais: Estimate, lowers: list[Estimate]) -> list[str]:
    problems = []
    if not np.isfinite(ais.estimate):
        problems.append("AIS gave no finite estimate")
        return problems
    if ais.details.get("settled") is False:
        steps = " -> ".join(f"{h[0]:.3f}" for h in ais.details.get("history", []))
        problems.append(f"AIS has not settled: each run from a base refitted to the previous "
                        f"run's particles moved its estimate beyond their errors ({steps}), "
                        "so its chains have not yet reached all of p's mass and its standard "
                        "error, from replicates that stop short together, does not show it")
    reps = ais.details.get("replicates", 0)
    if ais.details.get("ess", reps) < max(2.0, 0.1 * reps):
        problems.append(f"a few AIS replicates carry all the weight (ESS "
                        f"{ais.details.get('ess', 0):.1f} of {reps})")
    for low in lowers:
        if _gap(low, ais) > Z_DISAGREE:
            problems.append(f"AIS is below the {low.name} lower bound: its chains lost mass "
                            "that q has (too few temperatures or moves)")
    return problems


def judge(estimates: dict[str, Estimate], dim: int | None = None,
          modes: dict | None = None, tails: dict | None = None) -> EvidenceVerdict:
    """The verdict on a set of estimates keyed "elbo", "iwae", "psis", "cubo" and, when run,
    "ais" (see the module docstring for the rule), for a target of ``dim`` coordinates
    (above ``SEARCH_BLIND_DIM`` the label is at best "usable with care") whose fit's mode
    search recorded ``modes`` (``FitResult.info["modes"]``; an unsaturated search also caps
    the label at "usable with care"), and whose tail check (``vifit.evidence.tails``) recorded
    ``tails``: q's tails lighter than p's cap the label as in the fit's verdict and make the
    widened draws' estimate ("defensive") the recommended one where it is higher."""
    return _with_tails(_with_found_modes(_judge(estimates, dim, modes), estimates),
                       estimates, tails)


def _with_found_modes(verdict: EvidenceVerdict, estimates: dict[str, Estimate]
                      ) -> EvidenceVerdict:
    """``verdict``, recommending importance sampling from q joined by the modes that climbs
    from AIS's particles reached and q misses (estimate "modes", ``vifit.evidence.
    found_modes``) where its weights pass PSIS's check and it is above the recommended estimate
    beyond their errors. Every estimate of Z here is unbiased, so in log space each errs low
    when it misses mass; the one that draws from the modes found misses less. The label is
    then at best "usable with care" (a search that missed modes once may have missed more)
    and, since this estimate reaches the mass that made the verdict "not reliable", no worse."""
    joined = estimates.get("modes")
    rec = estimates.get(verdict.recommended)
    k = _khat(joined)
    if (joined is None or rec is None or rec.kind == "exact" or not np.isfinite(joined.estimate)
            or not (np.isfinite(k) and k < KHAT_OK) or not _gap(joined, rec) > Z_DISAGREE):
        return verdict
    reasons = [r for r in verdict.reasons if r not in (_AGREE, _EVERY_LOW)]
    reasons.append(f"Importance sampling from q joined by the {joined.details.get('modes')} "
                   f"mode(s) it misses ({joined.estimate:.3f}, k-hat {k:.2f}) is above "
                   f"{rec.name} ({rec.estimate:.3f}) beyond their errors: it draws where that "
                   "mass is, and is recommended; modes no climb reached can still be missing.")
    return _verdict("usable with care", joined, reasons)


def _with_tails(verdict: EvidenceVerdict, estimates: dict[str, Estimate],
                tails: dict | None) -> EvidenceVerdict:
    """``verdict`` capped by the tail check, recommending the widened draws' estimate where q's
    tails are too light and it is higher than the recommended one beyond their errors (both
    estimate Z without bias; the one that sees the tail errs less)."""
    from vifit.evidence.tails import tail_verdict

    cap = tail_verdict(tails, verdict.label)
    if cap is None:
        return verdict
    label, sentence = cap
    rec = estimates[verdict.recommended]
    reasons = [r for r in verdict.reasons if r != _AGREE]
    wide = estimates.get("defensive")
    if (tails.get("flag") == "light" and wide is not None and np.isfinite(wide.estimate)
            and wide.details.get("usable") and _gap(wide, rec) > Z_DISAGREE):
        reasons.append(f"The widened draws' estimate ({wide.estimate:.3f}) is above "
                       f"{rec.name}'s ({rec.estimate:.3f}) beyond their errors: it sees the "
                       "tail q misses, and is recommended.")
        rec = wide
    if rec.name in ("ais", "defensive") and label == "not reliable" and \
            verdict.label != "not reliable":
        # The mass q misses makes estimates from q's draws wrong, not these, which reach it.
        label = "usable with care"
    return _verdict(label, rec, [sentence, *reasons])


def _judge(estimates: dict[str, Estimate], dim: int | None,
           modes: dict | None) -> EvidenceVerdict:
    exact = _exact(estimates)
    if exact is not None:
        return _judge_exact(estimates, exact)
    psis, ais, cubo = estimates.get("psis"), estimates.get("ais"), estimates.get("cubo")
    lowers = [e for e in estimates.values() if e.kind == "lower" and np.isfinite(e.estimate)]
    reasons: list[str] = []
    care = False

    k_psis = _khat(psis)
    psis_ok = psis is not None and np.isfinite(psis.estimate) and np.isfinite(k_psis) \
        and k_psis < KHAT_OK
    ais_problems = _ais_problems(ais, lowers) if ais is not None else []
    ais_ok = ais is not None and not ais_problems
    # An AIS that has only not settled still estimates Z without bias, and errs low in log
    # space like every estimate here: where nothing passes, the highest is the nearest.
    rising = (ais is not None and ais.details.get("settled") is False
              and len(ais_problems) == 1 and np.isfinite(ais.estimate))

    if ais_ok and psis_ok and _gap(psis, ais) > Z_DISAGREE:
        rec = psis
        care = True
        reasons.append(f"importance sampling from q ({psis.estimate:.3f}) is above AIS "
                       f"({ais.estimate:.3f}) beyond their errors: AIS's chains lost mass; "
                       "PSIS is recommended.")
    elif ais_ok and psis_ok and k_psis < KHAT_GOOD and abs(_gap(ais, psis)) <= Z_DISAGREE:
        rec = min((ais, psis), key=lambda e: e.se)  # they agree: the more precise one
    elif ais_ok:
        rec = ais
    elif psis_ok:
        rec = psis
    else:
        rec = max(lowers + ([ais] if rising else []), key=lambda e: e.estimate, default=psis)
        reasons.extend(p + "." for p in ais_problems)
        if ais is None:
            reasons.append(_AIS_SKIPPED)
        if psis is not None:
            reasons.append(f"PSIS k-hat is {k_psis:.2f} (>= 0.7): q misses mass that p has.")
        what = ("the last AIS run, itself likely low," if rec is ais else
                f"{rec.name}, a lower bound,")
        reasons.append(f"No point estimate passes its checks; {what} is reported. Fit a richer "
                       "family or run AIS longer.")
        return _verdict("not reliable", rec, reasons)

    if ais is None:
        care = True
        reasons.append(_AIS_SKIPPED)
    elif not ais_ok:
        care = True
        reasons.append("AIS is not used: " + "; ".join(ais_problems) + ".")
        if (rec is psis and np.isfinite(ais.estimate)
                and ais.estimate - psis.estimate > AIS_ABOVE_NATS
                and _gap(ais, psis) > AIS_ABOVE_Z):
            # Failed AIS can still see mass: its replicates are unreliable as an estimate, but
            # a replicate reaching far above PSIS is evidence that q misses part of p.
            reasons.append(f"Its estimate is nonetheless {ais.estimate - psis.estimate:.2f} "
                           "nats above importance sampling from q: q very likely misses a "
                           "mode or a heavy tail, and PSIS's log Z is then too low"
                           + ("; AIS's last run, itself likely low, is reported." if rising
                              else "."))
            return _verdict("not reliable", ais if rising else rec, reasons)

    beyond = _missed_by_q(ais)
    if beyond >= MISSED_CARE:
        care = True
        reasons.append(f"climbs of log p from AIS's final particles reach modes that q does not "
                       f"cover, with about {100 * beyond:.0f}% of the Laplace mass of the modes "
                       "reached: estimates from q's draws miss it.")
        if (beyond >= MISSED_UNRELIABLE and psis is not None and np.isfinite(psis.estimate)
                and not _gap(ais, psis) > Z_DISAGREE):
            reasons.append(_EVERY_LOW)
            return _verdict("not reliable", rec, reasons)
    if rec is ais:
        k_ais = _khat(ais)
        if np.isfinite(k_ais) and k_ais >= KHAT_GOOD:
            care = True
            reasons.append(f"AIS's replicate estimates have k-hat {k_ais:.2f} (>= 0.5; a rough "
                           f"figure from {ais.details.get('replicates', '?')} replicates): its "
                           "standard error may be optimistic.")
        spread = ais.details.get("spread", 0.0)
        if np.isfinite(spread) and spread > MAX_SPREAD:
            care = True
            reasons.append(f"AIS replicates spread by {spread:.2f} nats (sd): run more "
                           "particles, temperatures (cess) or moves.")
        if psis is not None and np.isfinite(psis.estimate) and _gap(ais, psis) > Z_DISAGREE:
            care = True
            seen = (f" although its k-hat ({k_psis:.2f}) looks fine" if psis_ok and
                    k_psis < KHAT_GOOD else "")
            reasons.append(f"AIS finds {ais.estimate - psis.estimate:.3f} nats more than "
                           f"importance sampling from q{seen}: q misses part of the posterior "
                           "(a mode or a heavy tail). AIS is recommended; mass that neither "
                           "reaches can still be missing.")
    if rec is psis and np.isfinite(k_psis) and k_psis >= KHAT_GOOD:
        care = True
        reasons.append(f"PSIS k-hat is {k_psis:.2f} (0.5 to 0.7): heavy-tailed weights; the "
                       "standard error may be optimistic.")

    for low in lowers:
        if _gap(low, rec) > Z_DISAGREE:
            care = True
            reasons.append(f"the {low.name} lower bound is above the recommended estimate "
                           "beyond their errors.")
    q_blind = ais_ok and psis is not None and _gap(ais, psis) > Z_DISAGREE
    if cubo is not None and np.isfinite(cubo.estimate):
        k_w = _khat(cubo)
        if q_blind:
            reasons.append("CUBO comes from the same draws of q and cannot see the mass q "
                           "misses: it is no bound here.")
        elif not (np.isfinite(k_w) and k_w < KHAT_GOOD):
            reasons.append(f"CUBO is not a usable upper bound here: the weights' k-hat is "
                           f"{k_w:.2f} (>= 0.5), so E_q[w^2] is infinite.")
        elif any(_gap(low, cubo) > Z_DISAGREE for low in lowers):
            reasons.append("CUBO's estimate is below a lower bound: it is biased low by the "
                           "heavy tail of w^2 and is not a bound here.")
        elif _gap(rec, cubo) > Z_DISAGREE:
            care = True
            reasons.append("the recommended estimate is above the CUBO upper bound beyond "
                           "their errors.")
    states_missed = float(modes.get("missed_mass_fraction") or 0.0) \
        if modes and modes.get("states") else 0.0
    if states_missed >= MISSED_CARE:
        # A discrete target has no AIS to reach the mass the fit's search over states found
        # beyond q; every estimate from q's draws misses it (the estimate "modes" does not).
        care = True
        reasons.append(f"The fit's mode search over states found modes that q does not "
                       f"cover, with about {100 * states_missed:.0f}% of the mass: estimates "
                       "from q's draws miss it.")
        if states_missed >= MISSED_UNRELIABLE:
            return _verdict("not reliable", rec, reasons)
    unreached = _unreached(modes, rec, psis)
    if unreached:
        care = True
        reasons.append(unreached[1])
        if unreached[0] >= MISSED_UNRELIABLE:
            return _verdict("not reliable", rec, reasons)
    if _unsaturated(modes):
        care = True
        reasons.append(f"The fit's mode search was still finding new modes when its "
                       f"{modes.get('rounds', '?')} rounds ran out ({modes.get('found', 0)} "
                       "found): p likely has modes that no estimate here reached.")
    elif reduced_search(modes):
        care = True
        reasons.append(f"The fit's mode search was cut to {modes.get('starts', '?')} climbs to "
                       "stay within its budget (log p is costly): a mode the full search "
                       "would have reached may be missed, and log Z would then be low.")
    elif multimode_blind(dim, modes):  # before the dimension's reason: it says more
        care = True
        reasons.append(f"The fit's mode search found {modes['found']} separated modes; in "
                       f"d = {dim} a narrow mode among wider ones can escape it and AIS (on a "
                       "test mixture in d = 5 a 0.4-weight narrow mode was missed by both and "
                       "every estimate was 0.51 nats low), so log Z may be low.")
    elif modes and modes.get("states"):  # search_blind: no search over states vouches
        care = True
        reasons.append("The fit's search over states cannot rule out a mode it missed: "
                       f"{blind_states(modes.get('state_count') or math.inf)}. If p has such "
                       "a mode, log Z is low by the log of the share of the mass found.")
    elif search_blind(dim, modes):
        care = True
        reasons.append(f"In d = {dim} a separated mode can escape every search vifit runs "
                       f"({blind_evidence(dim)}): if p has modes that none reached, log Z is "
                       "low by the log of the share of the mass found.")
    return _verdict("usable with care" if care else "good", rec, reasons)


def _unreached(modes: dict | None, rec: Estimate | None, psis: Estimate | None
               ) -> tuple[float, str] | None:
    """``(share, reason)`` where the fit's mode search (continuous p) found modes q does not
    cover with at least ``MISSED_CARE`` of their Laplace mass and the recommended estimate
    reaches less than half of what that mass adds to log Z beyond importance sampling from q:
    AIS starts from q and its climbs only look beyond q's moments, so a mode inside them that
    q's mixture lost (a float32 spike-and-slab posterior, rotated: 35% of the mass, every
    estimate 0.41 nats low) went unnoticed; None otherwise. The part of covered modes that
    q's weighted draws do not see (``short_mass_fraction``) counts too, but toward "usable with
    care" only: the share returned is the uncovered modes'."""
    if not modes or modes.get("states") or rec is None:
        return None
    missed = float(modes.get("missed_mass_fraction") or 0.0)
    # and the part of covered modes that q's weighted draws do not see (the record's
    # short_mass_fraction: a Laplace estimate, so it alone never makes "not reliable")
    short = float(modes.get("short_mass_fraction") or 0.0)
    if not missed + short >= MISSED_CARE:
        return None
    worth = shortfall(missed + short, cap=1.0 - 1e-12)
    gain = (rec.estimate - psis.estimate if psis is not None and np.isfinite(psis.estimate)
            else 0.0)
    if np.isfinite(gain) and gain >= 0.5 * worth:
        return None
    head = (f"The fit's mode search found modes that q does not cover, with about "
            f"{100 * missed:.0f}% of their Laplace mass" if missed >= MISSED_CARE else
            "The fit's mode search found modes that q reaches")
    if short >= MISSED_CARE:
        head += (f"{' and' if missed >= MISSED_CARE else ','} modes whose Laplace mass q's "
                 f"weighted draws see only in part (about {100 * short:.0f}% of the whole "
                 "unseen)")
    head += f" (worth {worth:.2f} nats of log Z); "
    if rec is psis:
        return missed, head + "estimates from q's draws miss it, and log Z is likely low."
    return missed, head + (f"{rec.name} is {gain:.2f} nats above importance sampling from q, "
                           "so it does not reach that mass either, and log Z is likely low.")


def _judge_exact(estimates: dict[str, Estimate], exact: Estimate) -> EvidenceVerdict:
    """"good", recommending the sum over every state, with what it says of the estimates from
    q's draws: how far below it they are is the mass q misses."""
    states = exact.details.get("states", 0)
    reasons = [f"p was summed over all {states:,} states: log Z is exact up to the rounding of "
               f"log p (± {exact.se:.2g})."]
    psis = estimates.get("psis")
    if psis is not None and np.isfinite(psis.estimate):
        low = exact.estimate - psis.estimate
        if _gap(exact, psis) > Z_DISAGREE:
            reasons.append(f"Importance sampling from q is {low:.3f} nats low: q misses about "
                           f"{100 * -math.expm1(-low):.2g}% of p's mass, and summaries from "
                           "q's draws miss it too.")
        elif _gap(psis, exact) > Z_DISAGREE:
            reasons.append(f"Importance sampling from q is {-low:.3f} nats high, beyond its "
                           "standard error: q's weights are heavy-tailed and that error is "
                           "optimistic.")
        else:
            reasons.append("Importance sampling from q agrees with it within its error.")
    return _verdict("good", exact, reasons)


_AGREE = "The estimators agree within their errors and their diagnostics are clean."
_AIS_SKIPPED = ("AIS was not run: importance sampling from q cannot see modes that q misses, "
                "and neither can its k-hat.")
_EVERY_LOW = ("AIS does not find that mass either (it agrees with importance sampling from q), "
              "so every estimate from q's draws and AIS is too low.")


def _verdict(label: str, rec: Estimate, reasons: list[str]) -> EvidenceVerdict:
    head = f"{label}: log Z = {rec.estimate:.3f} ± {rec.se:.3f} by {rec.name}."
    if not reasons:
        reasons = [_AGREE]
    return EvidenceVerdict(label, rec.name, " ".join([head, *reasons]), tuple(reasons))


def judge_all(estimates: dict[str, Estimate], dim: int | None = None,
              modes: dict | None = None, tails: dict | None = None,
              precision: dict | None = None) -> EvidenceVerdict:
    """``judge``, capped by how finely log p is resolved (``precision``, a record of
    ``vifit.evidence.rounding``), with ``unverified`` filled in (``unverified_bounds``; where
    rounding makes the answer meaningless, ``rounding.unresolved``, no bound is stood behind)."""
    from vifit.evidence.rounding import (ROUNDED_CHECKS, float64_unverified, float64_verdict,
                                         rounding_verdict, unresolved)
    from vifit.modes import precision_hint

    verdict = judge(estimates, dim, modes, tails)
    if estimates[verdict.recommended].kind == "exact":
        # q's rounding and search do not touch a sum over every state
        return verdict._replace(unverified=unverified_bounds(estimates, verdict))
    cap = rounding_verdict(precision, verdict.label)
    if cap is not None:
        reasons = [r for r in verdict.reasons if r != _AGREE]
        verdict = _verdict(cap[0], estimates[verdict.recommended],
                           [f"{cap[1]} {ROUNDED_CHECKS}" if reasons else cap[1], *reasons])
    wider = (tails or {}).get("float64")
    cap = float64_verdict(wider, verdict.label)
    if cap is not None:
        verdict = _verdict(cap[0], estimates[verdict.recommended],
                           [cap[1], *(r for r in verdict.reasons if r != _AGREE)])
    hint = precision_hint(modes, (precision or {}).get("dtype", "float32"))
    if hint and verdict.label != "good":
        verdict = _verdict(verdict.label, estimates[verdict.recommended],
                           [r for r in verdict.reasons if r != _AGREE] + [hint])
    unverified = unverified_bounds(estimates, verdict, dim, modes, tails)
    taken = float64_unverified(wider)
    if taken is not None:
        unverified |= {n: taken[1] for n, e in estimates.items()
                       if e.kind == taken[0] and n not in unverified}
    if unresolved(precision):
        why = ("floating-point rounding (of log p, or of q's draws) is larger than the "
               "accuracy a bound needs")
        unverified |= {n: why for n, e in estimates.items()
                       if e.kind in ("lower", "upper") and n not in unverified}
    return verdict._replace(unverified=unverified)


def _unsaturated(modes: dict | None) -> bool:
    return bool(modes) and not modes.get("saturated", True)


def reduced_search(modes: dict | None) -> bool:
    """The fit's mode search was cut to stay within ``vifit.modes.SEARCH_FLOPS``."""
    return bool(modes) and bool(modes.get("reduced", False))
