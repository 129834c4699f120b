"""Gradient clipping that returns what it measured: by norm (global or per layer) and by value.
Adaptive unit-wise clipping (AGC) is in :mod:`stabletrain.stability.adaptive`.

Conventions shared by every function here:

- **Input**: a model (its parameters, named, each owned by the module that registers it), one
  tensor, an iterable of tensors, or of ``(name, tensor)`` pairs (``model.named_parameters()``).
  Parameters without a gradient are ignored; a tensor given twice counts once.
- **What was measured is returned, before clipping, as device tensors** (float32, float64 for
  float64 gradients; fp16/bf16 gradients are measured in float32 so their norm cannot overflow).
- **Finite gradients have a finite norm wherever the norm is representable.** The per-gradient
  norms are combined scaled by their largest, m·‖(‖g_i‖/m)_i‖_p, so norms of 1e19 each do not
  overflow when summed (``torch.nn.utils.get_total_norm`` returns inf there). Each gradient's
  own norm is computed as max|g|·‖g/max|g|‖_p (no sum of p-th powers can overflow or
  underflow) always for p > 2, and for p <= 2 whenever the fused kernel's Σ|g|^p overflowed
  (entries near 1e19 in float32) and that can be seen: on the CPU, where reading it back is
  free, at every call; on an accelerator with ``sync=True`` or ``error_if_nonfinite=True``
  here, and at every step of :class:`~stabletrain.stability.StepGuard`. Without a read on an
  accelerator the norm stays inf and the gradients are left as they are (below).
- **Gradients are real floating point** (float16, bfloat16, float32, float64): an integer,
  bool or complex gradient raises ``TypeError`` naming the parameter.
- **Fused and asynchronous**: one ``torch._foreach_norm`` per (device, dtype) group measures every
  gradient, one ``torch._foreach_mul_`` per group rescales them. Nothing is read back to the
  host unless ``sync=True`` or ``error_if_nonfinite=True`` (one transfer each call).
- **Non-finite gradients are left as they are.** ``torch.nn.utils.clip_grad_norm_`` multiplies
  every gradient by ``max_norm / (nan + 1e-6)``, turning all of them to NaN without a word
  (pytorch#46849). Here, when a measured norm is NaN or ±inf the gradients it covers are not
  rescaled: finite gradients stay finite, the fault stays where it was, and the returned norm is
  non-finite. Test it with ``torch.isfinite(norm)``, let :class:`~stabletrain.stability.StepGuard`
  skip the step, or pass ``error_if_nonfinite=True`` to raise :class:`NonFiniteGradError`
  naming the parameters. Value clipping clamps ±inf to ±clip_value (as ``torch.clamp``) and
  leaves NaN, but still returns the non-finite max so the fault is visible.
- **Distributed**: under DDP each rank holds the averaged gradient, so local norms are global.
  Sharded gradients (``DTensor``, from FSDP2's ``fully_shard``) are measured locally and their
  p-th powers summed over the shards with one all-reduce: every rank gets the global norm.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Literal, overload

import torch

from stabletrain._checks import check_real
from stabletrain._norms import safe_scale
from stabletrain.stability._distributed import (
    GradSet,
    index_tensor,
    is_partial,
)
from stabletrain.stability._params import (
    NAMED_AT_MOST,
    NonFiniteGradError,
    Parameters,
    Params,
    raise_nonfinite,
)

__all__ = [
    "NonFiniteGradError",
    "Parameters",
    "clip_grad_norm_",
    "clip_grad_value_",
    "grad_norm",
]

_EPS = 1e-6  # the clip coefficient is max_norm / (norm + _EPS), as in torch's clip_grad_norm_


def check_norm_type(norm_type: float, *, where: str) -> float:
    """``norm_type`` as a float p > 0 (``inf`` allowed): any real number (Python, NumPy or a
    one-element real tensor), not a bool."""
    value: object = norm_type
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item() if value.dtype != torch.bool else value
    if isinstance(value, bool | torch.Tensor) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{where}: norm_type must be a real number such as 2.0 or float('inf'), got "
            f"{type(norm_type).__name__}."
        )
    p = float(value)
    if math.isnan(p) or p <= 0:
        raise ValueError(
            f"{where}: norm_type must be > 0 or float('inf'), got {norm_type!r}; use 2.0 for "
            "the Euclidean norm."
        )
    return p


def use_foreach(foreach: bool | None, *, where: str) -> bool:
    """Whether to use the fused ``torch._foreach_*`` kernels (None: whenever possible)."""
    if foreach is None:
        return True
    if not isinstance(foreach, bool):
        raise TypeError(f"{where}: foreach must be True, False or None, got {foreach!r}.")
    return foreach


def total_norm(norms: torch.Tensor, p: float) -> torch.Tensor:
    """‖(‖g_1‖, …, ‖g_n‖)‖_p, which equals the p-norm of all the gradients together.

    Computed as m·‖norms/m‖_p with m = max_i ‖g_i‖, so finite norms never overflow in the sum
    of their p-th powers; NaN and inf propagate (m itself is returned when it is not finite).
    A few kernels on a vector with one entry per gradient, no host read.
    """
    if norms.numel() == 0:
        return torch.zeros((), dtype=norms.dtype, device=norms.device)
    peak = norms.amax()
    if p == math.inf:
        return peak
    scale = safe_scale(peak)
    scaled = torch.linalg.vector_norm(norms / scale, p) * scale
    return torch.where(torch.isfinite(peak), scaled, peak)


def clip_coefficient(norm: torch.Tensor, max_norm: float) -> torch.Tensor:
    """min(1, max_norm / (norm + 1e-6)) where the norm is finite, 1 where it is not."""
    coef = (max_norm / (norm + _EPS)).clamp(max=1.0)
    return torch.where(torch.isfinite(norm), coef, torch.ones_like(coef))


def nonfinite_names(
    names: Sequence[str], bad: torch.Tensor, limit: int = NAMED_AT_MOST
) -> list[str]:
    """The first ``limit`` of ``names`` flagged in the boolean mask ``bad`` (one sync)."""
    flagged = bad.nonzero().flatten()
    return [names[i] for i in flagged[:limit].tolist()]


def resolve_overflow(
    gradset: GradSet, norms: torch.Tensor, p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tell overflowed norms from non-finite gradients: ``(norms, bad)``.

    Each +inf in ``norms`` (one per gradient, from :meth:`GradSet.norms`) is recomputed by
    :meth:`GradSet.exact_norms`: a finite gradient gets its exact norm (inf only if that is not
    representable), a gradient holding NaN/inf keeps a non-finite one. ``bad`` flags the
    gradients that hold NaN or inf. Host reads: one, plus one inside ``exact_norms`` when
    there is an inf to resolve. Call it only after a non-finite total was read back.
    """
    bad = torch.isnan(norms)
    infinite = torch.isposinf(norms).nonzero().flatten().tolist()
    if not infinite:
        return norms, bad
    exact, peaks = gradset.exact_norms(infinite, p)
    where = index_tensor(infinite, norms.device)
    norms = norms.index_copy(0, where, exact.to(norms.device, norms.dtype))
    bad = bad.index_copy(0, where, ~torch.isfinite(peaks).to(norms.device))
    return norms, bad


def _layer_norms(
    params: Params, idx: Sequence[int], norms: torch.Tensor, p: float
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Layer names, the p-norm of each layer's gradients, and each gradient's layer index."""
    if not params.named:
        raise ValueError(
            f"{params.where}: per_layer=True needs layer names; pass the model or "
            "model.named_parameters(), not bare tensors."
        )
    info = params.info()
    layers: dict[str, int] = {}
    index = [layers.setdefault(info[i][1], len(layers)) for i in idx]
    where = index_tensor(index, norms.device)
    zeros = torch.zeros(len(layers), dtype=norms.dtype, device=norms.device)
    peak = zeros.scatter_reduce(0, where, norms, reduce="amax", include_self=True)
    if p == math.inf:
        return list(layers), peak, where
    scale = safe_scale(peak)  # as total_norm: each layer's sum scaled by its largest norm
    out = zeros.index_add(0, where, (norms / scale[where]).pow(p)).pow(1.0 / p) * scale
    return list(layers), torch.where(torch.isfinite(peak), out, peak), where


@overload
def grad_norm(
    parameters_or_module: Parameters,
    norm_type: float = 2.0,
    *,
    per_layer: Literal[False] = False,
    foreach: bool | None = None,
) -> torch.Tensor: ...
@overload
def grad_norm(
    parameters_or_module: Parameters,
    norm_type: float = 2.0,
    *,
    per_layer: Literal[True],
    foreach: bool | None = None,
) -> dict[str, torch.Tensor]: ...
def grad_norm(
    parameters_or_module: Parameters,
    norm_type: float = 2.0,
    *,
    per_layer: bool = False,
    foreach: bool | None = None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """The p-norm of the gradients, ‖g‖_p = (Σ_i |g_i|^p)^(1/p), without changing them.

    Global over every gradient, or per layer (``per_layer=True``: ``{module name: norm}`` over
    the parameters each module registers itself). Fused, no host sync, the global value under
    DDP and FSDP (see the module docstring).

    Args:
        parameters_or_module: a model, a tensor, tensors or ``(name, tensor)`` pairs.
        norm_type: p > 0, or ``float("inf")`` for max |g_i|.
        per_layer: one norm per layer instead of one in total.
        foreach: fused ``torch._foreach_norm`` (None: whenever possible) or a per-tensor loop.

    Example:
        >>> from torch import nn
        >>> model = nn.Linear(2, 1)
        >>> model.weight.grad = torch.tensor([[3.0, 0.0]])
        >>> model.bias.grad = torch.tensor([4.0])
        >>> grad_norm(model)
        tensor(5.)
    """
    where = "grad_norm"
    p = check_norm_type(norm_type, where=where)
    fused = use_foreach(foreach, where=where)
    params = Params(parameters_or_module, where=where)
    idx, grads = params.with_grads()
    norms = GradSet(grads, fused).norms(p)
    if not per_layer:
        return total_norm(norms, p)
    names, layer_norms, _ = _layer_norms(params, idx, norms, p)
    return dict(zip(names, layer_norms.unbind(), strict=True))


@overload
def clip_grad_norm_(
    parameters_or_module: Parameters,
    max_norm: float,
    norm_type: float = 2.0,
    *,
    per_layer: Literal[False] = False,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
    sync: bool = False,
) -> torch.Tensor: ...
@overload
def clip_grad_norm_(
    parameters_or_module: Parameters,
    max_norm: float,
    norm_type: float = 2.0,
    *,
    per_layer: Literal[True],
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
    sync: bool = False,
) -> dict[str, torch.Tensor]: ...
def clip_grad_norm_(
    parameters_or_module: Parameters,
    max_norm: float,
    norm_type: float = 2.0,
    *,
    per_layer: bool = False,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
    sync: bool = False,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Rescale the gradients so their p-norm is at most ``max_norm``; return the norm before.

    g ← g · min(1, max_norm / (‖g‖_p + 1e-6)) (Pascanu, Mikolov & Bengio 2013, "On the difficulty
    of training recurrent neural networks"). Global: one norm over every gradient. Per layer
    (``per_layer=True``): each module's own parameters are clipped by their own norm, and
    ``{module name: norm}`` is returned; the root module's parameters are the layer ``""``.

    A non-finite norm leaves the gradients it covers unchanged (see the module docstring); with
    ``error_if_nonfinite=True`` it raises :class:`NonFiniteGradError` naming the parameters
    that hold NaN/inf. Finite gradients whose fused Σ|g|^p overflowed are not an error: with a
    host read (``sync`` or ``error_if_nonfinite``) their exact norm is recomputed, returned and
    used to clip.

    Args:
        parameters_or_module: a model, a tensor, tensors or ``(name, tensor)`` pairs
            (per layer needs names: a model, or pairs grouped by their name's prefix).
        max_norm: the largest norm allowed, > 0.
        norm_type: p > 0, or ``float("inf")``.
        per_layer: clip each layer separately.
        error_if_nonfinite: raise on a non-finite norm (one host sync; one or two more when a
            norm is non-finite, to tell an overflow from a NaN/inf).
        foreach: fused kernels (None: whenever possible) or a per-tensor loop.
        sync: read the coefficient back once and skip the rescaling when nothing exceeds
            ``max_norm``: worth it on CPU, where the read is free; on an accelerator it stalls
            the queue.

    Returns:
        The norm before clipping (0-d device tensor), or ``{layer: norm}``.

    Example:
        >>> from torch import nn
        >>> model = nn.Linear(2, 1)
        >>> model.weight.grad = torch.tensor([[3.0, 0.0]])
        >>> model.bias.grad = torch.tensor([4.0])
        >>> clip_grad_norm_(model, max_norm=1.0)
        tensor(5.)
        >>> model.bias.grad
        tensor([0.8000])
    """
    where = "clip_grad_norm_"
    limit = check_real("max_norm", max_norm, where=where, positive=True)
    p = check_norm_type(norm_type, where=where)
    fused = use_foreach(foreach, where=where)
    params = Params(parameters_or_module, where=where)
    idx, grads = params.with_grads()
    gradset = GradSet(grads, fused)
    norms = gradset.norms(p)
    layer_of = None
    if per_layer:
        names, measured, layer_of = _layer_norms(params, idx, norms, p)
    else:
        measured = total_norm(norms, p)
    coef = clip_coefficient(measured, limit)
    if grads and (error_if_nonfinite or sync):
        finite = torch.isfinite(measured).all().to(coef.dtype).reshape(1)
        flags = torch.cat([finite, coef.reshape(-1)]).tolist()  # the one host read
        if not flags[0]:  # a real NaN/inf, or finite gradients whose norm overflowed?
            norms, bad = resolve_overflow(gradset, norms, p)
            if per_layer:
                names, measured, layer_of = _layer_norms(params, idx, norms, p)
            else:
                measured = total_norm(norms, p)
            coef = clip_coefficient(measured, limit)
            finite = torch.isfinite(measured).all().to(coef.dtype).reshape(1)
            flags = torch.cat([finite, coef.reshape(-1)]).tolist()
            if error_if_nonfinite and not flags[0]:
                what = "norm of a layer" if per_layer else f"norm ({measured.item()})"
                raise_nonfinite(where, what, nonfinite_names(params.names(idx), bad))
        if all(c >= 1.0 for c in flags[1:]):
            grads = []
    if grads:
        gradset.scale_(coef if layer_of is None else coef[layer_of])
    if per_layer:
        return dict(zip(names, measured.unbind(), strict=True))
    return measured


def clip_grad_value_(
    parameters_or_module: Parameters,
    clip_value: float,
    *,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
    sync: bool = False,
) -> torch.Tensor:
    """Clamp every gradient element to [-clip_value, clip_value]; return max |g| before.

    g_i ← max(-c, min(c, g_i)) (Mikolov 2012, "Statistical Language Models Based on Neural
    Networks", the clipping that preceded norm clipping). The returned ∞-norm max_i |g_i| is
    global under DDP and FSDP. NaN stays NaN, ±inf becomes ±c (as ``torch.clamp``); the returned
    value is still non-finite, and ``error_if_nonfinite=True`` raises before clamping.

    Args:
        parameters_or_module: a model, a tensor, tensors or ``(name, tensor)`` pairs.
        clip_value: c > 0.
        error_if_nonfinite: raise :class:`NonFiniteGradError` on a non-finite value (one sync).
        foreach: fused kernels (None: whenever possible) or a per-tensor loop.
        sync: read max |g| back once and skip the clamp when nothing exceeds c.

    Example:
        >>> g = torch.zeros(3, requires_grad=True)
        >>> g.grad = torch.tensor([-2.0, 0.5, 3.0])
        >>> clip_grad_value_([g], 1.0)
        tensor(3.)
        >>> g.grad
        tensor([-1.0000,  0.5000,  1.0000])
    """
    where = "clip_grad_value_"
    c = check_real("clip_value", clip_value, where=where, positive=True)
    fused = use_foreach(foreach, where=where)
    params = Params(parameters_or_module, where=where)
    idx, grads = params.with_grads()
    for i, g in zip(idx, grads, strict=True):
        if g.is_sparse or is_partial(g):
            raise TypeError(
                f"{where}: cannot clamp the {'sparse' if g.is_sparse else 'Partial DTensor'} "
                f"gradient of {params.names([i])[0]} in place; use clip_grad_norm_ instead."
            )
    gradset = GradSet(grads, fused)
    norms = gradset.norms(math.inf)
    largest = total_norm(norms, math.inf)
    if grads and (error_if_nonfinite or sync):
        value = largest.item()  # the one host read
        if error_if_nonfinite and not math.isfinite(value):
            bad = ~torch.isfinite(norms)
            raise_nonfinite(where, f"max |g| ({value})", nonfinite_names(params.names(idx), bad))
        if value <= c:
            return largest
    gradset.clamp_(c)
    return largest
