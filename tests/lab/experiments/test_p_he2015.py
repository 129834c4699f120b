"""P-HE2015: a 30-layer plain ReLU MLP stalls under Xavier and trains under He's init."""

from __future__ import annotations

import pytest

from stabletrain.lab.experiments.p_he2015 import CHANCE, TRAINS, he2015
from tests.lab.experiments._init_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_xavier_stalls_at_chance_and_he_trains(seed: int) -> None:
    result = run(he2015, seed=seed)
    assert result.verdict.outcome == "holds"
    rows = {row[0].split()[0]: row[1:] for row in result.tables[0].rows}
    xavier_loss, xavier_acc, xavier_signal = rows["Xavier"]
    he_loss, he_acc, he_signal = rows["He"]
    assert xavier_loss == pytest.approx(CHANCE, abs=0.01)
    assert xavier_acc < 0.15
    assert xavier_signal < 1e-3 * he_signal  # 2^-15 of the input-dependent signal is left
    assert he_loss < TRAINS
    assert he_acc > 0.6


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    assert run(he2015, quick=False).verdict.outcome == "holds"
