"""How a weight splits into output units (rows of a Linear weight, filters of a convolution),
shared by adaptive gradient clipping and the max-norm constraint."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

CONV_TRANSPOSE = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True)
class Units:
    """How a tensor splits into units: ``dim`` (None: one unit) after splitting dim 0 in
    ``groups`` (grouped transposed convolutions, whose output channels are (group, dim 1))."""

    dim: int | None
    groups: int = 1

    def view(self, t: torch.Tensor) -> torch.Tensor:
        # splitting a dimension is always a view, so in-place ops on it reach the gradient
        if self.groups == 1:
            return t
        split: torch.Tensor = t.unflatten(0, (self.groups, -1))  # type: ignore[no-untyped-call]
        return split

    def reduce_dims(self, ndim: int) -> list[int]:
        if self.dim is None:
            return list(range(ndim))
        if self.groups > 1:  # view (G, in/G, out/G, *k): units are (group, out channel)
            return [d for d in range(ndim + 1) if d not in (0, self.dim + 1)]
        return [d for d in range(ndim) if d != self.dim]


def is_hf_conv1d(module: nn.Module | None) -> bool:
    # transformers' GPT-2 Conv1D stores its weight as (in, out); matched by name, not imported
    return type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers")
