"""The first rows of an example input: what a structure-only trace needs to run."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._pytree import tree_leaves, tree_map_only


def leading_rows(example_input: Any, rows: int) -> Any | None:
    """``example_input`` with every tensor cut to its first ``rows`` rows, or ``None`` where
    that is not a smaller batch of the same input.

    The batch size is the leading size that every tensor of at least one dimension shares;
    inputs whose tensors disagree on it (a sequence-first ``(T, B, F)`` input beside a ``(B,)``
    length vector, a hidden state ``(layers, B, H)``) have none, and neither has an input
    whose batch is already ``rows`` or fewer. Scalars and non-tensor leaves are kept as they
    are.

    Example:
        >>> x = {"input_ids": torch.zeros(8, 5, dtype=torch.long), "mask": torch.ones(8, 5)}
        >>> {k: tuple(v.shape) for k, v in leading_rows(x, 1).items()}
        {'input_ids': (1, 5), 'mask': (1, 5)}
        >>> leading_rows((torch.zeros(8, 3), torch.zeros(4)), 1) is None
        True
    """
    sizes = {
        t.shape[0] for t in tree_leaves(example_input) if isinstance(t, torch.Tensor) and t.dim()
    }
    if len(sizes) != 1 or next(iter(sizes)) <= rows:
        return None
    return tree_map_only(torch.Tensor, lambda t: t[:rows] if t.dim() else t, example_input)
