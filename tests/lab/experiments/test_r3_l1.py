"""Claim R3: L1's constant shrink, exact zeros with the proximal step, feature selection.

``decide`` is tested on hand-made measurements (clear and borderline); ``measure`` at quick size
once (a module fixture shared by the field checks and the verdict check).
"""

from __future__ import annotations

import dataclasses

import pytest

from stabletrain.lab.experiment import REGISTRY, Context
from stabletrain.lab.experiments import r3_l1
from tests.lab.experiments._reg_checks import assert_well_formed, run


def _m(jaccard: float = 1.0, zeros: float = 1.0, l1_vs_l2: float = 27.0) -> r3_l1.L1Selection:
    return r3_l1.L1Selection(jaccard, zeros, l1_vs_l2, 0, 5, steps=200)


@pytest.mark.parametrize(
    ("ms", "outcome"),
    [
        ([_m(), _m(), _m()], "holds"),
        ([_m(jaccard=5 / 6)] * 3, "does not hold"),  # an irrelevant input kept on every seed
        ([_m(), _m(), _m(jaccard=5 / 6)], "inconclusive"),  # 0.94 ± 0.24 straddles 1
        ([_m(zeros=z) for z in (0.5, 0.6, 0.55)], "does not hold"),  # no exact zeros
        ([_m(zeros=z) for z in (0.9, 0.97, 1.0)], "inconclusive"),  # straddles 0.95
        ([_m(l1_vs_l2=r) for r in (1.0, 1.2, 1.1)], "does not hold"),  # L1 no harder than L2
        ([_m(l1_vs_l2=r) for r in (2.0, 3.0, 5.0)], "inconclusive"),  # straddles 3
    ],
)
def test_r3_decide(ms: list[r3_l1.L1Selection], outcome: str) -> None:
    assert r3_l1.L1SelectsFeatures().decide(ms).outcome == outcome


@pytest.fixture(scope="module")
def quick_runs() -> tuple[r3_l1.L1Selection, ...]:
    return r3_l1.L1SelectsFeatures().measure_all(Context(quick=True, seed=0))


def test_r3_proximal_l1_keeps_exactly_the_informative_inputs(
    quick_runs: tuple[r3_l1.L1Selection, ...],
) -> None:
    m = quick_runs[0]
    assert m.kept == m.informative  # measured on all three quick seeds, from ctx seeds 0 and 1
    assert len(m.informative) == r3_l1.N_INFORMATIVE
    by_penalty = {r.penalty: r for r in m.rows}
    assert by_penalty["proximal L1 (SGD)"].inputs_kept == r3_l1.N_INFORMATIVE
    assert by_penalty["subgradient L1 in the loss"].zeros == 0  # no exact zero without prox
    assert by_penalty["none"].inputs_kept == r3_l1.N_INPUTS
    assert m.l1_vs_l2 > 10  # measured 28
    # one step on the penalty alone: L1 moves every size by η·λ, L2 by η·λ·|w|
    for size, l1_move, l2_move in m.moves:
        assert l1_move == pytest.approx(r3_l1.LR * r3_l1.LAMBDA, rel=1e-9)
        assert l2_move == pytest.approx(r3_l1.LR * r3_l1.LAMBDA_L2 * size, rel=1e-9)


def test_r3_quick_verdict(quick_runs: tuple[r3_l1.L1Selection, ...]) -> None:
    result = dataclasses.replace(r3_l1.L1SelectsFeatures().result(quick_runs), claim_id="R3")
    assert_well_formed(result, REGISTRY["R3"])
    assert result.verdict.outcome == "holds"
    assert result.verdict.seeds == 3


@pytest.mark.slow
def test_r3_full_mode_gives_the_same_verdict() -> None:
    assert run(REGISTRY["R3"], seed=0, quick=False).verdict.outcome == "holds"
