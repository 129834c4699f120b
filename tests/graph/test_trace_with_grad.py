"""trace_with_grad: the same graph as trace, with gradients, the output, and an observer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.graph import preserved_state, trace, trace_with_grad

from ._observers import Recorder


class Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        return self.b(h * torch.sigmoid(h))  # SiLU written out


def test_the_graph_is_traces_and_the_output_carries_gradients() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(16, 4)
    with preserved_state(model):
        graph, out = trace_with_grad(model, x)
    plain = trace(model, x)
    assert list(graph.layers) == list(plain.layers)
    for name, info in graph.layers.items():
        assert info.following == plain.layers[name].following
    assert out.requires_grad
    assert out.shape == (16, 2)


def test_the_observer_sees_values_before_an_in_place_activation_and_records_nothing() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(inplace=True))
    seen = Recorder()
    x = torch.randn(32, 4)
    with preserved_state(model):
        graph, out = trace_with_grad(model, x, seen)
        expected_bn = model[1](model[0](x)).detach().sum()
    bn_sum = dict(seen.calls)["1"]
    assert bn_sum == pytest.approx(float(expected_bn), abs=1e-4)  # before relu_ changed it
    assert float(out.detach().sum()) > bn_sum  # the ReLU did run in place afterwards
    # BatchNorm counts its batches with num_batches_tracked.add_(1)
    assert [name for name, _ in seen.ops] == ["linear", "add", "batch_norm", "relu"]
    assert len(graph.recording.ops) == 4  # the observer's sums are not recorded


def test_activation_nodes_locate_each_calls_activation_result() -> None:
    model = Gated()
    seen = Recorder()
    with preserved_state(model):
        graph, _ = trace_with_grad(model, torch.randn(5, 6), seen)
    info = graph.layers["a"]
    assert info.activation is not None
    assert info.activation.op == "silu"
    (node,) = info.activation_nodes
    producer = next(op for op in graph.recording.ops if node in op.outputs)
    assert producer.name == "mul"  # the product, not the sigmoid
    assert graph.layers["b"].activation_nodes == (-1,)


def test_functional_activation_nodes_per_call_of_a_shared_layer() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.fc(F.relu(self.fc(x))))

    model = Shared()
    with preserved_state(model):
        graph, _ = trace_with_grad(model, torch.randn(3, 4))
    nodes = graph.layers["fc"].activation_nodes
    ops = {n: op.name for op in graph.recording.ops for n in op.outputs}
    assert [ops[n] for n in nodes] == ["relu", "tanh"]


def test_bad_input_raises_as_trace_does() -> None:
    with pytest.raises(TypeError, match=r"trace_with_grad: expected an nn\.Module"):
        trace_with_grad("model", torch.randn(2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="trace_with_grad: the model raised"):
        trace_with_grad(nn.Linear(3, 2), torch.randn(2, 5))
