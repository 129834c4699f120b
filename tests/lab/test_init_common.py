"""The init experiments' helpers: named schemes on every Linear, per-layer factor, profiles."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from stabletrain import models
from stabletrain.lab._common import LayerSignal
from stabletrain.lab._init_common import (
    SCHEMES,
    forward_stds,
    init_linears_,
    per_layer_factor,
    profile_figure,
    profile_table,
)


@pytest.mark.parametrize(
    ("scheme", "variance"),
    [
        ("standard", lambda n_in, n_out: 1 / (3 * n_in)),
        ("xavier_normal", lambda n_in, n_out: 2 / (n_in + n_out)),
        ("he_normal", lambda n_in, n_out: 2 / n_in),
        ("he_normal_fan_out", lambda n_in, n_out: 2 / n_out),
        ("orthogonal", lambda n_in, n_out: 1 / max(n_in, n_out)),
    ],
)
def test_named_schemes_give_every_linear_their_variance_and_zero_biases(
    scheme: str, variance: Callable[[int, int], float]
) -> None:
    model = nn.Sequential(nn.Linear(300, 600), nn.ReLU(), nn.Linear(600, 200))
    init_linears_(model, scheme, torch.Generator().manual_seed(0))
    for layer in (model[0], model[2]):
        assert isinstance(layer, nn.Linear)
        expected = variance(layer.in_features, layer.out_features)
        assert float(layer.weight.detach().var()) == pytest.approx(expected, rel=0.03)
        assert float(layer.bias.detach().abs().max()) == 0.0


def test_init_linears_rejects_an_unknown_scheme_and_lists_the_names() -> None:
    with pytest.raises(ValueError, match="he_normal"):
        init_linears_(nn.Linear(2, 2), "kaiming", torch.Generator())
    assert "xavier_uniform" in SCHEMES


def test_per_layer_factor_is_depth_independent_for_an_exponential_trend() -> None:
    assert per_layer_factor([0.5**i for i in range(20)]) == pytest.approx(0.5)
    assert per_layer_factor([3.0, 3.0, 3.0]) == pytest.approx(1.0)
    assert per_layer_factor([1.0, 0.0]) == 0.0  # the signal underflowed: vanished entirely
    assert math.isnan(per_layer_factor([0.0, 1.0]))
    with pytest.raises(ValueError, match="at least 2"):
        per_layer_factor([1.0])


def test_xavier_relu_stack_halves_the_variance_per_layer() -> None:
    torch.manual_seed(0)
    net = models.mlp(128, 128, depth=12, width=128)
    init_linears_(net, "xavier_normal", torch.Generator().manual_seed(1))
    stds = forward_stds(net, torch.randn(512, 128))[:-1]
    assert per_layer_factor(stds) == pytest.approx(2**-0.5, rel=0.05)


def test_profiles_become_tables_and_log_scale_figures() -> None:
    signals = [LayerSignal(f"l{i}", 1.0 / (i + 1), 0.5, 2.0) for i in range(20)]
    table = profile_table("t", {"a": signals}, points=5)
    assert [row[1] for row in table.rows] == [1, 6, 11, 15, 20]
    figure = profile_figure("f", {"a": signals}, what="backward")
    assert figure.logy
    assert figure.series["a"][1] == [2.0] * 20
    with pytest.raises(ValueError, match="backward"):
        profile_figure("f", {"a": signals}, what="sideways")
