"""Small Hugging Face models built from a config (nothing downloaded), for the tests of the
optional ``transformers`` extra. Callers skip first: ``pytest.importorskip("transformers")``."""

from __future__ import annotations

from typing import Any


def bert(
    hidden: int = 32, layers: int = 2, *, vocab: int = 100, intermediate: int | None = None
) -> Any:
    """``BertModel`` with 4 heads, 64 positions and an FFN of ``intermediate`` (2 x hidden)."""
    import transformers

    config = transformers.BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=intermediate or 2 * hidden,
        max_position_embeddings=64,
    )
    return transformers.BertModel(config)


def gpt2(
    n_embd: int,
    n_layer: int,
    *,
    n_head: int = 4,
    vocab: int = 100,
    positions: int = 64,
    lm_head: bool = True,
) -> Any:
    """``GPT2LMHeadModel`` (or the bare ``GPT2Model``) with token 0 as BOS and EOS."""
    import transformers

    config = transformers.GPT2Config(
        vocab_size=vocab,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_positions=positions,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config) if lm_head else transformers.GPT2Model(config)


def clip_text(hidden: int) -> Any:
    """``CLIPTextModel``: 2 layers, 4 heads, FFN 2 x hidden, QuickGELU (its default)."""
    import transformers

    config = transformers.CLIPTextConfig(
        vocab_size=100,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=16,
        bos_token_id=0,
        eos_token_id=2,
    )
    assert config.hidden_act == "quick_gelu"
    return transformers.CLIPTextModel(config)
