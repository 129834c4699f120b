"""constant_weights, init_mismatch, lstm_forget_gate_bias: the measured values match the
theory (PyTorch's default init is 1/√6 of He before a ReLU), deliberate zeros pass, and a model
initialized by stabletrain.auto_init is clean."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import stabletrain as st
from stabletrain import models
from stabletrain.diagnostics.lint import LintThresholds, lint
from tests.diagnostics.lint._helpers import example_input, of_rule

X = example_input(32, 64)
# Relative standard error of the std of n uniform draws: √((κ − 1) / 4n), κ = 9/5; for a 64×64
# weight 0.7 %. Ratios are compared at 4 % (over 5 standard errors).
RTOL = 0.04

# --------------------------------------------------------------------------- init_mismatch


def test_pytorch_default_before_relu_is_one_over_sqrt6_of_he() -> None:
    model = models.mlp(64, 2, depth=3, width=64)
    found = of_rule(lint(model, X), "init_mismatch")
    assert [f.layer for f in found] == ["linear1", "linear2", "linear3"]
    for f in found:
        assert f.value == pytest.approx(1 / math.sqrt(6), rel=RTOL)
        assert (f.threshold, f.severity) == (0.5, "warning")
        assert f.fix.startswith("stabletrain.auto_init(model, x)")
        assert "He" in f.message
        assert "relu" in f.message


def test_depthwise_conv_uses_its_own_fan_in() -> None:
    model = nn.Sequential(nn.Conv2d(64, 64, 3, groups=64), nn.ReLU(), nn.Conv2d(64, 4, 1))
    (found,) = of_rule(lint(model, torch.randn(2, 64, 8, 8)), "init_mismatch")
    # torch's default U(±1/√9) for a depthwise 3×3 against He √(2/9): 1/√6 again
    assert found.layer == "0"
    assert "fan_in 9" in found.message
    assert found.value == pytest.approx(1 / math.sqrt(6), rel=0.1)  # 576 draws: 1.9 % s.e.


def test_he_init_sits_at_ratio_one_and_a_scaled_copy_at_its_scale() -> None:
    model = models.mlp(64, 2, depth=2, width=64, activation="gelu")
    for layer in (model.linear1, model.linear2):
        st.init.he_normal_(layer.weight, nonlinearity="gelu")
    tight = LintThresholds(init_ratio_low=0.96, init_ratio_high=1.04)
    assert of_rule(lint(model, X, thresholds=tight), "init_mismatch") == []
    with torch.no_grad():
        model.linear2.weight.mul_(3.0)
    (found,) = of_rule(lint(model, X), "init_mismatch")
    assert (found.layer, found.threshold) == ("linear2", 2.0)
    assert found.value == pytest.approx(3.0, rel=RTOL)
    assert "grows" in found.message


def test_default_init_before_tanh_is_within_the_band_at_one_over_sqrt3_of_xavier() -> None:
    model = models.mlp(64, 2, depth=2, width=64, activation="tanh")
    assert of_rule(lint(model, X), "init_mismatch") == []
    band = LintThresholds(init_ratio_low=0.65)
    found = of_rule(lint(model, X, thresholds=band), "init_mismatch")
    assert len(found) == 2
    for f in found:  # U(±1/√n) has std 1/√(3n); Xavier's is √(2/(n + n)) = 1/√n
        assert f.value == pytest.approx(1 / math.sqrt(3), rel=RTOL)
        assert "Xavier" in f.message


def test_layers_before_a_norm_are_not_checked_whatever_their_scale() -> None:
    model = models.mlp(64, 2, depth=2, width=64, norm="batch", bias=False)
    with torch.no_grad():
        model.linear1.weight.mul_(100.0)
    assert of_rule(lint(model, X), "init_mismatch") == []


def test_inside_a_residual_branch_a_mismatch_is_only_info() -> None:
    model = models.mlp(32, 2, depth=3, width=64, residual=True)  # block 1 (32 -> 64): no skip
    found = {f.layer: f.severity for f in of_rule(lint(model, X[:, :32]), "init_mismatch")}
    assert found == {
        "hidden1.linear": "warning",
        "hidden2.block.linear": "info",
        "hidden3.block.linear": "info",
    }


@pytest.mark.parametrize("scale", [0.1, 10.0])
def test_the_first_layer_expects_the_inputs_second_moment(scale: float) -> None:
    # auto_init calibrates the first layer to the input's scale: that is not a mismatch
    model, x = models.mlp(64, 2, depth=2, width=64), X * scale
    st.auto_init(model, x)
    assert of_rule(lint(model, x), "init_mismatch") == []
    # the default init against He / √E[x²]: 1/√6 · √E[x²] ≈ 0.41 · scale
    (first,) = of_rule(lint(models.mlp(64, 2, depth=2, width=64), x), "init_mismatch")[:1]
    ms = float(x.square().mean())
    assert first.layer == "linear1"
    assert first.value == pytest.approx(math.sqrt(ms / 6), rel=RTOL)
    assert "E[x²]" in first.message


def test_auto_init_leaves_nothing_to_flag() -> None:
    model = models.mlp(64, 2, depth=3, width=64)
    st.auto_init(model, X)
    assert lint(model, X) == []


# --------------------------------------------------------------------------- constant_weights


def test_zero_hidden_weight_is_an_error_and_a_zero_head_is_deliberate() -> None:
    model = models.mlp(64, 2, depth=2, width=64)
    nn.init.zeros_(model.linear2.weight)
    nn.init.zeros_(model.head.weight)
    found = of_rule(lint(model, X), "constant_weights")
    assert [(f.layer, f.severity, f.value) for f in found] == [("linear2", "error", 0.0)]
    assert "zero" in found[0].message
    assert "stabletrain.auto_init" in found[0].fix


def test_a_nonzero_constant_is_flagged_even_in_the_output_layer() -> None:
    model = models.mlp(64, 2, depth=1, width=64)
    nn.init.constant_(model.linear1.weight, 0.5)
    nn.init.constant_(model.head.weight, 0.25)
    found = of_rule(lint(model, X), "constant_weights")
    assert [f.layer for f in found] == ["linear1", "head"]
    assert "the constant 0.5" in found[0].message


class _Fixup(nn.Module):
    """Fixup's residual block, ``x + fc2(relu(fc1(x)))``: the branch ends in a weight layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 64), nn.Linear(64, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(x)))


@pytest.mark.parametrize(
    ("build", "x"),
    [
        (lambda: nn.Sequential(*(_Fixup() for _ in range(3)), nn.Linear(64, 2)), X),
        (
            lambda: models.transformer(in_features=4, d_model=16, n_heads=2, n_layers=2),
            torch.randn(2, 5, 4),
        ),
    ],
    ids=["fixup_blocks", "pre_ln_transformer"],
)
def test_zeroed_residual_branches_are_deliberate(
    build: Callable[[], nn.Module], x: torch.Tensor
) -> None:
    model = build()
    report = st.auto_init(model, x, residual="zero")
    assert any(p.rule.endswith("×0") for p in report.params)  # some weights really are zero now
    assert of_rule(lint(model, x), "constant_weights") == []


def test_frozen_constant_weights_are_not_flagged() -> None:
    model = models.mlp(64, 2, depth=2, width=64)
    nn.init.constant_(model.linear2.weight, 1 / 64)  # a fixed averaging layer
    model.linear2.weight.requires_grad_(False)
    assert of_rule(lint(model, X), "constant_weights") == []


def test_without_a_graph_a_zero_weight_is_a_warning_that_says_why() -> None:
    model = models.mlp(64, 2, depth=2, width=64, residual=True)
    nn.init.zeros_(model.hidden2.block.linear.weight)
    (found,) = of_rule(lint(model), "constant_weights")
    assert (found.layer, found.severity) == ("hidden2.block.linear", "warning")
    assert "cannot be told apart" in found.message


# --------------------------------------------------------------------------- lstm_forget_gate_bias


def forget_bias(lstm: nn.LSTM, layer: int) -> float:
    """Reference: mean of b_ih + b_hh over the forget block (gates i, f, g, o)."""
    h = lstm.hidden_size
    b_ih = getattr(lstm, f"bias_ih_l{layer}")
    b_hh = getattr(lstm, f"bias_hh_l{layer}")
    return float((b_ih[h : 2 * h] + b_hh[h : 2 * h]).detach().mean())


SEQ = example_input(4, 6, 3)


def test_default_lstm_forget_bias_is_flagged_at_its_worst_layer() -> None:
    model = models.rnn("lstm", 3, 16, num_layers=2)
    (found,) = of_rule(lint(model, SEQ), "lstm_forget_gate_bias")
    worst = min(forget_bias(model.recurrent, k) for k in range(2))
    assert (found.layer, found.threshold) == ("recurrent", 0.5)
    assert found.value == pytest.approx(worst, abs=1e-6)
    assert "forget_bias=" in found.fix
    assert "stabletrain.auto_init" in found.fix


def test_auto_init_sets_the_forget_bias_to_one_and_the_lstm_is_clean() -> None:
    model = models.rnn("lstm", 3, 16, num_layers=2)
    st.auto_init(model, SEQ)
    assert [forget_bias(model.recurrent, k) for k in range(2)] == [1.0, 1.0]
    assert lint(model, SEQ) == []


class Cell(nn.Module):
    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(3, 8, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _c = self.cell(x)
        return h


def test_an_lstm_cell_and_a_bias_free_lstm_are_flagged() -> None:
    (cell,) = of_rule(lint(Cell(), torch.randn(4, 3)), "lstm_forget_gate_bias")
    assert cell.layer == "cell"
    (free,) = of_rule(lint(Cell(bias=False), torch.randn(4, 3)), "lstm_forget_gate_bias")
    assert free.value == 0.0
    assert free.fix.startswith("build the LSTM with bias=True")


def test_gru_has_no_forget_gate_and_the_threshold_is_honoured() -> None:
    assert of_rule(lint(models.rnn("gru", 3, 16), SEQ), "lstm_forget_gate_bias") == []
    low = LintThresholds(forget_bias_min=-10.0)
    assert (
        of_rule(lint(models.rnn("lstm", 3, 16), SEQ, thresholds=low), "lstm_forget_gate_bias") == []
    )
