"""Whether a model is compiled, through the wrappers around it (:mod:`stabletrain._wrappers`
unwraps them): a graph compiled before the monitor registers its forward hooks never calls
them, and the monitor says so."""

from __future__ import annotations

from torch import nn

_MAX_DEPTH = 16  # wrappers of wrappers; a cycle of attributes stops here


def is_compiled(model: nn.Module) -> bool:
    """Whether ``model`` or a module it wraps was compiled (``torch.compile(model)`` or
    ``model.compile()``)."""
    for _ in range(_MAX_DEPTH):
        if getattr(model, "_compiled_call_impl", None) is not None or hasattr(model, "_orig_mod"):
            return True
        inner = getattr(model, "module", None)  # DDP, DataParallel, FSDP1
        if not isinstance(inner, nn.Module):
            return False
        model = inner
    return False


def has_compiled_module(model: nn.Module) -> bool:
    """Whether ``model`` or any module inside it (a wrapper's, or a submodule compiled on its
    own) is compiled: adding or removing hooks there would make Dynamo recompile it."""
    return any(
        getattr(m, "_compiled_call_impl", None) is not None or hasattr(m, "_orig_mod")
        for m in model.modules()
    )
