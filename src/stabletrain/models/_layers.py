"""Layers that more than one builder makes."""

from __future__ import annotations

from typing import Literal

from torch import nn

__all__ = ["NORMS", "NormName", "make_norm1d"]

NormName = Literal["batch", "layer"]
NORMS: tuple[NormName | None, ...] = (None, "batch", "layer")


def make_norm1d(norm: NormName | None, width: int) -> nn.Module | None:
    """``nn.BatchNorm1d(width)``, ``nn.LayerNorm(width)`` or ``None`` (no normalization)."""
    if norm == "batch":
        return nn.BatchNorm1d(width)
    if norm == "layer":
        return nn.LayerNorm(width)
    return None
