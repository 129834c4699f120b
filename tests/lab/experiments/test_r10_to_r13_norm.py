"""Claims R10 (variance shift of dropout before BatchNorm), R11 (LayerNorm per sample), R12
(LayerNorm and the learning rate), R13 (Pre-LN vs Post-LN without warmup)."""

from __future__ import annotations

import pytest

from stabletrain.lab.experiment import Experiment
from stabletrain.lab.experiments import r10_to_r13_norm
from tests.lab.experiments._reg_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_r10_batchnorm_sees_the_predicted_extra_variance_in_training(seed: int) -> None:
    result = run(r10_to_r13_norm.dropout_before_batchnorm_shifts_variance, seed=seed)
    rows = dict(result.tables[0].rows)
    measured = float(rows["running var / eval var, median over channels"])
    predicted = float(rows["predicted 1 + (p/(1−p))·Σ W²E[h²] / eval var"])
    assert measured > 1.1  # measured 1.23, 1.27
    assert measured == pytest.approx(predicted, rel=0.1)


@pytest.mark.parametrize("seed", [0, 1])
def test_r11_layer_norm_matches_its_formula_and_ignores_the_batch(seed: int) -> None:
    result = run(r10_to_r13_norm.layer_norm_is_per_sample, seed=seed)
    assert result.verdict.outcome == "holds"
    checks = {name: float(value) for name, value in result.tables[0].rows}
    assert checks["MLP with BatchNorm, other samples replaced (train mode)"] > 0.1


@pytest.mark.parametrize("seed", [0, 1])
def test_r12_layer_norm_trains_from_the_default_init_where_the_plain_net_does_not(
    seed: int,
) -> None:
    result = run(r10_to_r13_norm.layer_norm_stabilizes_training, seed=seed)
    default = {row[0]: row for row in result.tables[1].rows}
    assert default["no norm"][1] == "never"  # stuck at ln 10 in 150 steps
    assert default["LayerNorm"][1] != "never"  # measured: step 36, 38


@pytest.mark.parametrize("seed", [0, 1])
def test_r13_reports_both_placements_with_a_gradient_per_block(seed: int) -> None:
    result = run(r10_to_r13_norm.pre_ln_trains_without_warmup, seed=seed)
    assert len(result.tables[1].rows) == r10_to_r13_norm.R13_LAYERS
    drops = {row[1]: float(row[4]) for row in result.tables[0].rows}
    assert drops["pre-LN"] > drops["post-LN"]  # measured 0.54 vs 0.20, 0.54 vs 0.22


@pytest.mark.slow
@pytest.mark.parametrize(
    "exp",
    [
        r10_to_r13_norm.dropout_before_batchnorm_shifts_variance,
        r10_to_r13_norm.layer_norm_is_per_sample,
        r10_to_r13_norm.layer_norm_stabilizes_training,
        r10_to_r13_norm.pre_ln_trains_without_warmup,
    ],
)
def test_full_mode_gives_a_well_formed_result(exp: Experiment) -> None:
    result = run(exp, seed=0, quick=False)
    if exp is r10_to_r13_norm.layer_norm_is_per_sample:
        assert result.verdict.outcome == "holds"
