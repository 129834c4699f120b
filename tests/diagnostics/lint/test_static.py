"""sequential_graph: the graph of a pure nn.Sequential model read from its module order agrees
with the graph traced from a real forward pass, and exists for no other model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from stabletrain import models
from stabletrain.diagnostics.lint._static import is_sequential, sequential_graph
from stabletrain.graph import Graph, trace


def _summary(graph: Graph) -> list[tuple[str, tuple[int, ...], tuple[str, ...], tuple[str, ...]]]:
    """Per layer: name, call order, what follows (readable, with kinds)."""
    return [
        (
            name,
            info.order,
            tuple(f.describe() for f in info.following),
            tuple(f.kind for f in info.following),
        )
        for name, info in graph.layers.items()
    ]


CASES = [
    ("mlp", lambda: models.mlp(8, 3, depth=3, width=16), (4, 8)),
    (
        "mlp_bn_dropout",
        lambda: models.mlp(8, 3, depth=2, width=16, norm="batch", dropout=0.2),
        (4, 8),
    ),
    (
        "mlp_tanh_ln",
        lambda: models.mlp(8, 3, depth=2, width=16, activation="tanh", norm="layer"),
        (4, 8),
    ),
    ("cnn", lambda: models.cnn(in_channels=3, channels=(4, 8), dropout=0.1), (2, 3, 8, 8)),
    (
        "mixed",
        lambda: nn.Sequential(
            nn.Conv1d(2, 4, 3),
            nn.InstanceNorm1d(4, affine=True),
            nn.LeakyReLU(0.2),
            nn.Identity(),
            nn.Flatten(),
            nn.Linear(4 * 6, 8),
            nn.Dropout(0.5),
            nn.GELU(approximate="tanh"),
            nn.Linear(8, 8),
            nn.PReLU(),
            nn.Linear(8, 3),
            nn.LogSoftmax(dim=1),
        ),
        (3, 2, 8),
    ),
]


@pytest.mark.parametrize(("name", "build", "shape"), CASES, ids=[c[0] for c in CASES])
def test_module_order_graph_matches_the_traced_graph(
    name: str, build: Callable[[], nn.Module], shape: tuple[int, ...]
) -> None:
    model = build()
    static = sequential_graph(model)
    assert static is not None
    traced = trace(model, torch.randn(*shape))
    assert _summary(static) == _summary(traced)
    assert static.residuals == traced.residuals == []
    assert static.unused == traced.unused
    for layer in static.layers:
        a, b = static.layers[layer].activation, traced.layers[layer].activation
        assert (a and (a.op, a.params)) == (b and (b.op, b.params)), layer


def test_models_with_a_forward_of_their_own_have_no_static_graph() -> None:
    assert sequential_graph(models.mlp(8, 2, depth=2, width=8, residual=True)) is None
    assert sequential_graph(models.transformer(in_features=4, d_model=8, n_heads=2)) is None
    assert sequential_graph(nn.Sequential(nn.ModuleList([nn.Linear(2, 2)]))) is None
    assert not is_sequential(models.rnn("gru", 2, 4))


def test_a_single_layer_is_its_own_graph() -> None:
    graph = sequential_graph(nn.Linear(4, 2))
    assert graph is not None
    assert list(graph.layers) == [""]
    assert graph.layers[""].following[0].kind == "output"
