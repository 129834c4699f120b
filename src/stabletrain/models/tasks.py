"""Synthetic tasks the models are trained on in the lab and the benchmarks, from a seed."""

from __future__ import annotations

import torch

__all__ = ["adding_problem"]


def adding_problem(
    generator: torch.Generator, rows: int, length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem (Hochreiter & Schmidhuber 1997): x ``(rows, length, 2)`` holds values
    U(0, 1) and markers; y ``(rows, 1)`` is the sum of the two marked values.

    One marker in each half of the sequence (Le et al. 2015, Arjovsky et al. 2016), so the first
    marked value must be remembered for at least ``length / 2`` steps. Predicting the mean (1.0)
    gives MSE 1/6.

    Example:
        >>> x, y = adding_problem(torch.Generator().manual_seed(0), 4, 10)
        >>> x.shape, y.shape, x[..., 1].sum(1).tolist()
        (torch.Size([4, 10, 2]), torch.Size([4, 1]), [2.0, 2.0, 2.0, 2.0])
        >>> torch.allclose(y[:, 0], (x[..., 0] * x[..., 1]).sum(1))
        True
    """
    values = torch.rand(rows, length, generator=generator)
    first = torch.randint(0, length // 2, (rows,), generator=generator)
    second = torch.randint(length // 2, length, (rows,), generator=generator)
    markers = torch.zeros(rows, length)
    arange = torch.arange(rows)
    markers[arange, first] = 1.0
    markers[arange, second] = 1.0
    x = torch.stack([values, markers], dim=-1)  # (B, T, 2)
    y = (values * markers).sum(1, keepdim=True)  # (B, 1)
    return x, y
