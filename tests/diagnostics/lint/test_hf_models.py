"""lint on a Hugging Face BERT built from a config (no download): Post-LN found structurally,
a clean model after auto_init, the graph of diagnose reused; optional extra."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import torch
from torch import nn

import stabletrain as st
from stabletrain.diagnostics.lint import LintThresholds, lint
from tests import _hf as hf
from tests.diagnostics.lint._helpers import of_rule

pytest.importorskip("transformers")


def bert(layers: int) -> tuple[Any, dict[str, torch.Tensor]]:
    ids = torch.randint(0, 100, (2, 12))
    return hf.bert(32, layers), {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
    }


@pytest.fixture(scope="module")
def bert2() -> tuple[Any, dict[str, torch.Tensor], st.graph.Graph]:
    """A two-layer BERT with its default init, its input and its graph (not to be changed)."""
    torch.manual_seed(0)
    model, x = bert(2)
    return model, x, st.trace(model, x)


def test_bert_is_post_ln_two_sublayers_per_layer(bert2: tuple[Any, Any, Any]) -> None:
    model, _, graph = bert2
    assert of_rule(lint(model, graph=graph), "deep_post_ln") == []  # 4 sublayers < 12
    (found,) = of_rule(
        lint(model, graph=graph, thresholds=LintThresholds(post_ln_sublayers=4)), "deep_post_ln"
    )
    assert (found.layer, found.value) == ("encoder.layer.0.attention.output.LayerNorm", 4.0)


def test_six_layer_bert_is_a_deep_post_ln_stack() -> None:
    model, x = bert(6)
    (found,) = of_rule(lint(model, x), "deep_post_ln")
    assert found.value == 12.0
    assert found.severity == "warning"


def test_bert_own_small_init_raises_no_mismatch_since_its_layernorm_absorbs_it() -> None:
    model, x = bert(2)
    # N(0, 0.02) against He for GELU (fan_in 32) is 0.074x, but the FFN's output reaches the
    # LayerNorm after one more layer on every path: the scale cannot compound with depth
    found = of_rule(lint(model, x), "init_mismatch")
    # the pooler's tanh is the model's output: said, as information only
    assert [(f.layer, f.severity) for f in found] == [("pooler.dense", "info")]
    st.auto_init(model, x)
    assert lint(model, x) == []


def test_the_same_small_init_in_a_plain_gelu_stack_is_flagged() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(32, 32), nn.GELU())])
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=0.02)
    found = {f.layer: f for f in of_rule(lint(model, torch.randn(64, 32)), "init_mismatch")}
    assert set(found) == {str(i) for i in range(0, 12, 2)}
    for layer, f in found.items():
        assert f.value == pytest.approx(0.02 / (st.gain("gelu") / 32**0.5), rel=0.15)
        # the last layer's GELU is the model's output: its scale cannot compound
        assert f.severity == ("info" if layer == "10" else "warning")


def test_a_given_graph_is_used_instead_of_tracing_again(
    bert2: tuple[Any, Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, x, graph = bert2
    expected = lint(model, x)

    def no_trace(*args: object) -> None:
        raise AssertionError("traced again")

    monkeypatch.setattr(sys.modules["stabletrain.diagnostics.lint"], "trace", no_trace)
    assert lint(model, graph=graph) == expected
