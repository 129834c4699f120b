"""Shared fixtures: a tiny SGD training loop."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

TrainFn = Callable[..., tuple[float, float]]


def _sgd_losses(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    steps: int = 30,
    lr: float = 0.05,
) -> tuple[float, float]:
    """Train ``model`` with SGD (momentum 0.9) on one fixed batch; return (first, last) loss."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses[0], losses[-1]


@pytest.fixture
def sgd_losses() -> TrainFn:
    """The training loop of :func:`_sgd_losses`, as a fixture."""
    return _sgd_losses
