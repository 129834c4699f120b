"""Checks shared by the tests of the regularization experiments (R1–R14, P-ADAMW2019,
P-DROPOUT2014): a result is well formed, and a run in a given mode and seed."""

from __future__ import annotations

import math

from stabletrain.lab.experiment import OUTCOMES, Context, Experiment, Result


def run(exp: Experiment, *, seed: int, quick: bool = True) -> Result:
    """Run ``exp`` and check that its result is well formed."""
    result = exp.run(Context(quick=quick, seed=seed))
    assert_well_formed(result, exp)
    return result


def assert_well_formed(result: Result, exp: Experiment) -> None:
    """A verdict from a finite number, a key number, an explanation quoting the claim, a table."""
    assert result.claim_id == exp.ids[0]
    assert result.verdict.outcome in OUTCOMES
    assert math.isfinite(result.verdict.measured)
    assert result.key_number.strip()
    assert result.explanation.startswith("Claim") or result.explanation.startswith("Paper")
    assert result.tables, "at least one table of the numbers behind the verdict"
    for table in result.tables:
        assert table.rows
    for figure in result.figures:
        for xs, ys in figure.series.values():
            assert len(xs) == len(ys) > 0
            assert all(math.isfinite(float(v)) for v in ys)
