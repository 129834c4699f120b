"""decay_on_norm_or_bias: a naive all-decay group is flagged with the exact count of what
should not decay; stabletrain.param_groups is clean; bad groups raise."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from stabletrain import models, param_groups
from stabletrain.diagnostics.lint import lint
from tests.diagnostics.lint._helpers import example_input, of_rule

X = example_input(4, 8)


def mlp() -> nn.Module:
    return models.mlp(8, 2, depth=2, width=16, norm="layer")


def test_one_all_decay_group_is_flagged_with_every_bias_and_norm_parameter() -> None:
    model = mlp()
    groups = [{"params": list(model.parameters()), "weight_decay": 0.1}]
    (found,) = of_rule(lint(model, X, param_groups=groups), "decay_on_norm_or_bias")
    one_dim = sum(p.ndim == 1 for p in model.parameters())  # 3 biases, 2 × LayerNorm (w, b)
    assert (found.value, found.severity, found.layer) == (float(one_dim), "warning", None)
    assert one_dim == 7
    assert "3 bias, 4 norm" in found.message
    assert "weight_decay=0.1" in found.message
    assert found.fix.startswith("stabletrain.param_groups(model, weight_decay=")


def test_stabletrain_param_groups_are_clean() -> None:
    model = mlp()
    groups = param_groups(model, weight_decay=0.1)
    assert of_rule(lint(model, X, param_groups=groups), "decay_on_norm_or_bias") == []


@pytest.mark.parametrize(("decay", "fires"), [(0.1, True), (0.0, False)])
def test_an_optimizer_is_read_through_its_groups(decay: float, fires: bool) -> None:
    model = mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=decay)
    assert len(of_rule(lint(model, X, param_groups=opt), "decay_on_norm_or_bias")) == fires


def test_embeddings_and_positional_parameters_are_named() -> None:
    model = models.transformer(vocab_size=50, d_model=16, n_heads=2, n_layers=1)
    groups = {"params": model.parameters(), "weight_decay": 0.01}  # one dict, params a generator
    (found,) = of_rule(lint(model, param_groups=groups), "decay_on_norm_or_bias")
    assert "1 embedding" in found.message
    assert "1 positional" in found.message


def test_a_group_without_weight_decay_counts_as_undecayed() -> None:
    model = mlp()
    groups = [{"params": list(model.parameters())}]
    assert of_rule(lint(model, X, param_groups=groups), "decay_on_norm_or_bias") == []


def test_only_groups_that_decay_are_flagged() -> None:
    model = mlp()
    biases = [p for p in model.parameters() if p.ndim == 1]
    weights = [p for p in model.parameters() if p.ndim > 1]
    groups = [{"params": weights, "weight_decay": 0.1}, {"params": biases, "weight_decay": 0.1}]
    (found,) = of_rule(lint(model, X, param_groups=groups), "decay_on_norm_or_bias")
    assert "param group 1" in found.message


@pytest.mark.parametrize(
    ("groups", "error", "match"),
    [
        (lambda m: list(m.parameters()), TypeError, "list of tensors, which carries no weight"),
        (lambda m: m.parameters(), TypeError, "must be an optimizer or a list"),
        (lambda m: [{"weight_decay": 0.1}], TypeError, r"param_groups\[0\] must be a dict"),
        (lambda m: [{"params": 3}], TypeError, r"\['params'\] must be a list of tensors"),
        (lambda m: [{"params": ["w"]}], TypeError, "holds a str"),
        (
            lambda m: [{"params": list(m.parameters()), "weight_decay": -1.0}],
            ValueError,
            "weight_decay'] must be >= 0",
        ),
        (
            lambda m: [{"params": list(nn.Linear(2, 2).parameters()), "weight_decay": 0.1}],
            ValueError,
            "belongs to the model",
        ),
    ],
    ids=["tensors", "generator", "no_params", "params_int", "params_str", "negative", "foreign"],
)
def test_bad_param_groups_raise_clear_errors(
    groups: Any, error: type[Exception], match: str
) -> None:
    model = mlp()
    with pytest.raises(error, match=match):
        lint(model, X, param_groups=groups(model))
