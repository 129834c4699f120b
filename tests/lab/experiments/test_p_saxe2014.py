"""P-SAXE2014: orthogonal deep linear nets learn in nearly depth-independent time; Gaussian not."""

from __future__ import annotations

import pytest

from stabletrain.lab.experiments.p_saxe2014 import saxe2014
from tests.lab.experiments._init_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_orthogonal_time_barely_grows_and_gaussian_stalls_with_depth(seed: int) -> None:
    result = run(saxe2014, seed=seed)
    steps = {(row[0].split()[0], row[1]): row[2] for row in result.tables[0].rows}
    # orthogonal: every depth reaches the criterion within a few dozen steps
    assert all(steps["orthogonal", d] < 100 for d in (4, 8, 16))
    # scaled Gaussian: learns at depth 4, slower than orthogonal, and stalls deeper
    assert steps["orthogonal", 4] < steps["scaled", 4] < 300
    assert steps["scaled", 16] == 300  # the cap: never reached
    assert result.verdict.outcome == "holds"


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    assert run(saxe2014, quick=False).verdict.outcome == "holds"
