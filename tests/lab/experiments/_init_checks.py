"""Checks shared by the tests of the initialization experiments (I1–I11, published init results)."""

from __future__ import annotations

import math

from stabletrain.lab import OUTCOMES, Context, Experiment, Result


def run(exp: Experiment, *, seed: int = 0, quick: bool = True) -> Result:
    """Run ``exp`` and check that its result is well formed before returning it."""
    result = exp.run(Context(quick=quick, seed=seed))
    assert_well_formed(result, exp)
    return result


def assert_well_formed(result: Result, exp: Experiment) -> None:
    """A verdict from a finite measurement, a key number, an explanation and a non-empty table."""
    assert result.claim_id == exp.ids[0]
    assert result.verdict.outcome in OUTCOMES
    assert math.isfinite(result.verdict.measured)
    assert result.key_number
    assert "Claim" in result.explanation or "Paper" in result.explanation
    assert result.tables
    assert all(table.rows for table in result.tables)
    for figure in result.figures:
        assert figure.series
        for xs, ys in figure.series.values():
            assert len(xs) == len(ys) > 0
