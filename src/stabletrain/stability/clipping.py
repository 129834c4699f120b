"""Gradient clipping that returns what it measured: by norm (global or per layer), by value, and
adaptive unit-wise clipping (AGC).

Conventions shared by every function here:

- **Input**: a model (its parameters, named, each owned by the module that registers it), one
  tensor, an iterable of tensors, or of ``(name, tensor)`` pairs (``model.named_parameters()``).
  Parameters without a gradient are ignored; a tensor given twice counts once.
- **What was measured is returned, before clipping, as device tensors** (float32, float64 for
  float64 gradients; fp16/bf16 gradients are measured in float32 so their norm cannot overflow).
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
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias, overload

import torch
from torch import nn

from stabletrain._checks import check_real
from stabletrain.stability._distributed import (
    GradSet,
    index_tensor,
    is_dtensor,
    is_partial,
    norm_dtype,
)

__all__ = [
    "NonFiniteGradError",
    "Parameters",
    "UnitDims",
    "adaptive_clip_grad_",
    "clip_grad_norm_",
    "clip_grad_value_",
    "grad_norm",
]

Parameters: TypeAlias = (
    "nn.Module | torch.Tensor | Iterable[torch.Tensor] | Iterable[tuple[str, torch.Tensor]]"
)
UnitDims: TypeAlias = "Mapping[str | type[nn.Module], int | None]"

_EPS = 1e-6  # the clip coefficient is max_norm / (norm + _EPS), as in torch's clip_grad_norm_
_NAMED_AT_MOST = 5  # parameters listed in an error message


class NonFiniteGradError(RuntimeError):
    """A gradient norm is NaN or infinite and ``error_if_nonfinite=True`` was asked for."""


class _Params:
    """The distinct parameters given (a tensor given twice counts once); their names, layers
    and owning modules are looked up only when needed (per layer, AGC, error messages)."""

    def __init__(self, params: Parameters, *, where: str) -> None:
        self.where = where
        self.module = params if isinstance(params, nn.Module) else None
        self._names: list[str] | None = None  # given names, for pairs and bare tensors
        self.named = self.module is not None
        self.tensors: list[torch.Tensor] = []
        if isinstance(params, nn.Module):
            self.tensors = [*params.parameters()]
            return
        if isinstance(params, torch.Tensor):
            self.tensors, self._names = [params], ["0"]
            return
        if not isinstance(params, Iterable):
            raise TypeError(
                f"{where}: expected a model, a tensor, tensors or (name, tensor) pairs, got "
                f"{type(params).__name__}; pass model or model.parameters()."
            )
        self._names = []
        seen: set[int] = set()
        for i, item in enumerate(params):
            if isinstance(item, torch.Tensor):
                name, tensor = str(i), item
            elif (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and isinstance(item[1], torch.Tensor)
            ):
                (name, tensor), self.named = item, True
            else:
                raise TypeError(
                    f"{where}: element {i} is a {type(item).__name__}; expected a tensor or a "
                    "(name, tensor) pair, as from model.parameters() or model.named_parameters()."
                )
            if id(tensor) not in seen:
                seen.add(id(tensor))
                self.tensors.append(tensor)
                self._names.append(name)

    def with_grads(self) -> tuple[list[int], list[torch.Tensor]]:
        """Positions of the parameters that have a gradient, and the gradients."""
        idx, grads = [], []
        for i, t in enumerate(self.tensors):
            if t.grad is not None:
                idx.append(i)
                grads.append(t.grad)
        return idx, grads

    def info(self) -> list[tuple[str, str, nn.Module | None]]:
        """(qualified name, owning layer, owning module) of each parameter.

        A model's parameters are owned by the module that registers them (the root is ``""``);
        named pairs by their name's prefix; bare tensors are named by position.
        """
        if self.module is None:
            names = self._names or []
            return [(n, n.rpartition(".")[0] if self.named else n, None) for n in names]
        owners: dict[int, tuple[str, str, nn.Module | None]] = {}
        for layer, module in self.module.named_modules():
            for pname, p in module.named_parameters(recurse=False):
                owners.setdefault(id(p), (f"{layer}.{pname}" if layer else pname, layer, module))
        return [owners[id(t)] for t in self.tensors]

    def names(self, idx: Sequence[int]) -> list[str]:
        info = self.info()
        return [info[i][0] for i in idx]


def check_norm_type(norm_type: float, *, where: str) -> float:
    """``norm_type`` as a float p > 0 (``inf`` allowed)."""
    if isinstance(norm_type, bool) or not isinstance(norm_type, int | float):
        raise TypeError(f"{where}: norm_type must be a number, got {type(norm_type).__name__}.")
    p = float(norm_type)
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
    """‖(‖g_1‖, …, ‖g_n‖)‖_p, which equals the p-norm of all the gradients together."""
    if norms.numel() == 0:
        return torch.zeros((), dtype=norms.dtype, device=norms.device)
    total: torch.Tensor = torch.linalg.vector_norm(norms, p)
    return total


def clip_coefficient(norm: torch.Tensor, max_norm: float) -> torch.Tensor:
    """min(1, max_norm / (norm + 1e-6)) where the norm is finite, 1 where it is not."""
    coef = (max_norm / (norm + _EPS)).clamp(max=1.0)
    return torch.where(torch.isfinite(norm), coef, torch.ones_like(coef))


def nonfinite_names(
    names: Sequence[str], norms: torch.Tensor, limit: int = _NAMED_AT_MOST
) -> list[str]:
    """The first ``limit`` of ``names`` whose gradient norm is not finite (one sync)."""
    bad = (~torch.isfinite(norms)).nonzero().flatten()
    return [names[i] for i in bad[:limit].tolist()]


def _raise_nonfinite(where: str, what: str, names: Sequence[str]) -> None:
    located = f" in {', '.join(names)}" if names else " (in a norm that overflowed float32)"
    raise NonFiniteGradError(
        f"{where}: the gradient {what} is not finite{located}. The gradients were left "
        "unchanged. Find the first non-finite value with torch.autograd.set_detect_anomaly(True); "
        "lower the learning rate or use mixed precision with a GradScaler; or let "
        "stabletrain.StepGuard skip such steps."
    )


def _layer_norms(
    params: _Params, idx: Sequence[int], norms: torch.Tensor, p: float
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
    out = torch.zeros(len(layers), dtype=norms.dtype, device=norms.device)
    if p == math.inf:
        out = out.scatter_reduce(0, where, norms, reduce="amax", include_self=True)
    else:
        out = out.index_add(0, where, norms.pow(p)).pow(1.0 / p)
    return list(layers), out, where


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
    params = _Params(parameters_or_module, where=where)
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
    ``error_if_nonfinite=True`` it raises :class:`NonFiniteGradError` naming the parameters.

    Args:
        parameters_or_module: a model, a tensor, tensors or ``(name, tensor)`` pairs
            (per layer needs names: a model, or pairs grouped by their name's prefix).
        max_norm: the largest norm allowed, > 0.
        norm_type: p > 0, or ``float("inf")``.
        per_layer: clip each layer separately.
        error_if_nonfinite: raise on a non-finite norm (one host sync).
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
    params = _Params(parameters_or_module, where=where)
    idx, grads = params.with_grads()
    gradset = GradSet(grads, fused)
    norms = gradset.norms(p)
    if per_layer:
        names, measured, layer_of = _layer_norms(params, idx, norms, p)
        coef = clip_coefficient(measured, limit)
    else:
        measured = total_norm(norms, p)
        coef = clip_coefficient(measured, limit)
    if grads and (error_if_nonfinite or sync):
        finite = torch.isfinite(measured).all().to(coef.dtype).reshape(1)
        flags = torch.cat([finite, coef.reshape(-1)]).tolist()  # the one host read
        if error_if_nonfinite and not flags[0]:
            what = "norm of a layer" if per_layer else f"norm ({measured.item()})"
            _raise_nonfinite(where, what, nonfinite_names(params.names(idx), norms))
        if all(c >= 1.0 for c in flags[1:]):
            grads = []
    if grads:
        gradset.scale_(coef[layer_of] if per_layer else coef)
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
    params = _Params(parameters_or_module, where=where)
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
            _raise_nonfinite(where, f"max |g| ({value})", nonfinite_names(params.names(idx), norms))
        if value <= c:
            return largest
    gradset.clamp_(c)
    return largest


# --- adaptive gradient clipping ------------------------------------------------------------

_CONV_TRANSPOSE = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True)
class _Units:
    """How a tensor splits into units: ``dim`` (None: one unit) after splitting dim 0 in
    ``groups`` (grouped transposed convolutions, whose output channels are (group, dim 1))."""

    dim: int | None
    groups: int = 1

    def view(self, t: torch.Tensor) -> torch.Tensor:
        # splitting a dimension is always a view, so in-place ops on it reach the gradient
        if self.groups == 1:
            return t
        split: torch.Tensor = t.unflatten(0, (self.groups, -1))  # type: ignore[no-untyped-call]
        return split

    def reduce_dims(self, ndim: int) -> list[int]:
        if self.dim is None:
            return list(range(ndim))
        if self.groups > 1:  # view (G, in/G, out/G, *k): units are (group, out channel)
            return [d for d in range(ndim + 1) if d not in (0, self.dim + 1)]
        return [d for d in range(ndim) if d != self.dim]


def _is_hf_conv1d(module: nn.Module | None) -> bool:
    # transformers' GPT-2 Conv1D stores its weight as (in, out); matched by name, not imported
    return type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers")


def _units(
    t: torch.Tensor, name: str, module: nn.Module | None, unit_dims: UnitDims, *, where: str
) -> _Units:
    leaf = name.rpartition(".")[2]
    dim: int | None
    if name in unit_dims:
        dim = unit_dims[name]
    elif t.dim() >= 2 and (
        keys := [k for k in unit_dims if isinstance(k, type) and isinstance(module, k)]
    ):
        dim = unit_dims[keys[0]]
    elif t.dim() <= 1:
        return _Units(None)  # biases, gains, scalars: the whole vector, as in NFNets
    elif isinstance(module, _CONV_TRANSPOSE) and leaf == "weight":
        return _Units(1, module.groups)  # (in, out/groups, *k)
    elif _is_hf_conv1d(module) and leaf == "weight":
        dim = 1
    else:
        dim = 0  # Linear, ConvNd, attention in_proj (3E, E), RNN (gates·H, in), Embedding rows
    if dim is None:
        return _Units(None)
    if isinstance(dim, bool) or not isinstance(dim, int) or not -t.dim() <= dim < t.dim():
        raise ValueError(
            f"{where}: unit_dims gives dim {dim!r} for {name} of shape {tuple(t.shape)}; "
            f"use an int in [{-t.dim()}, {t.dim() - 1}] (the output-unit dim) or None (whole)."
        )
    return _Units(dim % t.dim())


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

    A unit whose gradient norm is non-finite is left unchanged. No host sync (unless
    ``error_if_nonfinite``); one norm pair per parameter. Sharded (DTensor) parameters are
    handled by DTensor's own ops.

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
    params = _Params(parameters_or_module, where=where)
    info = params.info()
    for i, g in zip(*params.with_grads(), strict=True):
        name, layer, module = info[i]
        if name in excluded or layer in excluded or g.numel() == 0:
            continue
        if g.is_sparse:
            raise TypeError(f"{where}: {name} has a sparse gradient; AGC needs dense ones.")
        w = params.tensors[i].detach()
        units = _units(w, name, module, dims, where=where)
        gv, red, dtype = units.view(g), units.reduce_dims(w.dim()), norm_dtype(g.dtype)
        w_norm = torch.linalg.vector_norm(units.view(w), 2, dim=red, keepdim=True, dtype=dtype)
        g_norm = torch.linalg.vector_norm(gv, 2, dim=red, keepdim=True, dtype=dtype)
        measured.append((name, gv, w_norm, g_norm, units.dim is None))
    if error_if_nonfinite and measured:
        finite = torch.stack([torch.isfinite(m[3]).all() for m in measured]).tolist()
        if not all(finite):
            bad = [m[0] for m, ok in zip(measured, finite, strict=True) if not ok]
            _raise_nonfinite(where, "norm of a unit", bad[:_NAMED_AT_MOST])
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
    allowed = lam * w_norms.clamp_min(floor)
    clip = torch.isfinite(g_norms) & (g_norms > allowed)
    return torch.where(clip, allowed / g_norms, torch.ones_like(g_norms))
