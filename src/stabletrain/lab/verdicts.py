"""Verdicts from numbers: a measured value against a threshold written next to the experiment.

Every function returns a :class:`~stabletrain.lab.experiment.Verdict`: ``"holds"`` when the
measurement passes the strict threshold, ``"holds with caveat"`` when it passes only the looser
``caveat`` threshold (the claim is true in direction but weaker, or only in part), ``"does not
hold"`` otherwise. A NaN measurement never holds.

Example:
    >>> at_most(0.03, 0.05).outcome
    'holds'
    >>> at_least(1.6, 2.0, caveat=1.2).outcome
    'holds with caveat'
    >>> close_to(0.5, 1/3, rel_tol=0.1).outcome
    'does not hold'
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from stabletrain.lab.experiment import OUTCOMES, Outcome, Verdict

__all__ = ["at_least", "at_most", "close_to", "weakest"]


def _check(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"verdicts: {name} must be a real number, got {type(value).__name__}.")
    return float(value)


def at_most(measured: float, bound: float, *, caveat: float | None = None) -> Verdict:
    """Holds when ``measured <= bound``; with caveat when ``measured <= caveat`` (> bound)."""
    m, b = _check("measured", measured), _check("bound", bound)
    if caveat is not None and _check("caveat", caveat) < b:
        raise ValueError(f"at_most: caveat ({caveat}) must be >= bound ({bound}).")
    outcome: Outcome = "does not hold"
    if m <= b:
        outcome = "holds"
    elif caveat is not None and m <= caveat:
        outcome = "holds with caveat"
    rule = f"measured <= {b:g}" + ("" if caveat is None else f" (caveat <= {caveat:g})")
    return Verdict(outcome, m, b, rule)


def at_least(measured: float, bound: float, *, caveat: float | None = None) -> Verdict:
    """Holds when ``measured >= bound``; with caveat when ``measured >= caveat`` (< bound)."""
    m, b = _check("measured", measured), _check("bound", bound)
    if caveat is not None and _check("caveat", caveat) > b:
        raise ValueError(f"at_least: caveat ({caveat}) must be <= bound ({bound}).")
    outcome: Outcome = "does not hold"
    if m >= b:
        outcome = "holds"
    elif caveat is not None and m >= caveat:
        outcome = "holds with caveat"
    rule = f"measured >= {b:g}" + ("" if caveat is None else f" (caveat >= {caveat:g})")
    return Verdict(outcome, m, b, rule)


def close_to(
    measured: float, target: float, *, rel_tol: float, caveat_rel_tol: float | None = None
) -> Verdict:
    """Holds when ``|measured − target| <= rel_tol·|target|``; caveat with a looser tolerance.

    ``Verdict.measured`` is the relative error, ``threshold`` the tolerance.
    """
    m, t = _check("measured", measured), _check("target", target)
    tol = _check("rel_tol", rel_tol)
    if caveat_rel_tol is not None:
        _check("caveat_rel_tol", caveat_rel_tol)
    if tol < 0 or (caveat_rel_tol is not None and caveat_rel_tol < tol):
        raise ValueError(
            f"close_to: need 0 <= rel_tol ({rel_tol}) <= caveat_rel_tol ({caveat_rel_tol})."
        )
    err = abs(m - t) / abs(t) if t != 0 else abs(m)
    outcome: Outcome = "does not hold"
    if err <= tol:
        outcome = "holds"
    elif caveat_rel_tol is not None and err <= caveat_rel_tol:
        outcome = "holds with caveat"
    rule = f"|measured - {t:.4g}| / |{t:.4g}| <= {tol:g}" + (
        "" if caveat_rel_tol is None else f" (caveat <= {caveat_rel_tol:g})"
    )
    if math.isnan(err):
        outcome = "does not hold"
    return Verdict(outcome, err, tol, rule)


def weakest(verdicts: Sequence[Verdict]) -> Verdict:
    """The weakest of several verdicts (a claim with parts holds only as far as each part)."""
    if not verdicts:
        raise ValueError("weakest: give at least one verdict.")
    return max(verdicts, key=lambda v: OUTCOMES.index(v.outcome))
