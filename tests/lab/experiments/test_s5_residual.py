"""S5: plain vs residual ReLU MLPs over depth, and the looks-linear plain net that needs no skip."""

from __future__ import annotations

import pytest

from stabletrain.lab.experiments.s5_residual import NEED_GAP, residual_depth
from tests.lab.experiments._init_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_residual_nets_train_deep_where_plain_he_nets_stall(seed: int) -> None:
    result = run(residual_depth, seed=seed)
    # strongly needed with He init; the caveat: a looks-linear plain net trains as deep
    assert result.verdict.outcome == "holds with caveat"
    acc = {(r[0], r[1]): r[3] for r in result.tables[0].rows}
    assert acc["residual", 30] - acc["plain", 30] >= NEED_GAP
    assert acc["residual", 10] > 0.9
    assert acc["residual", 30] > 0.9
    assert acc["plain, looks-linear", 30] > 0.9


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    result = run(residual_depth, quick=False)
    assert result.verdict.outcome == "holds with caveat"
    acc = {(r[0], r[1]): r[3] for r in result.tables[0].rows}
    assert acc["plain", 50] < acc["plain", 20] < acc["plain", 10] + 0.05
