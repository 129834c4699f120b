"""I9: orthogonal recurrent weights keep gradients flowing, where tanh stays linear."""

from __future__ import annotations

import pytest

from stabletrain.lab.experiments.i9_recurrent import orthogonal_recurrent
from tests.lab.experiments._init_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_orthogonal_keeps_the_gradient_in_the_linear_regime_only(seed: int) -> None:
    result = run(orthogonal_recurrent, seed=seed)
    rows = {(r[0].split()[0], r[1].split()[0]): r[2:] for r in result.tables[0].rows}
    lo, hi = rows["near-linear", "orthogonal"][1:]
    assert -0.3 < lo <= hi < 0.3  # all singular values 1: the norm is kept exactly
    assert rows["near-linear", "PyTorch"][0] < -10  # gain 1/sqrt(3) per step, 100 steps
    # once tanh saturates, orthogonal and Xavier both lose many decades
    assert rows["standardized", "orthogonal"][0] < -3
    assert rows["standardized", "Xavier"][0] < -3
    assert result.verdict.outcome == "holds with caveat"


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    assert run(orthogonal_recurrent, quick=False).verdict.outcome == "holds with caveat"
