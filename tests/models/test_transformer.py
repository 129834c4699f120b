"""transformer: Pre-LN vs Post-LN against hand-written references, causality, shapes, training."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from stabletrain.models import (
    NORM_POSITIONS,
    NormPosition,
    Transformer,
    TransformerBlock,
    causal_mask,
    transformer,
)

TrainFn = Callable[..., tuple[float, float]]
TOL = {"rtol": 1e-10, "atol": 1e-10}  # float64: the reference does the same ops in the same order


def attend(block: TransformerBlock, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    out, _ = block.attn(x, x, x, attn_mask=mask, need_weights=False)
    return out


def reference_pre(
    block: TransformerBlock, x: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    x = x + attend(block, block.ln1(x), mask)
    return x + block.mlp(block.ln2(x))


def reference_post(
    block: TransformerBlock, x: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    x = block.ln1(x + attend(block, x, mask))
    return block.ln2(x + block.mlp(x))


def randomized_block(norm_position: NormPosition) -> TransformerBlock:
    """A float64 block in eval mode whose LayerNorm gains and shifts are not the identity."""
    block = TransformerBlock(16, 4, 32, dropout=0.1, norm_position=norm_position).double().eval()
    with torch.no_grad():
        for ln in (block.ln1, block.ln2):
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.normal_(std=0.3)
    return block


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    ("norm_position", "reference"), [("pre", reference_pre), ("post", reference_post)]
)
def test_block_matches_its_hand_written_reference(
    norm_position: NormPosition,
    reference: Callable[[TransformerBlock, torch.Tensor, torch.Tensor | None], torch.Tensor],
    causal: bool,
) -> None:
    block = randomized_block(norm_position)
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    mask = causal_mask(7) if causal else None
    torch.testing.assert_close(block(x, mask), reference(block, x, mask), **TOL)


def test_pre_and_post_placements_compute_different_functions() -> None:
    block = randomized_block("pre")
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    assert not torch.allclose(reference_pre(block, x, None), reference_post(block, x, None))


def test_pre_ln_ends_with_a_final_norm_and_post_ln_does_not() -> None:
    pre = transformer(vocab_size=10, norm_position="pre")
    post = transformer(vocab_size=10, norm_position="post")
    assert isinstance(pre.final_norm, nn.LayerNorm)
    assert isinstance(post.final_norm, nn.Identity)
    assert all(b.norm_position == "pre" for b in pre.blocks)
    assert all(b.norm_position == "post" for b in post.blocks)


def test_the_stack_is_embed_positions_blocks_norm_head() -> None:
    model = transformer(vocab_size=50, d_model=32, n_heads=4, n_layers=3, out_features=5)
    assert isinstance(model, Transformer)
    assert isinstance(model.embed, nn.Embedding)
    assert model.pos_embed.shape == (512, 32)
    assert len(model.blocks) == 3
    assert model.blocks[0].mlp.fc.out_features == 4 * 32  # d_ff defaults to 4 * d_model
    assert [type(m) for m in model.blocks[0].mlp] == [nn.Linear, nn.GELU, nn.Linear]
    assert isinstance(model.blocks[0].attn, nn.MultiheadAttention)
    assert model.blocks[0].attn.batch_first
    assert (model.head.in_features, model.head.out_features) == (32, 5)
    features = transformer(in_features=6, d_model=32, d_ff=48, max_len=20)
    assert isinstance(features.embed, nn.Linear)
    assert features.pos_embed.shape == (20, 32)
    assert features.blocks[0].mlp.fc.out_features == 48
    assert isinstance(features.head, nn.Identity)


@pytest.mark.parametrize("norm_position", NORM_POSITIONS)
def test_output_shapes_for_tokens_and_features(norm_position: NormPosition) -> None:
    tokens = transformer(vocab_size=20, out_features=20, d_model=16, norm_position=norm_position)
    assert tokens(torch.randint(0, 20, (3, 9))).shape == (3, 9, 20)
    features = transformer(in_features=5, out_features=2, d_model=16, norm_position=norm_position)
    assert features(torch.randn(3, 9, 5)).shape == (3, 9, 2)
    hidden = transformer(in_features=5, d_model=16, norm_position=norm_position)
    assert hidden(torch.randn(3, 9, 5)).shape == (3, 9, 16)


def test_causal_mask_hides_the_future() -> None:
    expected = torch.tensor([[False, True, True], [False, False, True], [False, False, False]])
    assert torch.equal(causal_mask(3), expected)


@pytest.mark.parametrize("norm_position", NORM_POSITIONS)
def test_causal_output_at_t_ignores_inputs_after_t(norm_position: NormPosition) -> None:
    model = transformer(
        vocab_size=30, out_features=30, d_model=16, norm_position=norm_position, causal=True
    ).eval()
    x = torch.randint(0, 30, (2, 12))
    t = 5
    changed = x.clone()
    changed[:, t + 1 :] = (x[:, t + 1 :] + 1) % 30
    with torch.no_grad():
        before, after = model(x), model(changed)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(after[:, t + 1 :], before[:, t + 1 :])


def test_without_causal_every_position_sees_the_future() -> None:
    model = transformer(in_features=4, d_model=16, causal=False).eval()
    x = torch.randn(2, 8, 4)
    changed = x.clone()
    changed[:, -1] += 1.0
    with torch.no_grad():
        assert not torch.allclose(model(changed)[:, 0], model(x)[:, 0])


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("norm_position", NORM_POSITIONS)
def test_runs_in_train_and_eval_mode(norm_position: NormPosition, causal: bool) -> None:
    model = transformer(
        vocab_size=20,
        out_features=20,
        d_model=16,
        dropout=0.2,
        norm_position=norm_position,
        causal=causal,
    )
    x = torch.randint(0, 20, (3, 9))
    model.train()
    assert torch.isfinite(model(x)).all()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))


@pytest.mark.parametrize("norm_position", NORM_POSITIONS)
def test_sgd_decreases_the_loss_on_a_copy_task(
    norm_position: NormPosition, sgd_losses: TrainFn
) -> None:
    vocab = 8
    x = torch.randint(0, vocab, (16, 10))
    model = transformer(
        vocab_size=vocab,
        out_features=vocab,
        d_model=32,
        n_heads=4,
        norm_position=norm_position,
        causal=True,
    )

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.reshape(-1, vocab), target.reshape(-1))

    first, last = sgd_losses(model, x, x, loss_fn, steps=30, lr=0.05)
    assert last < 0.5 * first


def test_a_sequence_longer_than_max_len_is_rejected_at_forward_time() -> None:
    model = transformer(vocab_size=10, d_model=16, max_len=8)
    assert model(torch.randint(0, 10, (1, 8))).shape == (1, 8, 16)
    with pytest.raises(ValueError, match=r"sequence length 9 exceeds max_len=8.*max_len >= 9"):
        model(torch.randint(0, 10, (1, 9)))


@pytest.mark.parametrize(
    ("model", "x"),
    [
        (transformer(vocab_size=10, d_model=16), torch.randint(0, 10, (2, 4, 1))),
        (transformer(in_features=3, d_model=16), torch.randn(4, 3)),
    ],
)
def test_an_input_of_the_wrong_rank_is_rejected(model: Transformer, x: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="expected input of shape"):
        model(x)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"d_model": 10, "n_heads": 4}, ValueError, r"d_model=10 is not divisible by n_heads=4"),
        ({"norm_position": "middle"}, ValueError, r"unknown norm_position 'middle'.*'pre', 'post'"),
        ({"vocab_size": None}, ValueError, r"exactly one of vocab_size .* or in_features"),
        ({"in_features": 4}, ValueError, r"vocab_size=10 and in_features=4"),
        ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\)"),
        ({"n_layers": 0}, ValueError, r"n_layers must be >= 1"),
        ({"max_len": 0}, ValueError, r"max_len must be >= 1"),
        ({"d_ff": 0}, ValueError, r"d_ff must be >= 1"),
    ],
)
def test_bad_input_raises_naming_the_value_and_the_options(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args: dict[str, object] = {"vocab_size": 10, **kwargs}
    with pytest.raises(error, match=match):
        transformer(**args)  # type: ignore[arg-type]


def test_block_checks_its_own_arguments() -> None:
    with pytest.raises(
        ValueError, match=r"TransformerBlock: d_model=6 is not divisible.*\[1, 2, 3, 6\]"
    ):
        TransformerBlock(6, 4, 12)
    with pytest.raises(ValueError, match=r"unknown norm_position 'sandwich'"):
        TransformerBlock(8, 2, 16, norm_position="sandwich")  # type: ignore[arg-type]
