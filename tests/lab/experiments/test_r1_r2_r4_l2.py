"""Claims R1, R2, R4: L2 = weight decay under SGD, not under Adam; the λ/n form's shrink factor.

``decide`` is tested on hand-made measurements (clear and borderline); ``measure`` once per claim
at quick size (a module fixture shared by the field checks and the verdict check).
"""

from __future__ import annotations

import dataclasses

import pytest

from stabletrain.lab.experiment import REGISTRY, Context
from stabletrain.lab.experiments import r1_r2_r4_l2 as l2
from tests.lab.experiments._reg_checks import assert_well_formed, run

QUICK = Context(quick=True, seed=0)


def _r1(worst64: float = 4e-16, worst32: float = 2e-7, control: float = 0.3) -> l2.L2DecayRuns:
    return l2.L2DecayRuns(worst64, worst32, control, no_half=0.1, steps=60)


def _r2(spread: float = 7.0, distance: float = 0.3) -> l2.AdamDecay:
    return l2.AdamDecay(spread, distance, 2.0, 0.5, 1.0, 3.5, steps=100, n_train=200)


# --- decide on hand-made measurements ---------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "outcome"),
    [
        ([_r1()], "holds"),  # rounding only
        ([_r1(worst64=1e-9)], "does not hold"),  # float64 runs apart: not the same step
        ([_r1(worst32=1e-3)], "does not hold"),
        ([_r1(control=1e-4)], "does not hold"),  # the control too close: the test proves nothing
        ([_r1(worst64=w) for w in (1e-13, 5e-13, 2.5e-12)], "inconclusive"),  # straddles 1e-12
    ],
)
def test_r1_decide(ms: list[l2.L2DecayRuns], outcome: str) -> None:
    assert l2.L2EqualsDecayUnderSgd().decide(ms).outcome == outcome


@pytest.mark.parametrize(
    ("ms", "outcome"),
    [
        ([_r2(6.5), _r2(7.2), _r2(7.8)], "holds"),
        ([_r2(1.5), _r2(1.6), _r2(1.7)], "does not hold"),  # Adam + L2 decays evenly
        ([_r2(2.0), _r2(3.0), _r2(5.0)], "inconclusive"),  # 3.3 ± 3.8 straddles 3
        ([_r2(distance=0.01), _r2(distance=0.02), _r2(distance=0.015)], "does not hold"),
    ],
)
def test_r2_decide(ms: list[l2.AdamDecay], outcome: str) -> None:
    assert l2.AdamL2DiffersFromAdamW().decide(ms).outcome == outcome


def test_r4_decide() -> None:
    decide = l2.L2MeanFormShrinkScalesWithN().decide
    assert decide([l2.MeanFormShrink(3e-11)]).outcome == "holds"
    assert decide([l2.MeanFormShrink(0.5)]).outcome == "does not hold"  # e.g. the sum form
    straddles = [l2.MeanFormShrink(e) for e in (1e-7, 5e-7, 2.5e-6)]
    assert decide(straddles).outcome == "inconclusive"


# --- measure at quick size --------------------------------------------------------------------


@pytest.fixture(scope="module")
def r2_runs() -> tuple[l2.AdamDecay, ...]:
    return l2.AdamL2DiffersFromAdamW().measure_all(QUICK)


def test_r1_sgd_l2_and_weight_decay_agree_to_float_precision() -> None:
    exp = l2.L2EqualsDecayUnderSgd()
    m = exp.measure(QUICK)
    assert m.worst_float64 < 1e-14  # measured 4.4e-16 (seed 0), 4.9e-16 (seed 1)
    assert m.worst_float32 < 1e-5
    assert m.no_half > 5e-3  # the convention matters: decay 2λ ends 0.019 away (seed 0)
    assert m.control > 5e-3  # measured 0.021 after 60 steps
    assert all(len(c) == m.steps for c in m.curves64)
    result = dataclasses.replace(exp.result([m]), claim_id="R1")
    assert_well_formed(result, REGISTRY["R1"])
    assert result.verdict.outcome == "holds"


def test_r2_adam_rescales_l2_per_weight(r2_runs: tuple[l2.AdamDecay, ...]) -> None:
    m = r2_runs[0]
    assert m.q10 < m.q50 < m.q90
    assert m.spread == pytest.approx(m.q90 / m.q10)
    assert m.spread > 5  # measured 7.2; AdamW's multiplier is 1 for every weight
    assert m.distance > 0.1
    assert list(m.multiplier_curve) == sorted(m.multiplier_curve)
    assert len(m.multiplier_curve) == 101


def test_r2_quick_verdict(r2_runs: tuple[l2.AdamDecay, ...]) -> None:
    result = dataclasses.replace(l2.AdamL2DiffersFromAdamW().result(r2_runs), claim_id="R2")
    assert_well_formed(result, REGISTRY["R2"])
    assert result.verdict.outcome == "holds"
    assert result.verdict.seeds == 3


def test_r4_mean_form_shrinks_by_lr_lambda_over_n() -> None:
    result = run(REGISTRY["R4"], seed=0)
    assert result.verdict.outcome == "holds"
    m = l2.L2MeanFormShrinkScalesWithN().measure(QUICK)
    ns = [size.n for size in m.sizes]
    assert ns == sorted(ns)
    first = m.sizes[0]
    for size in m.sizes:
        assert size.fixed == pytest.approx(size.predicted, rel=1e-9)  # η·λ/n
        assert size.scaled == pytest.approx(first.scaled, rel=1e-9)  # constant with λ ∝ n
        assert size.summed == pytest.approx(l2.R4_LR * l2.R4_LAMBDA, rel=1e-9)  # sum form: η·λ


@pytest.mark.slow
@pytest.mark.parametrize("claim", ["R1", "R2", "R4"])
def test_full_mode_gives_the_same_verdicts(claim: str) -> None:
    assert run(REGISTRY[claim], seed=0, quick=False).verdict.outcome == "holds"
