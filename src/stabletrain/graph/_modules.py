"""Activation modules that compute their function from several torch ops, seen as one activation.

A module such as transformers' ``NewGELUActivation`` computes
``0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))``: a chain of ``pow``, ``mul``, ``add`` and
``tanh`` in which no single op says "GELU". Modules listed here are recorded as one activation op
(their inner ops are not recorded), so the layer before them is followed by ``gelu_tanh``, not by
``mul, pow, add``. Known classes are matched by class name (transformers is never imported);
:func:`register_activation` adds a user's own class.
"""

from __future__ import annotations

from torch import nn

from stabletrain.graph.ops import ACTIVATION_OPS

__all__ = ["ACTIVATION_MODULE_NAMES", "module_activation", "register_activation"]

# class name -> canonical activation (a name of stabletrain.init.gain)
ACTIVATION_MODULE_NAMES: dict[str, str] = {
    "NewGELUActivation": "gelu_tanh",  # transformers: GPT-2, GPT-J, ...
    "NewGELU": "gelu_tanh",  # the same formula as written in nanoGPT and minGPT
    "FastGELUActivation": "gelu_tanh",
    "PytorchGELUTanh": "gelu_tanh",
    "GELUTanh": "gelu_tanh",
    "QuickGELUActivation": "quick_gelu",  # transformers: CLIP, x·σ(1.702x)
    "QuickGELU": "quick_gelu",  # open_clip's name for it
    "SiLUActivation": "silu",
    "MishActivation": "mish",
}
_REGISTERED: dict[type[nn.Module], str] = {}


def register_activation(module_type: type[nn.Module], activation: str) -> None:
    """Record every call of ``module_type`` as the activation ``activation``.

    For a custom activation module built from several ops (``x * torch.sigmoid(1.702 * x)``,
    a hand-written GELU), so that :func:`~stabletrain.graph.trace` and everything built on it
    (``auto_init``, ``lsuv_``, ``diagnose``, lint) see the activation, not its arithmetic. The
    module must not hold parameters: its inner ops are not recorded.

    Args:
        module_type: an ``nn.Module`` subclass.
        activation: a canonical activation name, e.g. ``"gelu"``, ``"gelu_tanh"``, ``"silu"``.

    Raises:
        TypeError: if ``module_type`` is not an ``nn.Module`` subclass.
        ValueError: if ``activation`` is not a known activation name.

    Example:
        >>> import torch
        >>> from stabletrain import graph
        >>> class Swish(nn.Module):
        ...     def forward(self, x):
        ...         return x * torch.sigmoid(x)
        >>> graph.register_activation(Swish, "silu")
        >>> model = nn.Sequential(nn.Linear(4, 8), Swish(), nn.Linear(8, 2))
        >>> graph.trace(model, torch.randn(3, 4)).layers["0"].following[0].describe()
        'silu'
    """
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(
            "register_activation: module_type must be an nn.Module subclass (the class, not an "
            f"instance), got {module_type!r}."
        )
    known = sorted({canonical for canonical, _ in ACTIVATION_OPS.values()})
    if activation not in known:
        raise ValueError(
            f"register_activation: unknown activation {activation!r}; known: {', '.join(known)}."
        )
    _REGISTERED[module_type] = activation


def module_activation(module: nn.Module) -> str | None:
    """The activation a parameter-free module computes as a whole, if it is a known one."""
    if next(module.parameters(recurse=False), None) is not None:
        return None
    for cls in type(module).__mro__:
        if cls in _REGISTERED:
            return _REGISTERED[cls]
    return ACTIVATION_MODULE_NAMES.get(type(module).__name__)
