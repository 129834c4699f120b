"""auto_init on real Hugging Face models built from a config (no download); optional extra."""

from __future__ import annotations

import math

import pytest
import torch

import stabletrain as st
from stabletrain.init import gain

transformers = pytest.importorskip("transformers")


def test_bert_layers_get_the_scheme_of_what_follows_them_and_state_is_kept() -> None:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = transformers.BertModel(config).train()
    before = {k: v.clone() for k, v in model.named_buffers()}
    ids = torch.randint(0, 100, (2, 12))
    report = st.auto_init(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    ffn = report["encoder.layer.0.intermediate.dense.weight"]
    assert ffn.following == "gelu"
    assert ffn.scheme == "he_normal"
    assert ffn.gain == pytest.approx(gain("gelu"))
    assert report["encoder.layer.1.attention.self.query.weight"].scheme == "xavier_uniform"
    assert report["encoder.layer.0.output.LayerNorm.weight"].scheme == "ones"
    assert report["embeddings.word_embeddings.weight"].rule == "embedding: N(0, 1)"
    assert not report.fallbacks
    assert model.training
    for k, v in model.named_buffers():
        assert torch.equal(v, before[k]), k


def test_gpt2_residual_projections_are_found_and_scaled() -> None:
    config = transformers.GPT2Config(
        vocab_size=100,
        n_embd=32,
        n_layer=3,
        n_head=4,
        n_positions=64,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = transformers.GPT2LMHeadModel(config)
    report = st.auto_init(model, torch.randint(0, 100, (2, 12)), residual="scaled")
    for layer in range(3):
        for proj in ("attn.c_proj", "mlp.c_proj"):
            assert "residual scaled" in report[f"transformer.h.{layer}.{proj}.weight"].rule
    assert any("6 residual branch(es)" in note for note in report.notes)


def test_gpt2_mlp_is_followed_by_its_new_gelu_and_gets_he_with_conv1d_fan_in() -> None:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=100, n_embd=64, n_layer=2, n_head=4, n_positions=64, bos_token_id=0
    )
    model = transformers.GPT2LMHeadModel(config)
    report = st.auto_init(model, torch.randint(0, 100, (4, 16)), calibrate_layers=False)
    fc = report["transformer.h.0.mlp.c_fc.weight"]  # Conv1D weight (in 64, out 256)
    assert fc.following == "gelu_tanh"  # NewGELUActivation, a chain of pow/mul/add/tanh
    assert fc.scheme == "he_normal"
    expected = gain("gelu_tanh") / math.sqrt(64)  # fan_in is the 64 inputs, not the 256 outputs
    # std of 64·256 draws: relative standard error 1/sqrt(2·16384) ≈ 0.6%; 3% tolerance
    assert fc.std_after == pytest.approx(expected, rel=0.03)


def test_clip_text_mlp_is_followed_by_quick_gelu_and_gets_its_exact_gain() -> None:
    torch.manual_seed(0)
    config = transformers.CLIPTextConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=16,
        bos_token_id=0,
        eos_token_id=2,
    )
    assert config.hidden_act == "quick_gelu"
    model = transformers.CLIPTextModel(config)
    report = st.auto_init(model, torch.randint(0, 100, (4, 12)), calibrate_layers=False)
    fc1 = report["encoder.layers.0.mlp.fc1.weight"]
    assert fc1.following == "quick_gelu"  # x·σ(1.702x): a mul and a sigmoid, seen as one
    assert fc1.scheme == "he_normal"
    assert fc1.gain == pytest.approx(gain("quick_gelu"))
    # std of 64·32 draws: relative standard error 1/sqrt(2·2048) ≈ 1.6%; 6% tolerance
    assert fc1.std_after == pytest.approx(gain("quick_gelu") / math.sqrt(32), rel=0.06)
