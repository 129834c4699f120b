"""Claims R10 (variance shift of dropout before BatchNorm), R11 (LayerNorm per sample), R12
(LayerNorm and the learning rate), R13 (Pre-LN vs Post-LN without warmup).

``decide`` is tested on hand-made measurements (clear and borderline); ``measure`` at quick size
on one seed, checking named fields against theory; the cheap claims' quick verdicts on all seeds.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from stabletrain.lab.experiment import REGISTRY, Context
from stabletrain.lab.experiments import r10_to_r13_norm as norm
from tests.lab.experiments._reg_checks import assert_well_formed, run

QUICK = Context(quick=True, seed=0)


# --- R10 --------------------------------------------------------------------------------------


def _r10(ratio: float = 1.27, agreement: float = 1.01, harm: float = 0.0) -> norm.VarianceShift:
    return norm.VarianceShift(ratio, ratio / agreement, agreement, 0.9, 0.9 + harm, harm, 150)


@pytest.mark.parametrize(
    ("ms", "outcome"),
    [
        ([_r10(harm=h) for h in (0.02, 0.03, 0.025)], "holds"),  # shift and harm
        ([_r10(harm=h) for h in (0.0, 0.003, 0.0)], "holds with caveat"),  # shift, no harm
        ([_r10(harm=h) for h in (0.0, 0.01, 0.03)], "holds with caveat"),  # harm undecided
        ([_r10(agreement=a) for a in (0.9, 1.0, 1.2)], "inconclusive"),  # prediction straddles
        ([_r10(agreement=a) for a in (1.4, 1.45, 1.5)], "does not hold"),  # prediction wrong
        ([_r10(ratio=r) for r in (1.01, 1.02, 1.03)], "does not hold"),  # no real shift
    ],
)
def test_r10_decide(ms: list[norm.VarianceShift], outcome: str) -> None:
    assert norm.DropoutBeforeBatchNormShiftsVariance().decide(ms).outcome == outcome


@pytest.fixture(scope="module")
def r10_runs() -> tuple[norm.VarianceShift, ...]:
    return norm.DropoutBeforeBatchNormShiftsVariance().measure_all(QUICK)


def test_r10_batchnorm_sees_the_predicted_extra_variance(
    r10_runs: tuple[norm.VarianceShift, ...],
) -> None:
    m = r10_runs[0]
    assert m.measured_ratio > 1.1  # measured 1.28
    assert m.measured_ratio == pytest.approx(m.predicted_ratio, rel=0.1)  # Li et al. 2019
    assert m.agreement == pytest.approx(m.measured_ratio / m.predicted_ratio)
    assert m.harm == pytest.approx(m.acc_fixed - m.acc_shifted)
    assert len(m.channels) == norm.R10_WIDTH


def test_r10_quick_verdict(r10_runs: tuple[norm.VarianceShift, ...]) -> None:
    exp = norm.DropoutBeforeBatchNormShiftsVariance()
    result = dataclasses.replace(exp.result(r10_runs), claim_id="R10")
    assert_well_formed(result, REGISTRY["R10"])
    assert result.verdict.outcome == "holds with caveat"  # the shift is real, its cost ~0


# --- R11 --------------------------------------------------------------------------------------


def _r11(formula: float = 1e-15, ln_dep: float = 0.0, bn_dep: float = 0.9) -> norm.PerSample:
    return norm.PerSample(formula, 1e-16, ln_dep, bn_dep, 0.0, batch=16)


@pytest.mark.parametrize(
    ("m", "outcome"),
    [
        (_r11(), "holds"),
        (_r11(formula=1e-3), "does not hold"),  # not the formula
        (_r11(ln_dep=0.1), "does not hold"),  # depends on the batch
        (_r11(bn_dep=1e-4), "does not hold"),  # the contrast fails: the test proves nothing
    ],
)
def test_r11_decide(m: norm.PerSample, outcome: str) -> None:
    assert norm.LayerNormIsPerSample().decide([m]).outcome == outcome


def test_r11_layer_norm_matches_its_formula_and_ignores_the_batch() -> None:
    result = run(REGISTRY["R11"], seed=0)
    assert result.verdict.outcome == "holds"
    m = norm.LayerNormIsPerSample().measure(QUICK)
    assert m.formula < 1e-13
    assert m.one_vs_batch < 1e-13
    assert m.ln_dependence < 1e-13
    assert m.bn_dependence > 0.1  # measured 0.94
    assert m.bn_eval_dependence < 1e-13  # running statistics: no batch dependence


# --- R12 --------------------------------------------------------------------------------------


def _r12(lr_ratio: float, speedup: float) -> norm.NormTraining:
    either = max(lr_ratio / norm.R12_MIN_LR_RATIO, speedup / norm.R12_SPEEDUP)
    return norm.NormTraining(lr_ratio, speedup, either, 0.3, 0.3 / lr_ratio, 36, 150, 150)


@pytest.mark.parametrize(
    ("pairs", "outcome"),
    [
        ([(3.0, 4.0), (3.0, 4.2), (3.0, 3.9)], "holds"),  # both parts on every seed
        ([(1.0, 4.0), (3.0, 4.2), (1.0, 3.9)], "holds with caveat"),  # the rates are undecided
        ([(1.0, 4.0), (1.0, 4.2), (1.0, 3.9)], "holds with caveat"),  # faster, same rates
        ([(1.0, 1.5), (3.0, 2.5), (1.0, 1.8)], "inconclusive"),  # neither part established
        ([(1.0, 1.0), (1.0, 1.1), (1.0, 1.05)], "does not hold"),
    ],
)
def test_r12_decide(pairs: list[tuple[float, float]], outcome: str) -> None:
    ms = [_r12(r, s) for r, s in pairs]
    assert norm.LayerNormStabilizesTraining().decide(ms).outcome == outcome


@pytest.fixture(scope="module")
def r12_runs() -> tuple[norm.NormTraining, ...]:
    return norm.LayerNormStabilizesTraining().measure_all(QUICK)


def test_r12_layer_norm_trains_from_the_default_init_where_the_plain_net_does_not(
    r12_runs: tuple[norm.NormTraining, ...],
) -> None:
    m = r12_runs[0]
    default = {label: (first, last) for label, first, last, _ in m.default_runs}
    assert default["no norm"][0] == 0  # never below R12_LEVEL: stuck at ln 10
    assert default["no norm"][1] == pytest.approx(2.303, abs=0.02)
    assert 0 < default["LayerNorm"][0] < 60  # measured: step 36
    assert m.reach_plain == m.steps
    assert m.speedup == pytest.approx(m.steps / m.reach_ln)
    assert m.lr_ratio == pytest.approx(m.largest_ln / m.largest_plain)
    assert all(len(curve) == m.steps for *_, curve in m.default_runs)


def test_r12_quick_verdict(r12_runs: tuple[norm.NormTraining, ...]) -> None:
    result = dataclasses.replace(
        norm.LayerNormStabilizesTraining().result(r12_runs), claim_id="R12"
    )
    assert_well_formed(result, REGISTRY["R12"])
    # the speed-up holds on every seed; which rates the plain net survives varies
    assert result.verdict.outcome == "holds with caveat"


# --- R13 --------------------------------------------------------------------------------------


def _r13(ratio: float) -> norm.Placement:
    return norm.Placement(ratio, 2.5, 2.0, 2.5, 2.3, 1.5, steps=40, batch=16)


@pytest.mark.parametrize(
    ("ratios", "outcome"),
    [
        ((-0.08, -0.09, -0.04), "holds"),  # Post-LN makes no progress below chance
        ((0.55, 0.6, 0.65), "holds with caveat"),  # progress, but under 1/1.25 of Pre-LN's
        ((0.3, 0.5, 0.7), "inconclusive"),  # straddles 1/2
        ((0.95, 1.0, 1.05), "does not hold"),  # both placements learn alike
        ((0.1, math.inf, 0.1), "inconclusive"),  # Pre-LN made no progress on one seed
        ((math.inf,) * 3, "does not hold"),  # nor on any
    ],
)
def test_r13_decide(ratios: tuple[float, ...], outcome: str) -> None:
    assert norm.PreLnTrainsWithoutWarmup().decide([_r13(r) for r in ratios]).outcome == outcome


def test_r13_progress_ratio() -> None:
    chance = math.log(norm.R13_VOCAB)
    assert norm._progress_ratio(chance - 0.4, chance - 0.1) == pytest.approx(0.25)
    assert norm._progress_ratio(chance, chance - 0.1) == math.inf
    assert norm._progress_ratio(math.inf, chance) == math.inf  # a diverged Pre-LN run


def test_r13_pre_ln_learns_and_post_ln_stays_at_chance() -> None:
    m = norm.PreLnTrainsWithoutWarmup().measure(QUICK)
    chance = math.log(norm.R13_VOCAB)
    assert m.pre_end < chance - 0.2  # measured 1.97
    assert m.post_end == pytest.approx(chance, abs=0.05)  # measured 2.33
    assert m.post_over_pre < 0.2  # measured -0.08
    assert [len(g) for g in m.grads] == [norm.R13_LAYERS] * 2
    assert m.top_gradient > 1  # Post-LN's last block has the larger gradient at init
    assert [len(c) for c in m.curves] == [m.steps] * 2


@pytest.mark.slow
def test_r13_quick_verdict() -> None:
    assert run(REGISTRY["R13"], seed=0).verdict.outcome == "holds"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("claim", "outcome"),
    [
        ("R10", "holds with caveat"),
        ("R11", "holds"),
        ("R12", "holds with caveat"),
        ("R13", "holds"),
    ],
)
def test_full_mode_gives_the_quick_verdicts(claim: str, outcome: str) -> None:
    assert run(REGISTRY[claim], seed=0, quick=False).verdict.outcome == outcome
