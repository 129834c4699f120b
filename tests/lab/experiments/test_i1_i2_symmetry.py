"""I1 and I2: constant init keeps hidden units identical; random init and dropout break it."""

from __future__ import annotations

from typing import Any

import pytest

from stabletrain.lab.experiments.i1_i2_symmetry import (
    BROKEN,
    SYMMETRY_TOL,
    constant_init_symmetry,
    symmetry_breaking,
)
from tests.lab.experiments._init_checks import run


def _spreads(rows: tuple[tuple[Any, ...], ...]) -> dict[str, float]:
    return {f"{r[0]}/{r[1]}": max(float(r[2]), float(r[3])) for r in rows}


@pytest.mark.parametrize("seed", [0, 1])
def test_constant_and_zero_init_keep_every_hidden_unit_identical(seed: int) -> None:
    result = run(constant_init_symmetry, seed=seed)
    assert result.verdict.outcome == "holds"
    spreads = _spreads(result.tables[0].rows)
    assert len(spreads) == 4
    assert all(s <= SYMMETRY_TOL for s in spreads.values())


@pytest.mark.parametrize("seed", [0, 1])
def test_random_init_and_dropout_break_symmetry_but_not_an_all_zero_init(seed: int) -> None:
    result = run(symmetry_breaking, seed=seed)
    spreads = _spreads(result.tables[0].rows)
    assert spreads["random (Xavier)/tanh"] >= 100 * BROKEN
    assert spreads["constant/tanh"] <= SYMMETRY_TOL
    assert spreads["constant + dropout 0.5/tanh"] >= BROKEN
    # zero weights give exactly zero hidden gradients: dropout has nothing to break
    assert spreads["zero + dropout 0.5/tanh"] == 0.0
    assert result.verdict.outcome == "holds with caveat"


@pytest.mark.slow
def test_full_mode_gives_the_same_verdicts() -> None:
    assert run(constant_init_symmetry, quick=False).verdict.outcome == "holds"
    assert run(symmetry_breaking, quick=False).verdict.outcome == "holds with caveat"
