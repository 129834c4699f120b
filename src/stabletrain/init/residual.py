"""Residual-aware init: make each residual branch start small, so deep stacks start shallow.

A residual block computes ``x + F(x)``; with ``L`` blocks the variance of the sum grows with
``L`` unless each branch starts small. Branches are found in the traced forward pass (an addition
whose inputs are a block's input, or its projection, and the block's output), not by name.

- ``"zero"``: zero the branch's last normalization weight if one ends the branch, else its last
  layer, so each block starts as the identity (Goyal et al. 2017, "Accurate, Large Minibatch
  SGD"; Hardt & Ma 2017).
- ``"scaled"``: multiply the last layer of each branch by ``1/sqrt(L)`` with ``L`` the number of
  branches, as GPT-2 draws its residual projections from ``N(0, 0.02²/(2·n_layer))``
  (Radford et al. 2019).
- ``"fixup"``: Fixup (Zhang et al. 2019, "Fixup Initialization"): scale every weight layer of a
  branch of ``m`` layers but the last by ``L^(-1/(2m-2))`` and zero the last one; a network
  without normalization then trains at the learning rates of a normalized one.

A branch that ends in a normalization (a ResNet's ``conv -> BN``) has its scale set by the
norm's weight, whatever the layers before it do: every mode then acts on that weight alone
(0 for ``"zero"`` and ``"fixup"``, ``1/sqrt(L)`` for ``"scaled"``). Zeroing the convolution
before the BatchNorm instead would hand the norm a zero-variance input, whose gradient it
multiplies by ``1/sqrt(eps)``.

Zeroing is right only when the branch ends in its last layer (or norm), or in an activation
with ``f(0) = 0`` and ``f'(0) != 0`` (tanh, GELU, SiLU): then the block starts as the identity
and the zeroed layer still gets a gradient. A branch ending in ReLU (``Linear -> ReLU``, as in
``models.mlp(residual=True)``) would output ``relu(0) = 0`` with gradient ``relu'(0) = 0``
through it: the branch would never train. ``"zero"`` and ``"fixup"`` scale such a last layer by
``1/sqrt(L)`` instead (as ``"scaled"``), which bounds the growth of the sum's variance to
about ``e`` over ``L`` blocks (Var multiplies by ``1 + 1/L`` per block at most).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from stabletrain._checks import check_choice
from stabletrain._wrappers import unwrap_model
from stabletrain.graph import STRUCTURE_ROWS, ResidualBranch, trace, transaction

__all__ = [
    "RESIDUAL_MODES",
    "ResidualMode",
    "init_residual_",
    "residual_factors",
    "scale_layer_",
    "zero_keeps_gradient",
]

ResidualMode = Literal["zero", "fixup", "scaled"]
RESIDUAL_MODES: tuple[ResidualMode, ...] = ("zero", "fixup", "scaled")


def scale_layer_(model: nn.Module, name: str, factor: float) -> None:
    """Multiply the weights of layer ``name`` by ``factor``; biases too when it is 0 (a zeroed
    layer outputs exactly 0).

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 2))
        >>> _ = nn.init.ones_(model[0].weight), nn.init.ones_(model[0].bias)
        >>> scale_layer_(model, "0", 0.5)
        >>> model[0].weight.tolist(), model[0].bias.tolist()
        ([[0.5, 0.5], [0.5, 0.5]], [1.0, 1.0])
    """
    module = model.get_submodule(name)
    with torch.no_grad():
        for pname, p in module.named_parameters(recurse=False):
            if factor == 0.0 or not pname.startswith("bias"):
                p.mul_(factor)


def zero_keeps_gradient(activation: str | None) -> bool:
    """Whether a branch ending in ``activation`` (a torch op name; None: no activation) starts
    as the identity with a live gradient when its last layer is zero: ``f(0) = 0``,
    ``f'(0) != 0``.

    Example:
        >>> zero_keeps_gradient("tanh"), zero_keeps_gradient("relu"), zero_keeps_gradient(None)
        (True, False, True)
    """
    if activation is None:
        return True
    fn = getattr(torch.nn.functional, activation, None) or getattr(torch, activation, None)
    if not callable(fn):
        return False
    z = torch.zeros((), requires_grad=True)
    try:
        with torch.enable_grad():
            out = fn(z)
            (slope,) = torch.autograd.grad(out, z)
    except (RuntimeError, TypeError):  # in-place or not differentiable at 0: not safe
        return False
    return float(out.detach()) == 0.0 and float(slope) != 0.0


def init_residual_(
    model: nn.Module,
    example_input: Any = None,
    mode: ResidualMode = "zero",
    *,
    branches: Sequence[ResidualBranch] | None = None,
    include_frozen: bool = False,
) -> dict[str, float]:
    """Rescale the residual branches of ``model`` in place; returns ``{layer: factor}``.

    Layers holding a frozen parameter (``requires_grad=False``) are left as they are unless
    ``include_frozen``; they are not in the result. If anything raises, the model is restored.

    Args:
        model: the model, already initialized (by ``auto_init`` or its own init).
        example_input: an input to trace the model with (unless ``branches`` is given).
        mode: ``"zero"``, ``"scaled"`` or ``"fixup"`` (see the module docstring).
        branches: residual branches from :func:`stabletrain.graph.trace`, to skip tracing.

    A branch whose last layer feeds an activation that would freeze it at zero (ReLU) gets
    ``1/sqrt(L)`` instead of 0 in ``"zero"`` and ``"fixup"`` modes (see the module docstring).

    Example:
        >>> class Block(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc1, self.fc2 = nn.Linear(8, 8), nn.Linear(8, 8)
        ...     def forward(self, x):
        ...         return x + self.fc2(torch.relu(self.fc1(x)))
        >>> model = nn.Sequential(Block(), Block())
        >>> init_residual_(model, torch.randn(4, 8), "fixup")
        {'0.fc1': 0.7071067811865476, '0.fc2': 0.0, '1.fc1': 0.7071067811865476, '1.fc2': 0.0}
    """
    model = unwrap_model(model)
    check_choice("mode", mode, RESIDUAL_MODES, where="init_residual_")
    if branches is None and example_input is None:
        raise ValueError(
            "init_residual_: pass example_input (to find the branches) or "
            "branches=trace(model, x).residuals."
        )
    with transaction(model, "init_residual_") as state:
        if branches is None:
            state.stage = "tracing the model on example_input"
            branches = trace(model, example_input, rows=STRUCTURE_ROWS).residuals
        factors = residual_factors(model, branches, mode)
        if not include_frozen:
            factors = {
                n: f
                for n, f in factors.items()
                if all(p.requires_grad for p in model.get_submodule(n).parameters(recurse=False))
            }
        for name, factor in factors.items():
            state.stage = f"scaling layer {name!r} by {factor:.3g}"
            scale_layer_(model, name, factor)
    return factors


def residual_factors(
    model: nn.Module, branches: Sequence[ResidualBranch], mode: ResidualMode
) -> dict[str, float]:
    """The factor :func:`init_residual_` multiplies each layer by, ``{layer: factor}``, without
    applying it (``auto_init`` applies them around its calibration pass).

    Example:
        >>> class Block(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 4)
        ...     def forward(self, x):
        ...         return x + self.fc2(torch.tanh(self.fc1(x)))
        >>> model = nn.Sequential(*[Block() for _ in range(4)])
        >>> residual_factors(model, trace(model, torch.randn(2, 4)).residuals, "scaled")
        {'0.fc2': 0.5, '1.fc2': 0.5, '2.fc2': 0.5, '3.fc2': 0.5}
    """
    check_choice("mode", mode, RESIDUAL_MODES, where="residual_factors")
    n_branches = len(branches)
    factors: dict[str, float] = {}
    for branch in branches:
        if branch.last_layer is None:
            continue
        zero = 0.0 if zero_keeps_gradient(branch.tail_activation) else None
        if branch.last_norm is not None:
            # a normalization ends the branch: its weight sets the branch's scale (a layer
            # before it is undone by it, and BN of a zeroed layer divides gradients by √eps)
            small = 1.0 / math.sqrt(n_branches)
            factors[branch.last_norm] = small if mode == "scaled" or zero is None else zero
            continue
        if mode == "zero":
            if zero is None:
                factors[branch.last_layer] = 1.0 / math.sqrt(n_branches)
            else:
                factors[branch.last_norm or branch.last_layer] = zero
        elif mode == "scaled":
            factors[branch.last_layer] = 1.0 / math.sqrt(n_branches)
        else:
            m = branch.depth
            if m >= 2:
                scale = n_branches ** (-1.0 / (2 * m - 2))
                for name in branch.weights[:-1]:
                    factors.setdefault(name, scale)
            factors[branch.last_layer] = 1.0 / math.sqrt(n_branches) if zero is None else zero
    # attention ends its branch with its output projection: scale that, not q/k/v
    return {
        f"{n}.out_proj" if isinstance(model.get_submodule(n), nn.MultiheadAttention) else n: f
        for n, f in factors.items()
    }
