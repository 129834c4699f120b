"""Layer discovery: which modules, in which order, with which units and activation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.graph import trace
from stabletrain.monitoring._layers import discover


class HeadFirst(nn.Module):
    """Registers its head before its body, and applies a functional ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 2)
        self.body = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(F.relu(self.body(x))))


def test_without_a_trace_layers_come_in_registration_order() -> None:
    layers = discover(HeadFirst(), None, level=0.99)
    assert [layer.name for layer in layers] == ["head", "body", "norm"]
    assert all(layer.input_kind is None for layer in layers)


def test_with_a_trace_layers_come_in_execution_order_with_functional_activations() -> None:
    model = HeadFirst()
    layers = discover(model, trace(model, torch.randn(3, 4)), level=0.99)
    assert [layer.name for layer in layers] == ["body", "norm", "head"]
    kind = layers[0].input_kind
    assert kind is not None
    assert kind.name == "relu"
    assert kind.space == "input"


def test_depth_counts_weight_layers_only() -> None:
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    depths = [layer.depth for layer in discover(model, None, level=0.99)]
    assert depths == [None, 0, None, 1]


def test_units_are_channels_for_convolutions_and_norms_and_features_otherwise() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.GroupNorm(2, 4), nn.Flatten(), nn.Linear(4, 2)
    )
    dims = {layer.name: layer.unit_dim for layer in discover(model, None, level=0.99)}
    assert dims == {"0": 1, "1": 1, "2": 1, "4": -1}


def test_a_shared_parameter_belongs_to_its_first_layer_only() -> None:
    a = nn.Linear(4, 4)
    b = nn.Linear(4, 4)
    b.weight = a.weight
    layers = discover(nn.Sequential(a, b), None, level=0.99)
    assert [len(layer.params) for layer in layers] == [2, 1]
    assert layers[1].params[0] is b.bias
    assert layers[1].matrix is None


def shared_twice() -> nn.Sequential:
    """One Linear called at two positions (registered as "2" and "4"), then a head "5"."""
    shared = nn.Linear(8, 8)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.Tanh(), shared, nn.Linear(8, 2))


def test_a_module_called_at_two_positions_keeps_the_trace_s_order_depth_and_activation() -> None:
    torch.manual_seed(0)
    model = shared_twice()
    graph = trace(model, torch.randn(3, 4))
    layers = discover(model, graph, level=0.99)
    assert [id(layer.module) for layer in layers] == [id(i.module) for i in graph.layers.values()]
    assert [layer.name for layer in layers] == ["0", "2", "5"]  # first registered name
    assert [layer.depth for layer in layers] == [0, 1, 2]
    kind = layers[1].input_kind
    assert kind is not None
    assert kind.name == "tanh"
