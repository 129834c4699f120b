"""I6 (Xavier + tanh), I7 (He + ReLU, fan modes) and I11 (depth makes init matter)."""

from __future__ import annotations

import math

import pytest

from stabletrain.lab.experiments.i6_i7_i11_depth import (
    DRIFT,
    depth_sensitivity,
    he_depth,
    xavier_depth,
)
from tests.lab.experiments._init_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_xavier_keeps_tanh_signals_roughly_constant_and_standard_init_does_not(seed: int) -> None:
    result = run(xavier_depth, seed=seed)
    assert result.verdict.outcome == "holds"
    factors = {row[0]: (row[1], row[2]) for row in result.tables[0].rows}
    for label in ("Xavier uniform, tanh", "Xavier normal, tanh"):
        assert all(1 / DRIFT <= f <= DRIFT for f in factors[label])
    # U(±1/sqrt(n)) has gain 1/sqrt(3): tanh is linear near 0, so 0.577 per layer
    assert factors["standard U(±1/√n), tanh"][0] == pytest.approx(3**-0.5, rel=0.03)
    # the sigmoid is outside the derivation: its gradient vanishes (slope 1/4 per layer)
    assert factors["Xavier uniform, sigmoid"][1] == pytest.approx(0.25, rel=0.1)
    # tanh's slow decline follows the power law q_l = 1/(1/q_1 + 2(l - 1)) within 15%
    for _, measured, predicted in result.tables[2].rows:
        assert measured == pytest.approx(predicted, rel=0.15)


@pytest.mark.parametrize("seed", [0, 1])
def test_he_keeps_relu_variance_and_xavier_halves_it_every_layer(seed: int) -> None:
    result = run(he_depth, seed=seed)
    assert result.verdict.outcome == "holds"
    factors = {row[0]: (row[1], row[2]) for row in result.tables[0].rows}
    assert factors["Xavier normal"][0] == pytest.approx(2**-0.5, rel=0.05)
    assert factors["He normal"][0] == pytest.approx(1.0, abs=0.05)
    (_, in_fwd, in_bwd, ratio), (_, out_fwd, out_bwd, _) = result.tables[2].rows
    assert ratio == pytest.approx(math.sqrt(8))
    # the unpreserved direction moves toward the width ratio; the preserved one stays near 1
    assert in_bwd > 1.5
    assert out_fwd < 1 / 1.5
    assert abs(math.log(in_fwd)) < abs(math.log(in_bwd))
    assert abs(math.log(out_bwd)) < abs(math.log(out_fwd))


@pytest.mark.parametrize("seed", [0, 1])
def test_init_matters_more_with_depth(seed: int) -> None:
    result = run(depth_sensitivity, seed=seed)
    assert result.verdict.outcome == "holds"
    acc = {(row[0], row[1]): row[2] for row in result.tables[0].rows}
    assert acc[16, "He (good)"] > 0.85
    assert acc[16, "standard (bad)"] < 0.2


@pytest.mark.slow
def test_full_mode_gives_the_same_verdicts() -> None:
    for exp in (xavier_depth, he_depth, depth_sensitivity):
        assert run(exp, quick=False).verdict.outcome == "holds"
