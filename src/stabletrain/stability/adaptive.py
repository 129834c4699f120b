"""Adaptive gradient clipping (AGC, Brock et al. 2021): each output unit's gradient is clipped
relative to the norm of that unit's weights."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TypeAlias

import torch
from torch import nn

from stabletrain._checks import check_real
from stabletrain._norms import vector_norm
from stabletrain._units import CONV_TRANSPOSE, Units, is_hf_conv1d
from stabletrain.stability._distributed import is_dtensor
from stabletrain.stability._params import NAMED_AT_MOST, Parameters, Params, raise_nonfinite

__all__ = ["UnitDims", "adaptive_clip_grad_"]

UnitDims: TypeAlias = "Mapping[str | type[nn.Module], int | None]"


def _units(
    t: torch.Tensor, name: str, module: nn.Module | None, unit_dims: UnitDims, *, where: str
) -> Units:
    leaf = name.rpartition(".")[2]
    dim: int | None
    if name in unit_dims:
        dim = unit_dims[name]
    elif t.dim() >= 2 and (
        keys := [k for k in unit_dims if isinstance(k, type) and isinstance(module, k)]
    ):
        dim = unit_dims[keys[0]]
    elif t.dim() <= 1:
        return Units(None)  # biases, gains, scalars: the whole vector, as in NFNets
    elif isinstance(module, CONV_TRANSPOSE) and leaf == "weight":
        return Units(1, module.groups)  # (in, out/groups, *k)
    elif is_hf_conv1d(module) and leaf == "weight":
        dim = 1
    else:
        dim = 0  # Linear, ConvNd, attention in_proj (3E, E), RNN (gates·H, in), Embedding rows
    if dim is None:
        return Units(None)
    if isinstance(dim, bool) or not isinstance(dim, int) or not -t.dim() <= dim < t.dim():
        raise ValueError(
            f"{where}: unit_dims gives dim {dim!r} for {name} of shape {tuple(t.shape)}; "
            f"use an int in [{-t.dim()}, {t.dim() - 1}] (the output-unit dim) or None (whole)."
        )
    return Units(dim % t.dim())


def _check_unit_dims(unit_dims: UnitDims | None, *, where: str) -> UnitDims:
    if unit_dims is None:
        return {}
    if not isinstance(unit_dims, Mapping):
        raise TypeError(
            f"{where}: unit_dims must be a mapping from parameter names or module classes to a "
            f"dim (or None), got {type(unit_dims).__name__}; e.g. {{'attn.in_proj_weight': 0}}."
        )
    for key in unit_dims:
        if not isinstance(key, str) and not (isinstance(key, type) and issubclass(key, nn.Module)):
            raise TypeError(
                f"{where}: unit_dims key {key!r} is neither a parameter name nor an nn.Module "
                "subclass."
            )
    return unit_dims


def adaptive_clip_grad_(
    parameters_or_module: Parameters,
    clipping: float = 0.01,
    eps: float = 1e-3,
    *,
    unit_dims: UnitDims | None = None,
    exclude: Collection[str] = (),
    error_if_nonfinite: bool = False,
) -> dict[str, torch.Tensor]:
    """Adaptive gradient clipping (AGC), unit-wise; return each unit's gradient norm before.

    For every unit i (an output unit: a row of a Linear weight, a filter of a convolution)
    G_i ← G_i · λ·max(‖W_i‖_F, ε)/‖G_i‖_F whenever ‖G_i‖_F / max(‖W_i‖_F, ε) > λ
    (Brock, De, Smith & Simonyan 2021, "High-Performance Large-Scale Image Recognition Without
    Normalization", Sec. 4.1). ε keeps zero-initialized weights from freezing. The paper clips
    every layer but the final classifier: pass its name in ``exclude``; it uses λ = 0.01 for
    large batches, larger λ for small ones.

    Units, picked per layer when a model is given:

    - weights of Linear, ConvNd, Bilinear, RNN cells, Embedding and attention projections:
      dim 0 (``nn.MultiheadAttention.in_proj_weight`` is (3E, E): its rows are the q, k and v
      output units);
    - ``ConvTranspose{1,2,3}d`` weights (in, out/groups, *k): output channel ``g·out/groups + j``
      is column j of the rows of group g;
    - transformers' GPT-2 ``Conv1D`` weights (in, out): dim 1;
    - 1-D parameters (biases, norm gains) and scalars: the whole vector is one unit, as in the
      NFNet reference code (clipping a bias element by its own magnitude would freeze
      zero-initialized biases at ε).

    Without a model (tensors or named pairs) every tensor with ≥ 2 dims uses dim 0: pass the
    model for transposed convolutions. Override any choice with ``unit_dims``: keys are
    parameter names (``"attn.in_proj_weight"``) or module classes (``MyLayer``: its ≥ 2-D
    parameters), values the output-unit dim or None for one unit, e.g.
    ``unit_dims={MyTransposedLinear: 1, "head.scale": None}``.

    A unit whose gradient norm is non-finite is left unchanged. On the CPU a norm whose sum of
    squares overflowed float32 (entries near 1e19) is recomputed scaled by the largest entry, so
    finite gradients always get their finite norm and are clipped. No host sync on an
    accelerator (unless ``error_if_nonfinite``); one norm pair per parameter. Sharded (DTensor)
    parameters are handled by DTensor's own ops.

    Args:
        parameters_or_module: a model (recommended), tensors or ``(name, tensor)`` pairs.
        clipping: λ > 0, the largest gradient-to-weight norm ratio.
        eps: ε > 0, the smallest weight norm.
        unit_dims: overrides of the output-unit dim, see above.
        exclude: parameter or layer names left unclipped (e.g. the classifier ``"fc"``).
        error_if_nonfinite: raise :class:`NonFiniteGradError` on a non-finite unit (one sync).

    Returns:
        ``{parameter name: ‖G_i‖ per unit}`` (1-D, 0-d for whole-tensor units), before clipping.

    Example:
        >>> from torch import nn
        >>> layer = nn.Linear(2, 2, bias=False)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        >>> layer.weight.grad = torch.tensor([[0.0, 0.1], [0.01, 0.0]])
        >>> adaptive_clip_grad_(layer, clipping=0.05)
        {'weight': tensor([0.1000, 0.0100])}
        >>> layer.weight.grad  # row 0 clipped to 0.05 * 1.0, row 1 (0.01 < 0.05 * 2) kept
        tensor([[0.0000, 0.0500],
                [0.0100, 0.0000]])
    """
    where = "adaptive_clip_grad_"
    lam = check_real("clipping", clipping, where=where, positive=True)
    floor = check_real("eps", eps, where=where, positive=True)
    dims = _check_unit_dims(unit_dims, where=where)
    excluded = {exclude} if isinstance(exclude, str) else set(exclude)
    measured: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, bool]] = []
    params = Params(parameters_or_module, where=where)
    info = params.info()
    for i, g in zip(*params.with_grads(), strict=True):
        name, layer, module = info[i]
        if name in excluded or layer in excluded or g.numel() == 0:
            continue
        if g.is_sparse:
            raise TypeError(f"{where}: {name} has a sparse gradient; AGC needs dense ones.")
        w = params.tensors[i].detach()
        units = _units(w, name, module, dims, where=where)
        gv, red = units.view(g), units.reduce_dims(w.dim())
        w_norm = vector_norm(units.view(w), 2, red, keepdim=True)
        g_norm = vector_norm(gv, 2, red, keepdim=True)
        measured.append((name, gv, w_norm, g_norm, units.dim is None))
    if error_if_nonfinite and measured:
        finite = torch.stack([torch.isfinite(m[3]).all() for m in measured]).tolist()
        if not all(finite):
            bad = [m[0] for m, ok in zip(measured, finite, strict=True) if not ok]
            raise_nonfinite(where, "norm of a unit", bad[:NAMED_AT_MOST])
    # the scales of every unit at once: one short chain of kernels per device, not per parameter
    batches: dict[torch.device | None, list[int]] = {}
    for i, (_, gv, _, _, _) in enumerate(measured):
        batches.setdefault(None if is_dtensor(gv) else gv.device, []).append(i)
    for device, idx in batches.items():
        parts = [[i] for i in idx] if device is None else [idx]  # DTensors one by one
        for part in parts:
            w_norms = torch.cat([measured[i][2].reshape(-1) for i in part])
            g_norms = torch.cat([measured[i][3].reshape(-1) for i in part])
            scales = _agc_scales(w_norms, g_norms, lam, floor)
            sizes = [measured[i][3].numel() for i in part]
            for i, scale in zip(part, torch.split(scales, sizes), strict=True):
                gv, g_norm = measured[i][1], measured[i][3]
                gv.mul_(scale.view(g_norm.shape).to(gv.dtype))
    return {
        name: g_norm.reshape(()) if whole else g_norm.flatten()
        for name, _, _, g_norm, whole in measured
    }


def _agc_scales(
    w_norms: torch.Tensor, g_norms: torch.Tensor, lam: float, floor: float
) -> torch.Tensor:
    """λ·max(‖W_i‖, ε)/‖G_i‖ where that is < 1 and ‖G_i‖ is finite, else 1."""
    if lam * floor >= torch.finfo(g_norms.dtype).max:  # no finite norm exceeds λ·ε
        return torch.ones_like(g_norms)
    allowed = (lam * w_norms).clamp_min(lam * floor)  # ε alone may lie beyond the norms' dtype
    clip = torch.isfinite(g_norms) & (g_norms > allowed)
    return torch.where(clip, allowed / g_norms, torch.ones_like(g_norms))
