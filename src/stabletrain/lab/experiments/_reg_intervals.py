"""Helpers of the staged regularization experiments (R1–R6, R10–R13): a measured field over the
seeds as prose, and a two-part verdict ("holds", else "holds with caveat" when a weaker part
holds) that keeps the interval of its numbers.

Example:
    >>> from dataclasses import dataclass
    >>> from stabletrain.lab import verdicts
    >>> from stabletrain.lab.estimate import Estimate
    >>> @dataclass(frozen=True)
    ... class M:
    ...     gap: float
    >>> describe([M(0.1), M(0.2), M(0.3)], "gap", ".2f")
    '0.20 ± 0.25 (95% CI, 3 seeds)'
    >>> describe([M(0.1)], "gap", ".2f")
    '0.10'
    >>> strict = verdicts.at_least(Estimate.of([0.0, 0.01, 0.02]), 0.02)
    >>> partial = verdicts.at_least(Estimate.of([0.3, 0.35, 0.4]), 0.2)
    >>> holds_or_partly(strict, partial).outcome
    'holds with caveat'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from stabletrain.lab.estimate import Estimate
from stabletrain.lab.experiment import Verdict

__all__ = ["describe", "estimate", "holds_or_partly"]


def estimate(ms: Sequence[object], name: str) -> Estimate:
    """The mean and 95% interval over the seeds of the measurements' field ``name``."""
    return Estimate.of(float(getattr(m, name)) for m in ms)


def describe(ms: Sequence[object], name: str, fmt: str) -> str:
    """Field ``name`` over the seeds: its value alone for one seed, else mean ± half-interval
    (both in ``fmt``, e.g. ``".3f"``) with the confidence level and the number of seeds."""
    e = estimate(ms, name)
    if e.n == 1:
        return f"{e.value:{fmt}}"
    return f"{e.value:{fmt}} ± {e.half_width:{fmt.lstrip('+')}} (95% CI, {e.n} seeds)"


def holds_or_partly(strict: Verdict, partial: Verdict) -> Verdict:
    """``strict`` if it holds; "holds with caveat" (on ``strict``'s numbers and interval) if
    only the weaker ``partial`` holds, e.g. a test-loss gap that shrinks while the accuracy gap
    does not; "inconclusive" if neither holds and either interval straddles its threshold;
    else ``strict`` ("does not hold").

    Unlike :func:`stabletrain.lab._reg_common.holds_or_caveat`, a ``partial`` that is itself
    inconclusive gives no caveat: the weaker claim must be established too.
    """
    if strict.outcome == "holds":
        return strict
    if partial.outcome == "holds":
        rule = f"{strict.rule}; caveat: only {partial.rule} ({partial.measured:.3g})"
        return dataclasses.replace(strict, outcome="holds with caveat", rule=rule)
    if "inconclusive" in (strict.outcome, partial.outcome):
        return dataclasses.replace(strict, outcome="inconclusive")
    return strict
