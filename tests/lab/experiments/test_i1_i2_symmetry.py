"""I1 and I2: constant init keeps hidden units identical; random init and dropout break it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stabletrain.lab import Context
from stabletrain.lab.experiment import REGISTRY
from stabletrain.lab.experiments.i1_i2_symmetry import (
    BROKEN,
    SYMMETRY_TOL,
    ConstantInit,
    ConstantInitSymmetry,
    SymmetryBreaking,
    SymmetryBroken,
)
from tests.lab.experiments._init_checks import run

CONSTANT = ConstantInit(0.0, 0.2, 0.0, 200)
BROKEN_M = SymmetryBroken(5.0, 0.0, 0.7, 0.0, 0.9, 0.2)


@pytest.mark.parametrize(
    ("spreads", "outcome"),
    [
        ([0.0, 0.0, 0.0], "holds"),
        ([1e-7, 3e-7, 2e-7], "holds"),
        ([0.0, 1e-6, 2e-6], "inconclusive"),  # 1e-6 ± 2.5e-6 straddles the tolerance
        ([0.5, 0.6, 0.7], "does not hold"),
    ],
)
def test_i1_holds_only_for_identical_rows(spreads: list[float], outcome: str) -> None:
    ms = [replace(CONSTANT, worst_spread=s) for s in spreads]
    assert ConstantInitSymmetry().decide(ms).outcome == outcome


@pytest.mark.parametrize(
    ("dropout", "zero", "outcome"),
    [
        ([0.7, 0.8, 0.9], [0.0, 0.0, 0.0], "holds with caveat"),  # zero init stays symmetric
        ([0.7, 0.8, 0.9], [0.5, 0.6, 0.7], "holds"),  # dropout would break even zero init
        ([0.0, 0.01, 0.03], [0.0, 0.0, 0.0], "inconclusive"),  # 0.013 ± 0.038 straddles 0.01
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], "does not hold"),
    ],
)
def test_i2_needs_random_init_and_dropout_to_break_the_rows(
    dropout: list[float], zero: list[float], outcome: str
) -> None:
    ms = [
        replace(BROKEN_M, dropout_spread=d, zero_dropout_spread=z)
        for d, z in zip(dropout, zero, strict=True)
    ]
    verdict = SymmetryBreaking().decide(ms)
    assert verdict.outcome == outcome
    assert verdict.threshold == BROKEN


def test_constant_and_zero_init_keep_every_hidden_unit_identical() -> None:
    m = ConstantInitSymmetry().measure(Context(quick=True, seed=1))
    assert len(m.runs) == 4
    assert {(r.setting, r.activation) for r in m.runs} == {
        (s, a) for s in ("zero", "constant") for a in ("tanh", "relu")
    }
    assert all(s <= SYMMETRY_TOL for r in m.runs for s in r.spreads)  # bit-identical rows
    assert m.zero_largest_weight == 0.0  # a zero next layer: every hidden gradient is 0
    assert m.best_accuracy < 0.5  # one unit per layer cannot fit ten classes


def test_random_init_and_dropout_break_symmetry_but_not_an_all_zero_init() -> None:
    m = SymmetryBreaking().measure(Context(quick=True, seed=1))
    assert m.random_spread >= 100 * BROKEN  # Xavier rows differ by the order of the weights
    assert m.constant_spread <= SYMMETRY_TOL
    assert m.dropout_spread >= 10 * BROKEN
    # zero weights give exactly zero hidden gradients: dropout has nothing to break
    assert m.zero_dropout_spread == 0.0
    assert m.random_accuracy > m.dropout_accuracy + 0.3


def test_the_quick_runs_give_their_verdicts_on_three_seeds() -> None:
    i1 = run(REGISTRY["I1"])
    assert (i1.verdict.outcome, i1.verdict.seeds) == ("holds", 3)
    i2 = run(REGISTRY["I2"])
    assert (i2.verdict.outcome, i2.verdict.seeds) == ("holds with caveat", 3)


@pytest.mark.slow
def test_full_mode_gives_the_same_verdicts() -> None:
    assert run(REGISTRY["I1"], quick=False).verdict.outcome == "holds"
    assert run(REGISTRY["I2"], quick=False).verdict.outcome == "holds with caveat"
