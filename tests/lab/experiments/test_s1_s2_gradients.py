"""S1 (gradients are products of per-layer factors) and S2 (ReLU keeps them ~1, with He)."""

from __future__ import annotations

import math

import pytest
import torch

from stabletrain import models
from stabletrain.lab._init_common import init_linears_
from stabletrain.lab.experiments.s1_s2_gradients import (
    MEAN_FIELD_TOL,
    gradient_factors,
    mean_field_factors,
    relu_gradients,
)
from tests.lab.experiments._init_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_vanish_below_one_and_explode_above_one_as_mean_field_predicts(
    seed: int,
) -> None:
    result = run(gradient_factors, seed=seed)
    assert result.verdict.outcome == "holds"
    rows = {r[0]: r for r in result.tables[0].rows}
    # sigmoid' <= 1/4 with Xavier's σ_w² = 1: at most 1/4 per layer
    assert rows["sigmoid, Xavier"][3] < 0.25
    # tanh near 0 with σ_w² = 1/3: 1/sqrt(3) per layer
    assert rows["tanh, standard U(±1/√n)"][3] == pytest.approx(1 / math.sqrt(3), rel=0.03)
    # ReLU with σ_w² = 2 · 1.5²: exactly 1.5 per layer in expectation
    assert rows["ReLU, 1.5x He std"][3] == pytest.approx(1.5, rel=0.03)
    for _, _, _, measured, predicted, _ in rows.values():
        assert measured == pytest.approx(predicted, rel=MEAN_FIELD_TOL)


def test_mean_field_factors_of_relu_are_sqrt_half_sigma_w2_whatever_the_variance() -> None:
    # E[relu'(z)²] = 1/2 for z ~ N(0, q) with any q: the factor is sqrt(σ_w²/2) layer by layer
    torch.manual_seed(0)
    model = models.mlp(32, 4, depth=6, width=64, activation="relu")
    init_linears_(model, "he_normal", torch.Generator().manual_seed(0))
    x = torch.randn(16, 32)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    expected = [
        math.sqrt(float(m.weight.detach().double().pow(2).mean()) * m.in_features / 2)
        for m in linears[1:-1]
    ]
    assert mean_field_factors(model, x, "relu") == pytest.approx(expected, rel=1e-6)


def test_mean_field_factor_of_tanh_with_tiny_weights_is_sqrt_sigma_w2() -> None:
    # tanh'(0) = 1: a vanishing signal sees a linear tanh, factor sqrt(σ_w²)
    torch.manual_seed(0)
    model = models.mlp(16, 2, depth=4, width=32, activation="tanh")
    init_linears_(model, "standard", torch.Generator().manual_seed(1))
    x = 1e-4 * torch.randn(8, 16)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    expected = [
        math.sqrt(float(m.weight.detach().double().pow(2).mean()) * m.in_features)
        for m in linears[1:-1]
    ]
    assert mean_field_factors(model, x, "tanh") == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_relu_family_keeps_the_gradient_only_with_he_init(seed: int) -> None:
    result = run(relu_gradients, seed=seed)
    assert result.verdict.outcome == "holds with caveat"
    rows = {r[0]: r for r in result.tables[0].rows}
    for label in ("ReLU (He)", "LeakyReLU 0.01 (He)", "PReLU 0.25 (He)"):
        assert 0.5 < rows[label][2] < 2.0
    assert rows["sigmoid (Xavier)"][2] < 1e-8
    # Xavier's variance halves through each ReLU: 1/sqrt(2) per layer
    assert rows["ReLU with Xavier (mismatched)"][3] == pytest.approx(1 / math.sqrt(2), rel=0.03)
    # U(±1/sqrt(n)): σ_w² = 1/3, times 1/2 through the ReLU: sqrt(1/6) per layer
    assert rows["ReLU with standard U(±1/√n)"][3] == pytest.approx(math.sqrt(1 / 6), rel=0.03)


@pytest.mark.slow
def test_full_mode_gives_the_same_verdicts() -> None:
    assert run(gradient_factors, quick=False).verdict.outcome == "holds"
    assert run(relu_gradients, quick=False).verdict.outcome == "holds with caveat"
