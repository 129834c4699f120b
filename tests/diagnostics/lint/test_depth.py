"""deep_plain_stack, deep_saturating, deep_post_ln: fire exactly past their thresholds on
models built to be too deep, and stay silent once residuals or normalization are there."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stabletrain import models
from stabletrain.diagnostics.lint import LintThresholds, lint
from stabletrain.graph import trace
from tests.diagnostics.lint._helpers import example_input, of_rule

X = example_input(8, 8)


def plain(n: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``n`` Linear layers joined by ``activation``: ``n`` weight layers, no norm, no skip."""
    layers: list[nn.Module] = []
    for i in range(n):
        layers.append(nn.Linear(8, 8))
        if i < n - 1:
            layers.append(activation())
    return nn.Sequential(*layers)


@pytest.mark.parametrize(("depth", "fires"), [(20, False), (21, True)])
def test_plain_stack_fires_past_twenty_layers(depth: int, fires: bool) -> None:
    found = of_rule(lint(plain(depth), X), "deep_plain_stack")
    assert [(f.layer, f.value, f.threshold) for f in found] == (
        [("0", float(depth), 20.0)] if fires else []
    )


def test_plain_stack_read_from_module_order_equals_the_traced_one() -> None:
    model = plain(24)
    (traced,) = of_rule(lint(model, X), "deep_plain_stack")
    (static,) = of_rule(lint(model), "deep_plain_stack")
    assert (static.layer, static.value, static.fix) == (traced.layer, traced.value, traced.fix)
    assert "module order" in static.message
    assert "module order" not in traced.message


def test_relu_chain_fix_offers_looks_linear_and_a_tanh_chain_does_not() -> None:
    (relu,) = of_rule(lint(plain(21)), "deep_plain_stack")
    (tanh,) = of_rule(lint(plain(21, nn.Tanh)), "deep_plain_stack")
    assert "looks_linear=True" in relu.fix
    assert "looks_linear" not in tanh.fix
    for fix in (relu.fix, tanh.fix):
        assert 'stabletrain.models.mlp(..., residual=True, norm="layer")' in fix


@pytest.mark.parametrize(
    ("kwargs", "depth"),
    [
        ({}, 9),  # 8 hidden layers and the head
        ({"residual": True}, 1),  # the first block (8 -> 16) has no skip: a chain of one
        ({"norm": "layer"}, 0),
    ],
    ids=["plain", "residual", "layer_norm"],
)
def test_residuals_or_norms_break_the_chain(kwargs: dict[str, object], depth: int) -> None:
    model = models.mlp(8, 2, depth=8, width=16, **kwargs)  # type: ignore[arg-type]
    found = of_rule(lint(model, X, thresholds=LintThresholds(plain_depth=1)), "deep_plain_stack")
    assert [f.value for f in found] == ([float(depth)] if depth > 1 else [])


class Looped(nn.Module):
    """One Linear applied 25 times: the chain counts calls, not modules."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(25):
            x = torch.relu(self.fc(x))
        return x


def test_a_layer_called_in_a_loop_counts_once_per_call() -> None:
    (found,) = of_rule(lint(Looped(), X), "deep_plain_stack")
    assert (found.layer, found.value) == ("fc", 25.0)


@pytest.mark.parametrize(
    ("activation", "depth", "fires"),
    [("tanh", 10, False), ("tanh", 11, True), ("sigmoid", 11, True), ("relu", 11, False)],
)
def test_saturating_stack_fires_past_ten_layers(activation: str, depth: int, fires: bool) -> None:
    model = models.mlp(8, 2, depth=depth, width=8, activation=activation)
    found = of_rule(lint(model, X), "deep_saturating")
    assert [(f.layer, f.value, f.threshold) for f in found] == (
        [("linear1", float(depth), 10.0)] if fires else []
    )
    if fires:
        assert activation in found[0].message
        assert 'activation="relu"' in found[0].fix
        assert "stabletrain.auto_init" in found[0].fix


def test_normalization_silences_the_saturating_rule() -> None:
    model = models.mlp(8, 2, depth=12, width=8, activation="tanh", norm="layer")
    assert of_rule(lint(model, X), "deep_saturating") == []


def transformer(n_layers: int, norm_position: str) -> nn.Module:
    return models.transformer(
        in_features=4,
        d_model=16,
        n_heads=2,
        d_ff=16,
        n_layers=n_layers,
        norm_position=norm_position,  # type: ignore[arg-type]
    )


XS = example_input(2, 5, 4)


@pytest.mark.parametrize(("n_layers", "fires"), [(5, False), (6, True)])
def test_post_ln_transformer_fires_at_six_blocks(n_layers: int, fires: bool) -> None:
    found = of_rule(lint(transformer(n_layers, "post"), XS), "deep_post_ln")
    assert [(f.layer, f.value) for f in found] == (
        [("blocks.0.ln1", 2.0 * n_layers)] if fires else []
    )
    if fires:
        assert 'norm_position="pre"' in found[0].fix
        assert 'residual="zero"' in found[0].fix


def test_pre_ln_has_one_layernorm_after_an_addition_only_the_final_norm() -> None:
    model = transformer(6, "pre")
    graph = trace(model, XS)
    assert of_rule(lint(model, graph=graph), "deep_post_ln") == []
    low = LintThresholds(post_ln_sublayers=1)
    (found,) = of_rule(lint(model, graph=graph, thresholds=low), "deep_post_ln")
    assert (found.layer, found.value) == ("final_norm", 1.0)


def test_torch_post_ln_encoder_is_found_traced_and_from_module_types() -> None:
    layer = nn.TransformerEncoderLayer(16, 2, 16, batch_first=True)
    model = nn.TransformerEncoder(layer, 6, enable_nested_tensor=False)
    traced = of_rule(lint(model, torch.randn(2, 5, 16)), "deep_post_ln")
    static = of_rule(lint(model), "deep_post_ln")
    assert [(f.layer, f.value) for f in traced] == [("layers.0.norm1", 12.0)]
    assert [(f.layer, f.value) for f in static] == [("layers.0.norm1", 12.0)]
    assert "from module types" in static[0].message
    pre = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(16, 2, 16, batch_first=True, norm_first=True),
        6,
        enable_nested_tensor=False,
    )
    assert of_rule(lint(pre), "deep_post_ln") == []
