"""Leave a model exactly as it was: buffers (BatchNorm running stats) and train/eval modes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Restore every buffer's values and every module's ``training`` flag on exit.

    A forward pass in train mode updates BatchNorm's running statistics and its
    ``num_batches_tracked``; measuring a model must not.
    """
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for module, training in modes:
            module.training = training
