"""Claim R3: L1's constant shrink, exact zeros with the proximal step, feature selection."""

from __future__ import annotations

import pytest

from stabletrain.lab.experiments import r3_l1
from tests.lab.experiments._reg_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_r3_proximal_l1_keeps_exactly_the_informative_inputs(seed: int) -> None:
    result = run(r3_l1.l1_selects_features, seed=seed)
    assert result.verdict.outcome == "holds"
    moves = result.tables[0].rows
    assert len({row[1] for row in moves}) == 1  # L1 moves every size by the same η·λ
    assert len({row[2] for row in moves}) == len(moves)  # L2's move grows with |w|
    by_penalty = {row[0]: row for row in result.tables[1].rows}
    assert by_penalty["proximal L1 (SGD)"][3] == r3_l1.N_INFORMATIVE  # inputs kept
    assert by_penalty["subgradient L1 in the loss"][1] == 0  # no exact zero without prox
    assert by_penalty["none"][3] == r3_l1.N_INPUTS


@pytest.mark.slow
def test_r3_full_mode_gives_the_same_verdict() -> None:
    assert run(r3_l1.l1_selects_features, seed=0, quick=False).verdict.outcome == "holds"
