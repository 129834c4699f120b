"""The dead and saturation tests agree on an activation's input and on its output."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.init.gain import quick_gelu
from stabletrain.monitoring.activations import (
    DEAD_REGION,
    RECTIFIERS,
    SATURATING,
    activation_kind,
    module_kind,
)

LEVEL = 0.99
Z = torch.linspace(-200, 200, 400001, dtype=torch.float64)  # softsign saturates at |z| > 99

FUNCTIONS = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "hardtanh": F.hardtanh,
    "hardsigmoid": F.hardsigmoid,
    "softsign": F.softsign,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "celu": F.celu,
    "selu": F.selu,
    "gelu": F.gelu,
    "gelu_tanh": lambda z: F.gelu(z, approximate="tanh"),
    "quick_gelu": quick_gelu,
    "silu": F.silu,
    "mish": F.mish,
    "hardswish": F.hardswish,
}


@pytest.mark.parametrize("name", sorted(SATURATING))
def test_saturation_on_the_input_equals_saturation_on_the_output(name: str) -> None:
    y = FUNCTIONS[name](Z)
    pre = activation_kind(name, {}, level=LEVEL, space="input")
    out = activation_kind(name, {}, level=LEVEL, space="output")
    assert pre is not None
    assert out is not None
    assert pre.saturating
    assert out.saturating
    on_input = (Z - pre.center).abs() > pre.threshold
    on_output = (y - out.center).abs() > out.threshold
    near = ((Z - pre.center).abs() - pre.threshold).abs() < 1e-6  # the boundary itself
    assert torch.equal(on_input[~near], on_output[~near])
    assert 0 < int(on_input.sum()) < Z.numel()


def test_tanh_saturates_at_099_and_sigmoid_within_half_a_percent_of_its_bounds() -> None:
    tanh = activation_kind("tanh", {}, level=LEVEL, space="output")
    sigmoid = activation_kind("sigmoid", {}, level=LEVEL, space="output")
    assert tanh is not None
    assert (tanh.center, tanh.threshold) == (0.0, 0.99)
    assert sigmoid is not None
    assert (sigmoid.center, sigmoid.threshold) == (0.5, 0.495)


def test_hardtanh_uses_its_own_bounds() -> None:
    kind = activation_kind(
        "hardtanh", {"min_val": -2.0, "max_val": 4.0}, level=LEVEL, space="input"
    )
    assert kind is not None
    assert kind.center == 1.0
    assert kind.threshold == pytest.approx(2.97)


@pytest.mark.parametrize("name", sorted(RECTIFIERS))
def test_every_rectifier_is_positive_exactly_where_its_input_is(name: str) -> None:
    y = FUNCTIONS[name](Z)
    assert torch.equal(y > 0, Z > 0)
    kind = activation_kind(name, {}, level=LEVEL, space="output")
    assert kind is not None
    assert kind.rectifier is (name in DEAD_REGION)  # dead units only where the slope is 0
    assert not kind.saturating


def test_only_relu_and_relu6_have_a_dead_region() -> None:
    assert {"relu", "relu6"} == DEAD_REGION
    assert DEAD_REGION <= RECTIFIERS
    z = torch.linspace(-4.0, -0.01, 50, requires_grad=True)
    for name in sorted(RECTIFIERS):
        (slope,) = torch.autograd.grad(FUNCTIONS[name](z).sum(), z)
        if name in DEAD_REGION:
            assert torch.all(slope == 0), name
        else:  # a unit below zero still learns, except hardswish below -3
            assert torch.any(slope != 0), name


def test_other_activations_support_neither_test() -> None:
    assert activation_kind("softplus", {}, level=LEVEL, space="output") is None


@pytest.mark.parametrize(
    ("module", "name", "rectifier"),
    [
        (nn.ReLU(), "relu", True),
        (nn.ReLU6(), "relu6", True),
        (nn.RReLU(), "leaky_relu", False),
        (nn.PReLU(), "leaky_relu", False),
        (nn.GELU(approximate="tanh"), "gelu_tanh", False),
        (nn.Tanh(), "tanh", False),
        (nn.Hardtanh(-2, 2), "hardtanh", False),
    ],
)
def test_module_kind_reads_the_activation_module(
    module: nn.Module, name: str, rectifier: bool
) -> None:
    kind = module_kind(module, level=LEVEL)
    assert kind is not None
    assert kind.name == name
    assert kind.rectifier is rectifier
    assert kind.space == "output"


def test_module_kind_ignores_modules_that_are_not_activations() -> None:
    assert module_kind(nn.Linear(2, 2), level=LEVEL) is None
    assert module_kind(nn.Identity(), level=LEVEL) is None
