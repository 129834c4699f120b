"""A claim that holds, but with a caveat decided on its own interval (claims S1–S6).

Several stability claims hold in their main part and carry a caveat measured separately (the
mean-field fit is off, a mismatched init vanishes as well, a bounded step can still wreck
training). Each caveat is a :class:`~stabletrain.lab.experiment.Verdict` of its own whose
"holds" means *the caveat applies*; :func:`with_caveat` folds it into the main verdict so that a
caveat whose interval straddles its threshold makes the claim "inconclusive" instead of
flipping between "holds" and "holds with caveat" with the seed.

Example:
    >>> from stabletrain.lab import verdicts
    >>> main = verdicts.at_most(0.01, 0.05)
    >>> with_caveat(main, verdicts.at_least(0.2, 0.1), "off by 20%").outcome
    'holds with caveat'
    >>> with_caveat(main, verdicts.at_least(0.05, 0.1), "fine").outcome
    'holds'
    >>> weakened_by(main, verdicts.at_most(0.08, 0.05, caveat=0.2), "part").outcome
    'holds with caveat'
"""

from __future__ import annotations

from dataclasses import replace

from stabletrain.lab.experiment import Verdict

__all__ = ["weakened_by", "with_caveat"]


def with_caveat(main: Verdict, applies: Verdict, note: str) -> Verdict:
    """``main``, weakened to "holds with caveat" when ``applies`` holds (the caveat is real).

    A holding ``main`` becomes "inconclusive" when ``applies`` is (its interval straddles the
    caveat's threshold); a ``main`` that does not hold, or is inconclusive, is left as it is.
    """
    if main.outcome not in ("holds", "holds with caveat"):
        return main
    if applies.outcome in ("holds", "holds with caveat"):
        return replace(main, outcome="holds with caveat", rule=f"{main.rule}; caveat: {note}")
    if applies.outcome == "inconclusive":
        return replace(main, outcome="inconclusive", rule=f"{main.rule}; caveat unsure: {note}")
    return main


def weakened_by(main: Verdict, part: Verdict, note: str) -> Verdict:
    """``main`` no stronger than ``part``, a secondary part of the claim, keeping ``main``'s number.

    A holding ``main`` reads "holds with caveat" when ``part`` does, and takes ``part``'s
    outcome when that is "inconclusive" or "does not hold"; ``note`` says why in the rule.
    """
    if main.outcome not in ("holds", "holds with caveat") or part.outcome == "holds":
        return main
    if part.outcome == "holds with caveat":
        return replace(main, outcome="holds with caveat", rule=f"{main.rule}; caveat: {note}")
    return replace(main, outcome=part.outcome, rule=f"{main.rule}; {part.outcome}: {note}")
