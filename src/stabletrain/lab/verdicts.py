"""Verdicts from numbers: a measured value against a threshold written next to the experiment.

Every function returns a :class:`~stabletrain.lab.experiment.Verdict`: ``"holds"`` when the
measurement passes the strict threshold, ``"holds with caveat"`` when it passes only the looser
``caveat`` threshold (the claim is true in direction but weaker, or only in part), ``"does not
hold"`` otherwise. A NaN measurement never holds.

A measurement over several seeds is an :class:`~stabletrain.lab.estimate.Estimate` (mean and
95% interval); the whole interval must pass a threshold for the verdict that threshold gives.
When it straddles the threshold that separates two verdicts, the verdict is ``"inconclusive"``
(this many seeds at this scale cannot tell), except between "holds" and "holds with caveat",
where an interval that passes the caveat threshold reads "holds with caveat".

Example:
    >>> at_most(0.03, 0.05).outcome
    'holds'
    >>> at_least(1.6, 2.0, caveat=1.2).outcome
    'holds with caveat'
    >>> close_to(0.5, 1/3, rel_tol=0.1).outcome
    'does not hold'
    >>> at_most(Estimate.of([0.02, 0.04, 0.07]), 0.05).outcome  # 0.043 ± 0.062
    'inconclusive'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from stabletrain.lab.estimate import Estimate
from stabletrain.lab.experiment import OUTCOMES, Outcome, Verdict

__all__ = [
    "at_least",
    "at_most",
    "close_to",
    "holds_or_partly",
    "weakened_by",
    "weakest",
    "with_caveat",
]

Measurement = float | Estimate


def _check(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"verdicts: {name} must be a real number, got {type(value).__name__}.")
    return float(value)


def _estimate(name: str, value: Measurement) -> Estimate:
    if isinstance(value, Estimate):
        return value
    return Estimate.exact(_check(name, value))


def _outcome_at_most(e: Estimate, bound: float, caveat: float | None) -> Outcome:
    """The outcome of ``e <= bound`` (caveat: ``<= caveat``) for the whole interval."""
    if math.isnan(e.value) or math.isnan(e.high):
        return "does not hold"
    loosest = bound if caveat is None else caveat
    if e.high <= bound:
        return "holds"
    if caveat is not None and e.high <= caveat:
        return "holds with caveat"
    if e.low > loosest:
        return "does not hold"
    return "inconclusive"


def _verdict(outcome: Outcome, e: Estimate, threshold: float, rule: str) -> Verdict:
    if e.n <= 1:  # a single measurement: no interval
        return Verdict(outcome, e.value, threshold, rule)
    return Verdict(outcome, e.value, threshold, rule, low=e.low, high=e.high, seeds=e.n)


def at_most(measured: Measurement, bound: float, *, caveat: float | None = None) -> Verdict:
    """Holds when ``measured <= bound``; with caveat when ``measured <= caveat`` (> bound).

    ``measured`` is a number or an :class:`Estimate` over seeds (then its whole interval
    decides; one that straddles the loosest threshold is ``"inconclusive"``).
    """
    e, b = _estimate("measured", measured), _check("bound", bound)
    if caveat is not None and _check("caveat", caveat) < b:
        raise ValueError(f"at_most: caveat ({caveat}) must be >= bound ({bound}).")
    rule = f"measured <= {b:g}" + ("" if caveat is None else f" (caveat <= {caveat:g})")
    return _verdict(_outcome_at_most(e, b, caveat), e, b, rule)


def at_least(measured: Measurement, bound: float, *, caveat: float | None = None) -> Verdict:
    """Holds when ``measured >= bound``; with caveat when ``measured >= caveat`` (< bound).

    ``measured`` is a number or an :class:`Estimate` (see :func:`at_most`).
    """
    e, b = _estimate("measured", measured), _check("bound", bound)
    if caveat is not None and _check("caveat", caveat) > b:
        raise ValueError(f"at_least: caveat ({caveat}) must be <= bound ({bound}).")
    mirrored = Estimate(-e.value, -e.high, -e.low, e.n) if not math.isnan(e.value) else e
    outcome = _outcome_at_most(mirrored, -b, None if caveat is None else -caveat)
    rule = f"measured >= {b:g}" + ("" if caveat is None else f" (caveat >= {caveat:g})")
    return _verdict(outcome, e, b, rule)


def _relative_error(e: Estimate, target: float) -> Estimate:
    """The interval of ``|x − target| / |target|`` for ``x`` in ``e``'s interval."""
    scale = abs(target) if target != 0 else 1.0
    ends = (abs(e.low - target) / scale, abs(e.high - target) / scale)
    value = abs(e.value - target) / scale
    low = 0.0 if e.low <= target <= e.high else min(ends)
    return Estimate(value, min(low, value), max(*ends, value), e.n)


def close_to(
    measured: Measurement,
    target: float,
    *,
    rel_tol: float,
    caveat_rel_tol: float | None = None,
) -> Verdict:
    """Holds when ``|measured − target| <= rel_tol·|target|``; caveat with a looser tolerance.

    ``Verdict.measured`` is the relative error (its interval from ``measured``'s, for an
    :class:`Estimate`), ``threshold`` the tolerance.
    """
    e, t = _estimate("measured", measured), _check("target", target)
    tol = _check("rel_tol", rel_tol)
    if caveat_rel_tol is not None:
        _check("caveat_rel_tol", caveat_rel_tol)
    if tol < 0 or (caveat_rel_tol is not None and caveat_rel_tol < tol):
        raise ValueError(
            f"close_to: need 0 <= rel_tol ({rel_tol}) <= caveat_rel_tol ({caveat_rel_tol})."
        )
    err = _relative_error(e, t) if not math.isnan(e.value) else e
    rule = f"|measured - {t:.4g}| / |{t:.4g}| <= {tol:g}" + (
        "" if caveat_rel_tol is None else f" (caveat <= {caveat_rel_tol:g})"
    )
    return _verdict(_outcome_at_most(err, tol, caveat_rel_tol), err, tol, rule)


def weakest(verdicts: Sequence[Verdict]) -> Verdict:
    """The weakest of several verdicts (a claim with parts holds only as far as each part);
    among equally weak ones the first, so list the key part first: its number is reported."""
    if not verdicts:
        raise ValueError("weakest: give at least one verdict.")
    return max(verdicts, key=lambda v: OUTCOMES.index(v.outcome))


# --- combining the parts of a claim -------------------------------------------------------
#
# A claim often has a main part and a secondary one. These fold the secondary verdict into the
# main one so that an inconclusive part makes the claim inconclusive instead of letting the
# verdict flip with the seed; each keeps the main part's number and interval.


def holds_or_partly(strict: Verdict, partial: Verdict) -> Verdict:
    """``strict`` if it holds; "holds with caveat" if only the weaker ``partial`` holds (e.g. a
    test-loss gap that shrinks while the accuracy gap does not); "inconclusive" if neither
    holds and either is inconclusive; else ``strict``.

    Example:
        >>> strict = at_least(Estimate.of([0.0, 0.01, 0.02]), 0.02)
        >>> partial = at_least(Estimate.of([0.3, 0.35, 0.4]), 0.2)
        >>> holds_or_partly(strict, partial).outcome
        'holds with caveat'
    """
    if strict.outcome == "holds":
        return strict
    if partial.outcome == "holds":
        rule = f"{strict.rule}; caveat: only {partial.rule} ({partial.measured:.3g})"
        return replace(strict, outcome="holds with caveat", rule=rule)
    if "inconclusive" in (strict.outcome, partial.outcome):
        return replace(strict, outcome="inconclusive")
    return strict


def with_caveat(main: Verdict, applies: Verdict, note: str) -> Verdict:
    """``main``, weakened to "holds with caveat" when ``applies`` holds (the caveat is real).

    A holding ``main`` becomes "inconclusive" when ``applies`` is (its interval straddles the
    caveat's threshold); a ``main`` that does not hold, or is inconclusive, is left as it is.

    Example:
        >>> main = at_most(0.01, 0.05)
        >>> with_caveat(main, at_least(0.2, 0.1), "off by 20%").outcome
        'holds with caveat'
        >>> with_caveat(main, at_least(0.05, 0.1), "fine").outcome
        'holds'
    """
    if main.outcome not in ("holds", "holds with caveat"):
        return main
    if applies.outcome in ("holds", "holds with caveat"):
        return replace(main, outcome="holds with caveat", rule=f"{main.rule}; caveat: {note}")
    if applies.outcome == "inconclusive":
        return replace(main, outcome="inconclusive", rule=f"{main.rule}; caveat unsure: {note}")
    return main


def weakened_by(main: Verdict, part: Verdict, note: str) -> Verdict:
    """``main`` no stronger than ``part``, a secondary part of the claim, keeping ``main``'s
    number: a holding ``main`` reads "holds with caveat" when ``part`` does, and takes
    ``part``'s outcome when that is "inconclusive" or "does not hold"; ``note`` says why.

    Example:
        >>> weakened_by(at_most(0.01, 0.05), at_most(0.08, 0.05, caveat=0.2), "part").outcome
        'holds with caveat'
    """
    if main.outcome not in ("holds", "holds with caveat") or part.outcome == "holds":
        return main
    if part.outcome == "holds with caveat":
        return replace(main, outcome="holds with caveat", rule=f"{main.rule}; caveat: {note}")
    return replace(main, outcome=part.outcome, rule=f"{main.rule}; {part.outcome}: {note}")
