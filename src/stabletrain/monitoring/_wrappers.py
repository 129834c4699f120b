"""The user's module and optimizer under the wrappers frameworks put around them.

``DistributedDataParallel`` and ``DataParallel`` hold the model as ``.module``; ``torch.compile``
returns an ``OptimizedModule`` holding it as ``._orig_mod``; Lightning's ``LightningOptimizer``
and accelerate's ``AcceleratedOptimizer`` hold the optimizer as ``.optimizer``. The monitor
hooks and names the inner objects: the layers keep the names the user gave them, and an
optimizer step is counted on the optimizer that really steps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_MAX_DEPTH = 8  # wrappers of wrappers; a cycle of attributes stops here


def _inner_module(model: nn.Module) -> nn.Module | None:
    inner = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
    if isinstance(inner, nn.Module):
        return inner
    if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        module: nn.Module = model.module
        return module
    return None


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DDP, DataParallel and ``torch.compile`` wrappers (``model`` if none)."""
    for _ in range(_MAX_DEPTH):
        inner = _inner_module(model)
        if inner is None:
            break
        model = inner
    return model


def is_compiled(model: nn.Module) -> bool:
    """Whether ``model`` or a module it wraps was compiled (``torch.compile(model)`` or
    ``model.compile()``)."""
    for _ in range(_MAX_DEPTH):
        if getattr(model, "_compiled_call_impl", None) is not None or hasattr(model, "_orig_mod"):
            return True
        inner = _inner_module(model)
        if inner is None:
            return False
        model = inner
    return False


def unwrap_optimizer(optimizer: Any) -> Any:
    """The ``torch.optim.Optimizer`` inside framework wrappers (``optimizer`` if none)."""
    for _ in range(_MAX_DEPTH):
        inner = getattr(optimizer, "optimizer", None)
        if not isinstance(inner, torch.optim.Optimizer) or inner is optimizer:
            break
        optimizer = inner
    return optimizer
