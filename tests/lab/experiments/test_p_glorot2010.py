"""P-GLOROT2010: standard init shrinks tanh activations and gradients; normalized init does not."""

from __future__ import annotations

import pytest

from stabletrain.lab.experiments.p_glorot2010 import SAME, glorot2010
from tests.lab.experiments._init_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_standard_init_shrinks_both_ways_and_keeps_weight_gradients(seed: int) -> None:
    result = run(glorot2010, seed=seed)
    assert result.verdict.outcome == "holds"
    rows = result.tables[0].rows
    standard = [r for r in rows if r[0].startswith("standard")]
    normalized = [r for r in rows if r[0].startswith("normalized")]
    # standard: about 1/sqrt(3) per layer, both directions (4 layers: 0.11)
    assert standard[-1][2] / standard[0][2] == pytest.approx(3**-2, rel=0.25)
    assert standard[0][3] / standard[-1][3] == pytest.approx(3**-2, rel=0.25)
    weight_grads = [r[4] for r in standard]
    assert min(weight_grads) / max(weight_grads) > 0.8
    for column in (2, 3):
        values = [r[column] for r in normalized]
        assert min(values) / max(values) >= SAME


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    assert run(glorot2010, quick=False).verdict.outcome == "holds"
