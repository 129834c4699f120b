"""A model whose layers have Hugging Face-style long names (``model.layers.0.self_attn.q_proj``),
for the tests that check terminal output keeps every name whole at 80 columns."""

from __future__ import annotations

import torch
from torch import nn


class _Attention(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.o_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.tanh(self.q_proj(x)) * torch.tanh(self.k_proj(x)) + self.v_proj(x)
        return x + self.o_proj(mixed)


class _MLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(width, 2 * width)
        self.down_proj = nn.Linear(2 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down_proj(torch.relu(self.gate_proj(x)))


class _Layer(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.self_attn = _Attention(width)
        self.mlp = _MLP(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.self_attn(x))


class _Body(nn.Module):
    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Layer(width) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class LongNames(nn.Module):
    """``model.layers.{i}.self_attn.{q,k,v,o}_proj``, ``model.layers.{i}.mlp.{gate,down}_proj``
    and ``lm_head``: 16 inputs, 4 outputs."""

    def __init__(self, width: int = 16, depth: int = 2) -> None:
        super().__init__()
        self.model = _Body(width, depth)
        self.lm_head = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.model(x))


def build() -> nn.Module:
    """The model the CLI tests load as ``tests._long_names:build``."""
    return LongNames()


def linear_names(model: nn.Module) -> list[str]:
    """The qualified names of every ``nn.Linear`` in ``model``."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def assert_fits(text: str, width: int, names: list[str]) -> None:
    """Every line of ``text`` is at most ``width`` columns and every name appears whole."""
    too_long = [line for line in text.splitlines() if len(line.rstrip()) > width]
    assert not too_long, f"{len(too_long)} lines over {width} columns, e.g. {too_long[0]!r}"
    missing = [name for name in names if name not in text]
    assert not missing, f"names cut or missing: {missing}"
    assert "…" not in text, "an ellipsis cut a value"
