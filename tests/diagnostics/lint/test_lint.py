"""lint: the entry point. Bad inputs raise clear errors; findings are ordered, carry a fixed
rule name and a stabletrain fix; the model is left as it was; without an input, a plain
nn.Sequential is read from its module order and any other model gets a note."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import stabletrain as st
from stabletrain import diagnostics, models
from stabletrain.diagnostics.lint import LINT_RULES, LintThresholds, lint
from stabletrain.findings import SEVERITIES, Finding
from tests.diagnostics.lint._helpers import example_input, of_rule

X = example_input(8, 8)


def smelly() -> nn.Sequential:
    """One model with most smells: tanh stack, zero hidden weight, bias and dropout before BN."""
    model = models.mlp(8, 2, depth=20, width=16, activation="tanh")
    nn.init.zeros_(model.linear3.weight)
    return nn.Sequential(
        model, nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 16), nn.BatchNorm1d(16)
    )


def test_rule_names_are_the_fixed_ones_and_exported() -> None:
    assert LINT_RULES == (
        "bias_before_bn",
        "dropout_before_bn",
        "deep_plain_stack",
        "deep_saturating",
        "deep_post_ln",
        "constant_weights",
        "init_mismatch",
        "decay_on_norm_or_bias",
        "lstm_forget_gate_bias",
    )
    assert diagnostics.lint is lint
    assert diagnostics.LintThresholds is LintThresholds


def test_findings_come_errors_first_each_with_a_rule_a_sentence_and_a_stabletrain_fix() -> None:
    model = smelly()
    groups = [{"params": list(model.parameters()), "weight_decay": 0.1}]
    findings = lint(model, X, param_groups=groups)
    rules = {f.rule for f in findings}
    assert rules == {
        "constant_weights",
        "deep_saturating",
        "deep_plain_stack",
        "dropout_before_bn",
        "bias_before_bn",
        "decay_on_norm_or_bias",
    }  # Linear(2, 16)'s default init before ReLU is absorbed by the BatchNorm after the next layer
    ranks = [SEVERITIES.index(f.severity) for f in findings]
    assert ranks == sorted(ranks, reverse=True)
    assert findings[0].rule == "constant_weights"
    for f in findings:
        assert isinstance(f, Finding)
        assert f.rule in LINT_RULES
        assert f.message.endswith("."), f.message
        assert not re.search(r"\.\s+[A-Z]", f.message), f.message  # one sentence
        assert "stabletrain." in f.fix, f.fix


def test_lint_leaves_the_model_as_it_was() -> None:
    model = models.mlp(8, 2, depth=2, width=16, norm="batch").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lint(model, X)
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_plain_sequential_without_input_is_read_from_its_module_order() -> None:
    model = smelly()
    static, traced = lint(model), lint(model, X)
    assert [(f.rule, f.layer, f.value) for f in static] == [
        (f.rule, f.layer, f.value) for f in traced
    ]
    assert all("module order" in f.message for f in static)


def test_another_model_without_input_gets_a_note_of_what_was_skipped() -> None:
    model = models.mlp(8, 2, depth=25, width=8, residual=True)
    findings = lint(model)
    (note,) = of_rule(findings, "needs_example_input")
    assert note.severity == "info"
    assert "deep_plain_stack" in note.message
    assert "init_mismatch" in note.message
    assert "lint(model, example_input)" in note.fix
    assert of_rule(lint(model, X), "needs_example_input") == []


def test_a_graph_from_another_model_or_of_another_type_is_refused() -> None:
    model = models.mlp(8, 2, depth=2, width=8)
    other = st.trace(models.mlp(8, 2, depth=2, width=8), X)
    with pytest.raises(ValueError, match="traced from another model"):
        lint(model, graph=other)
    with pytest.raises(TypeError, match=r"graph must be a stabletrain\.graph\.Graph"):
        lint(model, graph="graph")  # type: ignore[arg-type]


class Picky(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(x)
        return out


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((nn.Linear(8, 2).state_dict(),), {}, TypeError, "expected an nn.Module, got"),
        ((Picky(), "x"), {}, TypeError, "example_input must be a tensor"),
        ((Picky(), torch.randn(3, 5)), {}, ValueError, "the model raised RuntimeError"),
        ((Picky(), X), {"thresholds": {"plain_depth": 3}}, TypeError, "LintThresholds"),
    ],
    ids=["not_a_module", "input_type", "input_shape", "thresholds_dict"],
)
def test_bad_inputs_raise_clear_errors(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        lint(*args, **kwargs)  # type: ignore[arg-type]


def test_clean_models_have_no_findings() -> None:
    for model, x in [
        (models.mlp(8, 2, depth=3, width=16, norm="layer", dropout=0.1), X),
        (
            models.transformer(in_features=4, d_model=16, n_heads=2, n_layers=2),
            torch.randn(2, 5, 4),
        ),
        (models.rnn("gru", 3, 8, num_layers=2), torch.randn(2, 5, 3)),
    ]:
        st.auto_init(model, x)
        assert lint(model, x) == [], type(model).__name__
