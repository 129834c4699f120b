"""Claims R5 (weight decay and the train/test gap) and R6 (no decay for biases and norms).

``decide`` is tested on hand-made measurements (clear and borderline); ``measure`` at quick size
on one seed, checking named fields; R6's quick verdict on all its seeds.
"""

from __future__ import annotations

import dataclasses

import pytest

from stabletrain.lab.experiment import REGISTRY, Context
from stabletrain.lab.experiments import r5_r6_decay as decay
from tests.lab.experiments._reg_checks import assert_well_formed, run

QUICK = Context(quick=True, seed=0)


def _r5(acc_cut: float, loss_cut: float) -> decay.DecayEffect:
    return decay.DecayEffect(acc_cut, loss_cut, 0.1, steps=300)


def _r6(effect: float, right: float = 1.0) -> decay.SparingEffect:
    return decay.SparingEffect(effect, right, 1.0, 0.4, 0.4)


@pytest.mark.parametrize(
    ("cuts", "outcome"),
    [
        ([(0.05, 0.5), (0.06, 0.4), (0.055, 0.45)], "holds"),  # the accuracy gap shrinks
        ([(0.005, 0.3), (0.006, 0.32), (0.004, 0.31)], "holds with caveat"),  # loss gap only
        ([(0.0, 0.15), (0.01, 0.4), (0.005, 0.25)], "inconclusive"),  # loss cut straddles 20%
        ([(0.0, 0.0), (0.001, 0.05), (-0.001, 0.02)], "does not hold"),
    ],
)
def test_r5_decide(cuts: list[tuple[float, float]], outcome: str) -> None:
    ms = [_r5(a, b) for a, b in cuts]
    assert decay.WeightDecayReducesOverfitting().decide(ms).outcome == outcome


@pytest.mark.parametrize(
    ("ms", "outcome"),
    [
        ([_r6(0.04), _r6(0.05), _r6(0.045)], "holds"),  # sparing gains over 2 points
        ([_r6(0.003), _r6(0.001), _r6(-0.001)], "holds with caveat"),  # safe, no measurable gain
        ([_r6(-0.03), _r6(0.0), _r6(0.02)], "inconclusive"),  # straddles -0.02
        ([_r6(-0.05), _r6(-0.06), _r6(-0.055)], "does not hold"),  # decaying all is better
        ([_r6(0.05, right=0.9)] * 3, "does not hold"),  # the grouping is wrong
    ],
)
def test_r6_decide(ms: list[decay.SparingEffect], outcome: str) -> None:
    assert decay.NoDecayForBiasesAndNorms().decide(ms).outcome == outcome


def test_r5_decay_shrinks_the_weights_and_the_test_loss() -> None:
    m = decay.WeightDecayReducesOverfitting().measure(QUICK)
    by_lam = {p.lam: p for p in m.points}
    none, decayed = by_lam[0.0], by_lam[decay.R5_LAMBDA]
    assert decayed.weight_norm < 0.7 * none.weight_norm  # Σ‖W‖²
    assert decayed.test_loss < none.test_loss  # measured 0.52 -> 0.41
    assert none.train_accuracy == 1.0  # the wide net fits its 100 digits
    assert m.loss_gap_cut == pytest.approx(1 - decayed.loss_gap / none.loss_gap)
    assert m.loss_gap_cut > 0.1  # measured 0.22
    assert abs(m.acc_gap_cut) < 0.03  # measured 0.008: the accuracy gap barely moves


@pytest.fixture(scope="module")
def r6_runs() -> tuple[decay.SparingEffect, ...]:
    return decay.NoDecayForBiasesAndNorms().measure_all(QUICK)


def test_r6_param_groups_spare_biases_and_norms(r6_runs: tuple[decay.SparingEffect, ...]) -> None:
    m = r6_runs[0]
    for name, category, lam in m.group_rows:
        assert (lam == "0") == (category in ("bias", "norm")), name
    assert m.grouping_right == 1.0
    for row in m.rows:
        assert row.gain_decayed < 0.6 * row.gain_spared  # decaying norms shrinks |γ|: 1 -> 0.4
        assert row.effect == pytest.approx(row.acc_spared - row.acc_decayed)
    assert abs(m.effect) < 0.02  # measured +0.003: no gain this scale can see


def test_r6_quick_verdict(r6_runs: tuple[decay.SparingEffect, ...]) -> None:
    result = dataclasses.replace(decay.NoDecayForBiasesAndNorms().result(r6_runs), claim_id="R6")
    assert_well_formed(result, REGISTRY["R6"])
    assert result.verdict.outcome == "holds with caveat"  # +0.003 ± 0.004 (3 seeds)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("claim", "outcome"), [("R5", "holds with caveat"), ("R6", "holds with caveat")]
)
def test_full_mode_gives_the_quick_verdicts(claim: str, outcome: str) -> None:
    assert run(REGISTRY[claim], seed=0, quick=False).verdict.outcome == outcome
