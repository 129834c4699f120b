"""The model or optimizer inside a framework's wrapper, for every public entry point.

Wrappers that frameworks put around a model or an optimizer, and what stabletrain works on:

============================================ ==============================================
``torch.compile(model)`` (``OptimizedModule``) ``model._orig_mod``: eager, so the recording
                                               hooks are not traced by Dynamo, and names
                                               carry no ``_orig_mod.`` prefix
``DistributedDataParallel``, ``DataParallel``  ``model.module`` (names without ``module.``)
FSDP1 ``FullyShardedDataParallel``             ``model.module``; FSDP2's ``fully_shard``
                                               changes the module in place: nothing to unwrap
accelerate's ``AcceleratedOptimizer``          ``optimizer.optimizer``
Lightning's ``LightningOptimizer``             ``optimizer.optimizer`` (its ``_optimizer``)
============================================ ==============================================

Wrappers nest (a compiled DDP model, DDP around a compiled model): both functions unwrap until
nothing is left to unwrap. A wrapper type is recognised only once its framework has been
imported (``sys.modules``), so this module imports neither accelerate nor Lightning, and an
object of a framework never imported cannot be one of its wrappers.

The optimizer wrappers subclass (or imitate) ``torch.optim.Optimizer`` without calling its
``__init__``, so they lack the step-hook registries: hooks go on the wrapped optimizer, whose
``step`` the wrapper calls.
"""

from __future__ import annotations

import sys
from typing import Any, TypeVar

from torch import nn
from torch.optim import Optimizer

__all__ = ["unwrap_model", "unwrap_optimizer"]

T = TypeVar("T")

# (module that defines the wrapper, class name, attribute holding the wrapped object)
_MODEL_WRAPPERS = (
    ("torch._dynamo.eval_frame", "OptimizedModule", "_orig_mod"),
    ("torch.nn.parallel.distributed", "DistributedDataParallel", "module"),
    ("torch.nn.parallel.data_parallel", "DataParallel", "module"),
    ("torch.distributed.fsdp.fully_sharded_data_parallel", "FullyShardedDataParallel", "module"),
)
_OPTIMIZER_WRAPPERS = (
    ("accelerate.optimizer", "AcceleratedOptimizer", "optimizer"),
    ("lightning.pytorch.core.optimizer", "LightningOptimizer", "_optimizer"),
    ("pytorch_lightning.core.optimizer", "LightningOptimizer", "_optimizer"),
    ("lightning.fabric.wrappers", "_FabricOptimizer", "optimizer"),
)


def _inner(obj: Any, wrappers: tuple[tuple[str, str, str], ...]) -> Any:
    """The object ``obj`` wraps, or None when it is none of ``wrappers``."""
    for module_name, class_name, attribute in wrappers:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if isinstance(cls, type) and isinstance(obj, cls):
            return getattr(obj, attribute)
    return None


def _unwrap(obj: T, wrappers: tuple[tuple[str, str, str], ...]) -> T:
    seen = 0
    inner = _inner(obj, wrappers)
    while inner is not None and seen < 16:  # 16: a cycle guard, far above any real nesting
        obj, seen = inner, seen + 1
        inner = _inner(obj, wrappers)
    return obj


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside ``torch.compile``, DDP, DataParallel and FSDP1 wrappers (any nesting).

    Any other object is returned as it is (the caller validates it).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Linear(2, 2)
        >>> unwrap_model(torch.compile(net, backend="eager")) is net
        True
    """
    inner: nn.Module = _unwrap(model, _MODEL_WRAPPERS)
    return inner


def unwrap_optimizer(optimizer: Optimizer) -> Optimizer:
    """The optimizer inside accelerate's ``AcceleratedOptimizer`` and Lightning's
    ``LightningOptimizer`` (or Fabric's) wrappers (any nesting).

    Any other object is returned as it is (the caller validates it).

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
        >>> unwrap_optimizer(opt) is opt
        True
    """
    inner: Optimizer = _unwrap(optimizer, _OPTIMIZER_WRAPPERS)
    return inner
