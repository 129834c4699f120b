"""lint on a Hugging Face BERT built from a config (no download): Post-LN found structurally,
a clean model after auto_init, the graph of diagnose reused; optional extra."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import torch

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


def test_bert_default_init_is_too_small_for_its_activations_and_auto_init_cleans_it() -> None:
    model, x = bert(2)
    found = of_rule(lint(model, x), "init_mismatch")
    # N(0, 0.02) against He for GELU (fan_in 32): 0.02 / (1.5335 / √32) ≈ 0.074
    ffn = {f.layer: f for f in found if f.layer and "intermediate" in f.layer}
    assert set(ffn) == {f"encoder.layer.{i}.intermediate.dense" for i in range(2)}
    for f in ffn.values():
        assert f.value == pytest.approx(0.02 / (st.gain("gelu") / 32**0.5), rel=0.1)
        assert f.severity == "info"  # inside a residual branch: may be deliberate
    st.auto_init(model, x)
    assert lint(model, x) == []


def test_a_given_graph_is_used_instead_of_tracing_again(
    bert2: tuple[Any, Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, x, graph = bert2
    expected = lint(model, x)

    def no_trace(*args: object) -> None:
        raise AssertionError("traced again")

    monkeypatch.setattr(sys.modules["stabletrain.diagnostics.lint"], "trace", no_trace)
    assert lint(model, graph=graph) == expected
