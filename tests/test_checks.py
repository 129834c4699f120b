"""The shared checks of user input: models on the meta device, non-finite inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stabletrain._checks import check_finite_tensors, check_not_meta


def test_a_model_on_the_meta_device_is_refused_with_the_way_to_materialize_it() -> None:
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    with pytest.raises(ValueError, match=r"auto_init: Sequential has 7 tensor\(s\) on the") as e:
        check_not_meta(model, "auto_init")
    assert 'model.to_empty(device="cpu")' in str(e.value)
    assert "0.weight, 0.bias, 1.weight, ... (4 more)" in str(e.value)


def test_a_model_materialized_with_to_empty_passes() -> None:
    with torch.device("meta"):
        model = nn.Linear(4, 4)
    check_not_meta(model.to_empty(device="cpu"), "diagnose")


def test_one_meta_buffer_is_enough_to_refuse() -> None:
    model = nn.BatchNorm1d(3)
    model.register_buffer("extra", torch.empty(2, device="meta"))
    with pytest.raises(ValueError, match=r"1 tensor\(s\) on the meta device \(extra\)"):
        check_not_meta(model, "diagnose")


def test_non_finite_entries_are_counted_and_the_input_named_as_the_cause() -> None:
    x = torch.zeros(4, 5)
    x[0, :3] = float("nan")
    x[1, 0] = float("-inf")
    ids = torch.arange(6)  # integer tensors cannot hold NaN: not counted
    with pytest.raises(ValueError, match=r"diagnose: x holds 3 NaN and 1 ±inf of 20 values"):
        check_finite_tensors("x", [x, ids], where="diagnose")


def test_finite_and_integer_inputs_pass() -> None:
    x = torch.randn(3, generator=torch.Generator().manual_seed(0))
    check_finite_tensors("x", [x], where="f")
    check_finite_tensors("ids", [torch.arange(3)], where="f")
    check_finite_tensors("nothing", [], where="f")


def test_a_meta_input_is_refused() -> None:
    with pytest.raises(ValueError, match="x is on the meta device"):
        check_finite_tensors("x", [torch.empty(2, device="meta")], where="diagnose")
