"""Claims R10 (variance shift of dropout before BatchNorm), R11 (LayerNorm per sample), R12
(LayerNorm and the learning rate), R13 (Pre-LN vs Post-LN without warmup).

``decide`` is tested on hand-made measurements (clear and borderline); ``measure`` at quick size
on one seed, checking named fields against theory; the cheap claims' quick verdicts on all seeds.
"""

from __future__ import annotations

import dataclasses

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


# --- R12, R13 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_r12_layer_norm_trains_from_the_default_init_where_the_plain_net_does_not(
    seed: int,
) -> None:
    result = run(norm.layer_norm_stabilizes_training, seed=seed)
    default = {row[0]: row for row in result.tables[1].rows}
    assert default["no norm"][1] == "never"  # stuck at ln 10 in 150 steps
    assert default["LayerNorm"][1] != "never"  # measured: step 36, 38


@pytest.mark.parametrize("seed", [0, 1])
def test_r13_reports_both_placements_with_a_gradient_per_block(seed: int) -> None:
    result = run(norm.pre_ln_trains_without_warmup, seed=seed)
    assert len(result.tables[1].rows) == norm.R13_LAYERS
    drops = {row[1]: float(row[4]) for row in result.tables[0].rows}
    assert drops["pre-LN"] > drops["post-LN"]  # measured 0.54 vs 0.20, 0.54 vs 0.22


@pytest.mark.slow
@pytest.mark.parametrize(("claim", "outcome"), [("R10", "holds with caveat"), ("R11", "holds")])
def test_full_mode_gives_the_quick_verdicts(claim: str, outcome: str) -> None:
    assert run(REGISTRY[claim], seed=0, quick=False).verdict.outcome == outcome


@pytest.mark.slow
@pytest.mark.parametrize(
    "exp", [norm.layer_norm_stabilizes_training, norm.pre_ln_trains_without_warmup]
)
def test_full_mode_gives_a_well_formed_result(exp: object) -> None:
    run(exp, seed=0, quick=False)  # type: ignore[arg-type]
