"""Activations by name, class, factory or instance: always a fresh nn.Module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stabletrain.models import ACTIVATION_NAMES, make_activation

EXPECTED = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "selu": nn.SELU,
    "elu": nn.ELU,
    "mish": nn.Mish,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
    "linear": nn.Identity,
}


def test_the_table_has_exactly_the_documented_names() -> None:
    assert set(ACTIVATION_NAMES) == set(EXPECTED)


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_each_name_builds_its_module(name: str) -> None:
    assert type(make_activation(name)) is EXPECTED[name]


def test_names_are_case_insensitive() -> None:
    assert isinstance(make_activation("GELU"), nn.GELU)


def test_a_class_and_a_factory_build_modules() -> None:
    assert isinstance(make_activation(nn.PReLU), nn.PReLU)
    act = make_activation(lambda: nn.LeakyReLU(0.2))
    assert isinstance(act, nn.LeakyReLU)
    assert act.negative_slope == 0.2


def test_an_instance_is_copied_so_parameters_are_not_shared() -> None:
    prelu = nn.PReLU()
    copy = make_activation(prelu)
    assert copy is not prelu
    assert copy.weight is not prelu.weight
    assert torch.equal(copy.weight, prelu.weight)


def test_an_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown activation 'swishy'.*'relu'.*'gelu'.*nn\.PReLU"):
        make_activation("swishy")


def test_a_factory_that_returns_no_module_is_rejected() -> None:
    with pytest.raises(TypeError, match=r"returned Tensor, not an nn\.Module"):
        make_activation(lambda: torch.zeros(1))  # type: ignore[arg-type,return-value]


def test_a_non_callable_is_rejected() -> None:
    with pytest.raises(TypeError, match="activation must be a name"):
        make_activation(3)  # type: ignore[arg-type]
