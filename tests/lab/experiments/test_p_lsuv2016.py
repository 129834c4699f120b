"""P-LSUV2016: LSUV puts every layer at unit std and trains a deep thin ReLU MLP faster."""

from __future__ import annotations

import pytest

from stabletrain.lab.experiments.p_lsuv2016 import TOL, lsuv2016
from tests.lab.experiments._init_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_lsuv_unit_std_per_layer_and_faster_early_training(seed: int) -> None:
    result = run(lsuv2016, seed=seed)
    assert result.verdict.outcome == "holds"
    stds = result.tables[0].rows
    assert len(stds) == 21  # 20 hidden layers and the head
    assert all(deviation <= TOL for _, _, deviation, _ in stds)
    assert all(abs(other - 1.0) < 0.5 for *_, other in stds)  # close on other rows too
    loss = {row[0]: row[1] for row in result.tables[1].rows}
    assert loss["LSUV"] < loss["He (MSRA)"]
    assert loss["Xavier"] > 2.0  # 1/sqrt(2) per ReLU layer: stalls in this budget


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    assert run(lsuv2016, quick=False).verdict.outcome == "holds"
