"""auto_init on real Hugging Face models built from a config (no download); optional extra."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

import stabletrain as st
from stabletrain.init import gain
from tests._hf import bert, clip_text, gpt2

pytest.importorskip("transformers")


def test_bert_layers_get_the_scheme_of_what_follows_them_and_state_is_kept() -> None:
    torch.manual_seed(0)
    model = bert(32, 2).train()
    before = {k: v.clone() for k, v in model.named_buffers()}
    ids = torch.randint(0, 100, (2, 12))
    report = st.auto_init(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    ffn = report["encoder.layer.0.intermediate.dense.weight"]
    assert ffn.following == "gelu"
    assert ffn.scheme == "he_normal"
    assert ffn.gain == pytest.approx(gain("gelu"))
    assert report["encoder.layer.1.attention.self.query.weight"].scheme == "xavier_uniform"
    assert report["encoder.layer.0.output.LayerNorm.weight"].scheme == "ones"
    word = report["embeddings.word_embeddings.weight"]  # summed, then LayerNorm: scale free
    assert word.scheme == "keep"
    assert "a normalization follows" in word.rule
    assert word.std_after == word.std_before
    assert not report.fallbacks
    assert model.training
    for k, v in model.named_buffers():
        assert torch.equal(v, before[k]), k


def test_gpt2_residual_projections_are_found_and_scaled() -> None:
    model = gpt2(32, 3)
    report = st.auto_init(model, torch.randint(0, 100, (2, 12)), residual="scaled")
    for layer in range(3):
        for proj in ("attn.c_proj", "mlp.c_proj"):
            assert "residual scaled" in report[f"transformer.h.{layer}.{proj}.weight"].rule
    assert any("6 residual branch(es)" in note for note in report.notes)


@pytest.mark.parametrize(
    ("build", "name", "activation", "fan_in", "tol"),
    [
        # GPT-2: NewGELUActivation (pow/mul/add/tanh) after a Conv1D stored (in 64, out 256):
        # fan_in is the 64 inputs. Std of 64·256 draws: standard error 0.6%; 3% tolerance.
        (lambda: gpt2(64, 2), "transformer.h.0.mlp.c_fc.weight", "gelu_tanh", 64, 0.03),
        # CLIP: QuickGELUActivation, x·σ(1.702x), after a Linear(32, 64): 2048 draws, 1.6%; 6%
        (lambda: clip_text(32), "encoder.layers.0.mlp.fc1.weight", "quick_gelu", 32, 0.06),
    ],
)
def test_a_composite_activation_module_gets_he_with_its_exact_gain(
    build: Callable[[], torch.nn.Module], name: str, activation: str, fan_in: int, tol: float
) -> None:
    torch.manual_seed(0)
    model = build()
    report = st.auto_init(model, torch.randint(0, 100, (4, 12)), calibrate_layers=False)
    record = report[name]
    assert record.following == activation
    assert record.scheme == "he_normal"
    assert record.gain == pytest.approx(gain(activation))
    assert record.std_after == pytest.approx(gain(activation) / math.sqrt(fan_in), rel=tol)
