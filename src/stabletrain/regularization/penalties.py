"""L1, L2 and elastic-net penalties as loss terms, with their conventions in the signature.

Conventions (claims R1, R4 of the tutorials):

- ``l2_penalty(..., half=True)`` is (λ/2)·Σθ², whose gradient λθ makes plain SGD on
  ``loss + penalty`` take exactly the step of SGD with ``weight_decay=λ``:
  θ ← θ − η·λ·θ − η·∇loss (claim R1). ``half=False`` gives λ·Σθ² (gradient 2λθ).
- ``reduction="mean"`` divides by n, the number of penalized values: the tutorial's
  (λ/2n)·Σθ² form, under which each step shrinks θ by a factor η·λ/n, so λ must grow with n to
  keep the shrink factor (claim R4). ``reduction="sum"`` (default) is the textbook λ/2·‖θ‖².
- ``l1_penalty`` is λ·Σ|θ| (or λ/n·Σ|θ| with ``"mean"``); its subgradient λ·sign(θ) never makes a
  weight exactly zero: use :func:`stabletrain.regularization.proximal_l1` for exact sparsity.

By default only the weights are penalized, with the selection of
:func:`stabletrain.regularization.param_groups` (no biases, norms, gains, embeddings or
positional parameters); pass an iterable of tensors to penalize exactly those.

The penalty is a 0-d float32 tensor (float64 when a penalized tensor is float64): float16 and
bfloat16 weights are summed in float32, where their squares cannot overflow.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Literal, TypeAlias

import torch
from torch import nn

from stabletrain._checks import check_choice, check_real
from stabletrain._norms import norm_dtype
from stabletrain.regularization.classify import Category
from stabletrain.regularization.param_groups import DEFAULT_NO_DECAY, decay_parameters

__all__ = ["Reduction", "elastic_net_penalty", "l1_penalty", "l2_penalty"]

Reduction = Literal["sum", "mean"]
REDUCTIONS: tuple[Reduction, ...] = ("sum", "mean")
Penalized: TypeAlias = "nn.Module | Iterable[torch.Tensor]"


def _tensors(
    target: Penalized, no_decay: Collection[Category], *, where: str
) -> list[torch.Tensor]:
    if isinstance(target, nn.Module):
        return list(decay_parameters(target, no_decay=no_decay))
    if isinstance(target, torch.Tensor):
        tensors = [target]
    elif isinstance(target, Iterable) and not isinstance(target, str | bytes):
        tensors = list(target)
    else:
        raise TypeError(
            f"{where}: expected an nn.Module or an iterable of tensors, got "
            f"{type(target).__name__}; pass the model or [weight, ...]."
        )
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise TypeError(
                f"{where}: expected an nn.Module or an iterable of tensors, got an element of "
                f"type {type(t).__name__}."
            )
        if not (t.is_floating_point() or t.is_complex()):
            raise TypeError(
                f"{where}: cannot penalize a tensor of dtype {t.dtype}: a penalty is for "
                "floating-point parameters; pass the model's weights, or cast with .float()."
            )
    return tensors


def _norms(
    tensors: list[torch.Tensor], order: float, reduction: Reduction, *, where: str
) -> torch.Tensor:
    """Σ‖θ_i‖_order^order over the tensors (divided by their total size for ``"mean"``).

    Norms are taken in float32 at least (float64 for float64): a float16 ‖θ‖² overflows from
    256 values of 16. The sum is in the widest of those dtypes; ``"mean"`` over no values is 0.
    """
    check_choice("reduction", reduction, REDUCTIONS, where=where)
    if not tensors:
        return torch.zeros(())
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    norms: list[torch.Tensor] = []
    for dtype, group in by_dtype.items():  # one fused kernel per dtype (and device)
        accumulate = None if dtype.is_complex else norm_dtype(dtype)
        norms += torch._foreach_norm(group, order, dtype=accumulate)
    wide = torch.float64 if any(n.dtype == torch.float64 for n in norms) else torch.float32
    device = tensors[0].device
    total = torch.stack([n.to(device, wide) for n in norms]).pow(order).sum()
    if reduction == "mean":
        total = total / max(sum(t.numel() for t in tensors), 1)
    return total


def l2_penalty(
    target: Penalized,
    coefficient: float,
    *,
    half: bool = True,
    reduction: Reduction = "sum",
    no_decay: Collection[Category] = DEFAULT_NO_DECAY,
) -> torch.Tensor:
    """The L2 penalty (λ/2)·Σθ² (``half=False``: λ·Σθ²), to add to the loss.

    With plain SGD, ``loss + l2_penalty(model, λ)`` gives the same trajectory as SGD with
    ``weight_decay=λ`` (claim R1); with Adam it does not (the adaptive step rescales it: use
    AdamW or decoupled decay, Loshchilov & Hutter 2019, "Decoupled Weight Decay
    Regularization"). ``reduction="mean"`` is the tutorial's λ/(2n) form (claim R4).

    Args:
        target: a model (its weights, selected like :func:`param_groups`) or tensors.
        coefficient: λ >= 0.
        half: (λ/2)·Σθ² (True) or λ·Σθ².
        reduction: ``"sum"`` or ``"mean"`` (divide by the number of values n).
        no_decay: categories left out when ``target`` is a model.

    Raises:
        TypeError: ``target`` is neither a model nor tensors, or holds a tensor that is not
            floating point (or complex).
        ValueError: a negative or non-finite coefficient, an unknown ``reduction``.

    Example:
        >>> import torch
        >>> w = torch.tensor([3.0, 4.0])
        >>> l2_penalty([w], 0.1)
        tensor(1.2500)
    """
    where = "l2_penalty"
    lam = check_real("coefficient", coefficient, where=where, non_negative=True)
    total = _norms(_tensors(target, no_decay, where=where), 2.0, reduction, where=where)
    return total * (lam / 2 if half else lam)


def l1_penalty(
    target: Penalized,
    coefficient: float,
    *,
    reduction: Reduction = "sum",
    no_decay: Collection[Category] = DEFAULT_NO_DECAY,
) -> torch.Tensor:
    """The L1 penalty λ·Σ|θ| (Tibshirani 1996, "Regression Shrinkage and Selection via the Lasso").

    Its subgradient moves every weight by the constant η·λ per step (claim R3), toward 0 but
    never to exactly 0; the proximal step of :mod:`stabletrain.regularization.proximal` does.

    Args:
        target: a model (its weights, selected like :func:`param_groups`) or tensors.
        coefficient: λ >= 0.
        reduction: ``"sum"`` or ``"mean"`` (λ/n·Σ|θ|, the tutorial's form).
        no_decay: categories left out when ``target`` is a model.

    Raises:
        TypeError: ``target`` is neither a model nor tensors, or holds a tensor that is not
            floating point (or complex).
        ValueError: a negative or non-finite coefficient, an unknown ``reduction``.

    Example:
        >>> import torch
        >>> l1_penalty([torch.tensor([3.0, -4.0])], 0.1)
        tensor(0.7000)
    """
    where = "l1_penalty"
    lam = check_real("coefficient", coefficient, where=where, non_negative=True)
    return lam * _norms(_tensors(target, no_decay, where=where), 1.0, reduction, where=where)


def elastic_net_penalty(
    target: Penalized,
    l1: float,
    l2: float,
    *,
    half: bool = True,
    reduction: Reduction = "sum",
    no_decay: Collection[Category] = DEFAULT_NO_DECAY,
) -> torch.Tensor:
    """The elastic net λ₁·Σ|θ| + (λ₂/2)·Σθ² (Zou & Hastie 2005, "Regularization and Variable
    Selection via the Elastic Net"): L1's sparsity with L2's grouping of correlated inputs.
    ``half``, ``reduction`` and ``no_decay`` as in :func:`l2_penalty`.

    Raises:
        TypeError: ``target`` is neither a model nor tensors, or holds a tensor that is not
            floating point (or complex).
        ValueError: a negative or non-finite ``l1`` or ``l2``, an unknown ``reduction``.

    Example:
        >>> import torch
        >>> elastic_net_penalty([torch.tensor([3.0, -4.0])], l1=0.1, l2=0.1)
        tensor(1.9500)
    """
    where = "elastic_net_penalty"
    lam1 = check_real("l1", l1, where=where, non_negative=True)
    lam2 = check_real("l2", l2, where=where, non_negative=True)
    tensors = _tensors(target, no_decay, where=where)
    l1_term = lam1 * _norms(tensors, 1.0, reduction, where=where)
    l2_term = _norms(tensors, 2.0, reduction, where=where) * (lam2 / 2 if half else lam2)
    return l1_term + l2_term
