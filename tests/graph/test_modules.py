"""Activation modules built from several ops are recorded as one activation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from stabletrain.graph import _modules, register_activation, trace, trace_with_grad

from ._observers import Recorder


class NewGELUActivation(nn.Module):
    """transformers' formula, under its class name (transformers is not needed here)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))
        return 0.5 * x * (1.0 + torch.tanh(inner))


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class InPlaceSwish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(torch.sigmoid(x.clone()))


class Wrapper(nn.Module):
    """A registered activation that calls another registered one: recorded once."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = NewGELUActivation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * 1.0


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_modules, "_REGISTERED", {})


def test_a_known_composite_module_is_one_activation_and_its_arithmetic_is_not_recorded() -> None:
    model = nn.Sequential(nn.Linear(4, 8), NewGELUActivation(), nn.Linear(8, 2))
    g = trace(model, torch.randn(3, 4))
    assert g.layers["0"].following[0].describe() == "gelu_tanh"
    names = [op.name for op in g.recording.ops]
    assert names == ["linear", "gelu_tanh", "linear"]
    assert g.recording.ops[1].module == "1"


def test_an_unregistered_composite_is_seen_as_its_arithmetic_until_registered() -> None:
    model = nn.Sequential(nn.Linear(4, 8), QuickGELU(), nn.Linear(8, 2))
    x = torch.randn(3, 4)
    before = trace(model, x).layers["0"].following[0].describe()
    assert before != "gelu"
    register_activation(QuickGELU, "gelu")
    assert trace(model, x).layers["0"].following[0].describe() == "gelu"


def test_subclasses_of_a_registered_class_are_recognized() -> None:
    class Sub(QuickGELU):
        pass

    register_activation(QuickGELU, "gelu")
    g = trace(nn.Sequential(nn.Linear(4, 4), Sub()), torch.randn(2, 4))
    assert g.layers["0"].following[0].describe() == "gelu"


def test_nested_registered_modules_are_recorded_once_as_the_outer_one() -> None:
    register_activation(Wrapper, "silu")
    g = trace(nn.Sequential(nn.Linear(4, 4), Wrapper(), nn.Linear(4, 2)), torch.randn(2, 4))
    assert [op.name for op in g.recording.ops] == ["linear", "silu", "linear"]


def test_an_in_place_composite_keeps_the_graph_connected() -> None:
    register_activation(InPlaceSwish, "silu")
    model = nn.Sequential(nn.Linear(4, 8), InPlaceSwish(), nn.Linear(8, 2))
    g = trace(model, torch.randn(3, 4))
    assert g.layers["0"].following[0].describe() == "silu"
    assert g.layers["2"].following[0].kind == "output"


def test_the_observer_sees_the_activation_op_with_its_output() -> None:
    torch.manual_seed(0)
    act = NewGELUActivation()
    model = nn.Sequential(nn.Linear(4, 8), act, nn.Linear(8, 2))
    x = torch.randn(3, 4)
    seen = Recorder()
    trace_with_grad(model, x, observer=seen)
    assert [name for name, _ in seen.ops] == ["linear", "gelu_tanh", "linear"]
    expected = float(act(model[0](x)).detach().sum())
    assert seen.ops[1][1] == [pytest.approx(expected, rel=1e-6)]


def test_a_module_with_parameters_is_never_treated_as_an_opaque_activation() -> None:
    class NewGELUActivation(nn.Linear):  # same name, holds weights: still a layer
        pass

    g = trace(nn.Sequential(NewGELUActivation(4, 4), nn.ReLU()), torch.randn(2, 4))
    assert g.layers["0"].following[0].describe() == "relu"


def test_register_activation_rejects_unknown_names_and_instances() -> None:
    with pytest.raises(ValueError, match=r"'gelu2'.*known: .*gelu_tanh"):
        register_activation(QuickGELU, "gelu2")
    with pytest.raises(TypeError, match="the class, not an instance"):
        register_activation(QuickGELU(), "gelu")  # type: ignore[arg-type]


def test_transformers_quick_gelu_is_recognized_by_its_class_name() -> None:
    class QuickGELUActivation(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.sigmoid(1.702 * x)

    g = trace(nn.Sequential(nn.Linear(4, 8), QuickGELUActivation()), torch.randn(3, 4))
    assert g.layers["0"].following[0].describe() == "quick_gelu"


class Flaky(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("not today")


class CatchesIt(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act, self.fc = Flaky(), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            x = self.act(x)
        except RuntimeError:
            x = torch.relu(x)
        return self.fc(x)


def test_ops_after_a_registered_activation_that_raised_are_recorded_again() -> None:
    register_activation(Flaky, "silu")
    model = nn.Sequential(nn.Linear(4, 4), CatchesIt())
    g = trace(model, torch.randn(2, 4))
    assert [op.name for op in g.recording.ops] == ["linear", "relu", "linear"]
    assert g.layers["0"].following[0].describe() == "relu"


class FlakyLayer(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 2:
            raise RuntimeError("odd batch")
        return super().forward(x)


class RetriesOnce(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = FlakyLayer(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.fc(x)
        except RuntimeError:
            return self.fc(torch.cat([x, x]))


def test_a_layer_call_that_raised_is_not_recorded_and_the_retry_is() -> None:
    g = trace(nn.Sequential(RetriesOnce(), nn.Tanh()), torch.randn(2, 4))
    assert g.layers["0.fc"].calls == 1
    assert g.layers["0.fc"].following[0].describe() == "tanh"
