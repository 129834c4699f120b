"""The residual connection ``y = x + F(x)`` as a module (He et al. 2016, "Deep Residual
Learning for Image Recognition").

The identity path carries the signal and its gradient past ``F`` unchanged: ``∂y/∂x = I + ∂F/∂x``,
so gradients do not vanish with depth (claim S5). ``F`` must keep the shape of ``x``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Residual"]


class Residual(nn.Module):
    """Wrap ``block`` as ``x + block(x)``.

    Args:
        block: a module whose output has the shape of its input.

    Example:
        >>> res = Residual(nn.Linear(4, 4))
        >>> _ = nn.init.zeros_(res.block.weight), nn.init.zeros_(res.block.bias)
        >>> x = torch.randn(2, 4)
        >>> torch.equal(res(x), x)
        True
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        if not isinstance(block, nn.Module):
            raise TypeError(f"Residual: block must be an nn.Module, got {type(block).__name__}.")
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update: torch.Tensor = self.block(x)
        if update.shape != x.shape:
            raise ValueError(
                f"Residual: the block maps shape {tuple(x.shape)} to {tuple(update.shape)}; a "
                "skip connection needs them equal. Project the skip path, or keep the block's "
                "output size equal to its input size."
            )
        return x + update
