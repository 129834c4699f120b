"""bias_before_bn and dropout_before_bn: fire on the smell, name the layers and the fix, and
stay silent where the norm does not cancel the bias or no BatchNorm follows the dropout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import stabletrain as st
from stabletrain import models
from stabletrain.diagnostics.lint import lint
from tests.diagnostics.lint._helpers import example_input, of_rule

X = example_input(16, 8)


def test_linear_bias_cancelled_by_batchnorm_is_flagged_with_its_size() -> None:
    model = models.mlp(8, 2, depth=2, width=32, norm="batch")
    found = of_rule(lint(model, X), "bias_before_bn")
    assert [(f.layer, f.value, f.severity) for f in found] == [
        ("linear1", 32.0, "info"),
        ("linear2", 32.0, "info"),
    ]
    assert "norm1" in found[0].message
    assert "bias=False" in found[0].fix
    assert "stabletrain.models.mlp" in found[0].fix


def test_conv_bias_before_batchnorm_and_instancenorm_is_flagged() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3), nn.InstanceNorm2d(4)
    )
    found = of_rule(lint(model, torch.randn(2, 3, 8, 8)), "bias_before_bn")
    assert [f.layer for f in found] == ["0", "2"]


@pytest.mark.parametrize(
    "model",
    [
        models.mlp(8, 2, depth=2, width=16, norm="batch", bias=False),
        models.mlp(8, 2, depth=2, width=16, norm="layer"),  # per-sample: does not cancel a bias
        models.cnn(in_channels=8, channels=(4,)),
    ],
    ids=["no_bias", "layer_norm", "cnn"],
)
def test_bias_rule_is_silent_where_the_norm_does_not_cancel_a_bias(model: nn.Module) -> None:
    x = torch.randn(4, 8, 4, 4) if isinstance(model[0], nn.Sequential) else X
    assert of_rule(lint(model, x), "bias_before_bn") == []


class SharedOutput(nn.Module):
    """The Linear's output feeds a BatchNorm and a skip: the bias survives on the skip."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(8, 8), nn.BatchNorm1d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return h + self.bn(h)


def test_bias_rule_is_silent_when_the_output_also_goes_elsewhere() -> None:
    assert of_rule(lint(SharedOutput(), X), "bias_before_bn") == []


def test_dropout_feeding_the_next_layers_batchnorm_is_flagged() -> None:
    # Linear -> BN -> ReLU -> Dropout -> Linear -> BN: the second BN sees dropout's variance
    model = models.mlp(8, 2, depth=2, width=16, norm="batch", dropout=0.1, bias=False)
    found = of_rule(lint(model, X), "dropout_before_bn")
    assert [(f.layer, f.value, f.severity) for f in found] == [("dropout1", 0.1, "warning")]
    assert "norm2" in found[0].message
    assert "stabletrain.models.cnn(..., dropout=p)" in found[0].fix


def test_dropout_directly_before_batchnorm_is_flagged() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Dropout(0.3), nn.BatchNorm1d(8))
    assert [f.layer for f in of_rule(lint(model, X), "dropout_before_bn")] == ["2"]


class FunctionalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.bn(F.dropout(x, 0.2, self.training))
        return out


def test_functional_dropout_is_flagged_at_the_module_that_calls_it() -> None:
    found = of_rule(lint(FunctionalDropout(), X), "dropout_before_bn")
    assert [f.layer for f in found] == [None]  # the root module calls it
    assert found[0].value != found[0].value  # p unknown for a functional call: NaN


@pytest.mark.parametrize(
    "model",
    [
        models.cnn(in_channels=8, channels=(4,), dropout=0.5),  # dropout only before the head
        nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.0), nn.BatchNorm1d(8)),  # p = 0: no-op
        nn.Sequential(nn.Dropout(0.2), nn.Linear(8, 8), nn.ReLU(), nn.BatchNorm1d(8)),
        nn.Sequential(nn.Dropout(0.2), nn.LayerNorm(8)),
    ],
    ids=["cnn_head_dropout", "p0", "nonlinear_between", "layer_norm"],
)
def test_dropout_rule_is_silent_without_dropout_then_batchnorm(model: nn.Module) -> None:
    x = torch.randn(4, 8, 4, 4) if isinstance(model[0], nn.Sequential) else X
    assert of_rule(lint(model, x), "dropout_before_bn") == []


def test_clean_cnn_after_auto_init_has_no_findings_at_all() -> None:
    model = models.cnn(in_channels=3, channels=(8, 16), dropout=0.2)
    x = torch.randn(8, 3, 8, 8)
    st.auto_init(model, x)
    assert lint(model, x) == []
