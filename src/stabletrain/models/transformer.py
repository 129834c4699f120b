"""A Transformer encoder stack with the LayerNorm placement (Pre-LN or Post-LN) written out.

Post-LN is the original design (Vaswani et al. 2017, "Attention Is All You Need"): normalize
after each residual add. Pre-LN (Xiong et al. 2020, "On Layer Normalization in the Transformer
Architecture") normalizes the input of each sublayer and leaves the residual path untouched,
which keeps gradients well scaled at initialization and trains deep stacks without warmup
(claim R13). The blocks are written by hand, not with ``nn.TransformerEncoderLayer``, so that
the two placements can be read side by side in :meth:`TransformerBlock.forward`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
from torch import nn

from stabletrain._checks import check_choice, check_positive_int
from stabletrain.models._validate import check_dropout, check_optional_positive_int

__all__ = [
    "NORM_POSITIONS",
    "NormPosition",
    "Transformer",
    "TransformerBlock",
    "causal_mask",
    "transformer",
]

NormPosition = Literal["pre", "post"]
NORM_POSITIONS: tuple[NormPosition, ...] = ("pre", "post")


def causal_mask(length: int, device: torch.device | None = None) -> torch.Tensor:
    """A ``(length, length)`` bool mask, True above the diagonal: position t sees 0..t only."""
    return torch.ones(length, length, dtype=torch.bool, device=device).triu(1)


def _check_heads(d_model: int, n_heads: int, where: str) -> None:
    """Raise unless ``n_heads`` divides ``d_model`` (each head gets ``d_model / n_heads``)."""
    if d_model % n_heads != 0:
        divisors = [h for h in range(1, d_model + 1) if d_model % h == 0]
        raise ValueError(
            f"{where}: d_model={d_model} is not divisible by n_heads={n_heads}; each head gets "
            f"d_model / n_heads features. Valid n_heads for d_model={d_model}: {divisors}; or "
            "choose d_model as a multiple of n_heads."
        )


class TransformerBlock(nn.Module):
    """Self-attention and an MLP, each with a residual connection and a LayerNorm.

    - Pre-LN:  ``x = x + attn(ln1(x))``;  ``x = x + mlp(ln2(x))``.
    - Post-LN: ``x = ln1(x + attn(x))``;  ``x = ln2(x + mlp(x))``.

    ``attn`` is ``nn.MultiheadAttention(batch_first=True)`` (dropout on the attention weights) and
    ``mlp`` is ``Linear(d_model, d_ff) -> GELU -> Linear(d_ff, d_model)``; each sublayer's output
    goes through dropout before the add, as in Vaswani et al. 2017, section 5.4.

    Args:
        d_model: width of the residual stream.
        n_heads: attention heads; must divide ``d_model``.
        d_ff: hidden width of the MLP.
        dropout: drop probability in ``[0, 1)``.
        norm_position: ``"pre"`` or ``"post"``.

    Example:
        >>> import torch
        >>> block = TransformerBlock(d_model=32, n_heads=4, d_ff=64, norm_position="pre")
        >>> block(torch.randn(2, 5, 32)).shape
        torch.Size([2, 5, 32])
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        norm_position: NormPosition = "pre",
    ) -> None:
        super().__init__()
        where = "TransformerBlock"
        d_model = check_positive_int("d_model", d_model, where=where)
        n_heads = check_positive_int("n_heads", n_heads, where=where)
        d_ff = check_positive_int("d_ff", d_ff, where=where)
        dropout = check_dropout(dropout, where=where)
        self.norm_position = check_choice(
            "norm_position", norm_position, NORM_POSITIONS, where=where
        )
        _check_heads(d_model, n_heads, where)
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.drop1 = nn.Dropout(dropout)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("fc", nn.Linear(d_model, d_ff)),
                    ("act", nn.GELU()),
                    ("proj", nn.Linear(d_ff, d_model)),
                ]
            )
        )
        self.drop2 = nn.Dropout(dropout)

    def _attend(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        out, _ = self.attn(x, x, x, attn_mask=attn_mask, need_weights=False)  # (B, T, C)
        dropped: torch.Tensor = self.drop1(out)
        return dropped

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.drop2(self.mlp(x))  # (B, T, C)
        return out

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(batch, time, d_model)``; ``attn_mask``: ``(time, time)``, True = masked."""
        if self.norm_position == "pre":
            x = x + self._attend(self.ln1(x), attn_mask)  # (B, T, C)
            x = x + self._feed_forward(self.ln2(x))  # (B, T, C)
        else:
            x = self.ln1(x + self._attend(x, attn_mask))  # (B, T, C)
            x = self.ln2(x + self._feed_forward(x))  # (B, T, C)
        return x

    def extra_repr(self) -> str:
        return f"norm_position={self.norm_position!r}"


class Transformer(nn.Module):
    """Embedding + learned positions -> ``n_layers`` :class:`TransformerBlock` -> norm -> head.

    See :func:`transformer` for the arguments. Children: ``embed`` (``nn.Embedding`` for token
    ids, ``nn.Linear`` for features), the parameter ``pos_embed`` ``(max_len, d_model)``,
    ``dropout``, ``blocks`` (an ``nn.ModuleList``), ``final_norm`` (``nn.LayerNorm`` for Pre-LN,
    ``nn.Identity`` for Post-LN, whose blocks already end with a norm) and ``head``
    (``nn.Identity`` without ``out_features``).
    """

    def __init__(
        self,
        *,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        d_ff: int | None = None,
        dropout: float = 0.0,
        norm_position: NormPosition = "pre",
        vocab_size: int | None = None,
        in_features: int | None = None,
        out_features: int | None = None,
        max_len: int = 512,
        causal: bool = False,
    ) -> None:
        super().__init__()
        where = "transformer"
        d_model = check_positive_int("d_model", d_model, where=where)
        n_heads = check_positive_int("n_heads", n_heads, where=where)
        _check_heads(d_model, n_heads, where)
        n_layers = check_positive_int("n_layers", n_layers, where=where)
        check_choice("norm_position", norm_position, NORM_POSITIONS, where=where)
        d_ff = 4 * d_model if d_ff is None else check_positive_int("d_ff", d_ff, where=where)
        vocab_size = check_optional_positive_int("vocab_size", vocab_size, where=where)
        in_features = check_optional_positive_int("in_features", in_features, where=where)
        out_features = check_optional_positive_int("out_features", out_features, where=where)
        self.max_len = check_positive_int("max_len", max_len, where=where)
        dropout = check_dropout(dropout, where=where)
        self.embed: nn.Module
        if vocab_size is not None and in_features is None:
            self.embed = nn.Embedding(vocab_size, d_model)  # token ids -> vectors
        elif in_features is not None and vocab_size is None:
            self.embed = nn.Linear(in_features, d_model)  # features -> residual stream
        else:
            raise ValueError(
                f"{where}: give exactly one of vocab_size (token ids, (batch, time) ints) or "
                f"in_features (features, (batch, time, in_features) floats); got "
                f"vocab_size={vocab_size} and in_features={in_features}."
            )
        self.vocab_size = vocab_size
        self.in_features = in_features
        self.causal = bool(causal)
        # Learned absolute positions, N(0, 0.02²) as in GPT-2 and ViT.
        self.pos_embed = nn.Parameter(torch.empty(self.max_len, d_model).normal_(std=0.02))
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, n_heads, d_ff, dropout, norm_position)
            for _ in range(n_layers)
        )
        self.final_norm: nn.Module = (
            nn.LayerNorm(d_model) if norm_position == "pre" else nn.Identity()
        )
        self.head: nn.Module = (
            nn.Linear(d_model, out_features) if out_features is not None else nn.Identity()
        )

    def _check_input(self, x: torch.Tensor) -> None:
        tokens = self.vocab_size is not None
        expected = "(batch, time) token ids" if tokens else "(batch, time, in_features) floats"
        if x.dim() != (2 if tokens else 3):
            raise ValueError(
                f"transformer: expected input of shape {expected}, got {tuple(x.shape)}. Add a "
                "batch dimension with x.unsqueeze(0) for one sequence."
            )
        if x.shape[1] > self.max_len:
            raise ValueError(
                f"transformer: sequence length {x.shape[1]} exceeds max_len={self.max_len}, the "
                f"number of learned positions. Build the model with max_len >= {x.shape[1]}, or "
                "split the sequence into chunks."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, T)`` token ids or ``(B, T, in_features)``; returns ``(B, T, out)``."""
        self._check_input(x)
        length = x.shape[1]
        h: torch.Tensor = self.embed(x)  # (B, T, C)
        h = self.dropout(h + self.pos_embed[:length])  # (B, T, C)
        mask = causal_mask(length, x.device) if self.causal else None  # (T, T)
        for block in self.blocks:
            h = block(h, mask)  # (B, T, C)
        h = self.final_norm(h)  # (B, T, C)
        out: torch.Tensor = self.head(h)  # (B, T, out_features), or (B, T, C) without a head
        return out

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, causal={self.causal}"


def transformer(
    *,
    d_model: int = 64,
    n_heads: int = 4,
    n_layers: int = 2,
    d_ff: int | None = None,
    dropout: float = 0.0,
    norm_position: NormPosition = "pre",
    vocab_size: int | None = None,
    in_features: int | None = None,
    out_features: int | None = None,
    max_len: int = 512,
    causal: bool = False,
) -> Transformer:
    """A Transformer encoder stack for token ids or feature sequences.

    Input ``(B, T)`` token ids when ``vocab_size`` is given (``nn.Embedding``), else
    ``(B, T, in_features)`` floats (projected by ``nn.Linear``); both add learned positions
    ``pos_embed[:T]``. Then ``n_layers`` blocks (see :class:`TransformerBlock` for Pre-LN vs
    Post-LN), a final LayerNorm for Pre-LN only, and ``Linear(d_model, out_features)`` at every
    position when ``out_features`` is given. ``causal=True`` masks attention to later positions
    (a decoder-only language model: ``vocab_size=V, out_features=V, causal=True``).

    Args:
        d_model: width of the residual stream.
        n_heads: attention heads; must divide ``d_model``.
        n_layers: number of blocks.
        d_ff: hidden width of each block's MLP; ``4 * d_model`` when None.
        dropout: drop probability in ``[0, 1)`` on the embeddings, the attention weights and
            each sublayer's output.
        norm_position: ``"pre"`` (Xiong et al. 2020) or ``"post"`` (Vaswani et al. 2017).
        vocab_size: number of token ids, for integer inputs.
        in_features: features per position, for float inputs.
        out_features: size of the per-position output; None returns the hidden states.
        max_len: the longest sequence the learned positions cover.
        causal: let position ``t`` attend to positions ``<= t`` only.

    Returns:
        a :class:`Transformer` mapping the input to ``(B, T, out_features)`` (or ``d_model``).

    Raises:
        ValueError: for an unknown ``norm_position``, ``d_model`` not divisible by ``n_heads``,
            neither or both of ``vocab_size`` / ``in_features``, a non-positive size or a dropout
            outside ``[0, 1)``; at forward time, for a sequence longer than ``max_len``.

    Example:
        >>> import torch
        >>> lm = transformer(vocab_size=100, out_features=100, d_model=32, causal=True)
        >>> lm(torch.randint(0, 100, (2, 16))).shape
        torch.Size([2, 16, 100])
        >>> enc = transformer(in_features=6, d_model=32, norm_position="post")
        >>> enc(torch.randn(2, 16, 6)).shape
        torch.Size([2, 16, 32])
    """
    return Transformer(
        d_model=d_model,
        n_heads=n_heads,
        n_layers=n_layers,
        d_ff=d_ff,
        dropout=dropout,
        norm_position=norm_position,
        vocab_size=vocab_size,
        in_features=in_features,
        out_features=out_features,
        max_len=max_len,
        causal=causal,
    )
