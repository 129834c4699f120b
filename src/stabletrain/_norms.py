"""Vector norms that do not overflow (or underflow) where the norm itself is representable.

torch's norm kernels sum |x|^p in the accumulation dtype (float32 for float32, float16 and
bfloat16 tensors on an accelerator), so finite float32 values near 1e19 have ‖x‖₂ = inf, and
|x|^p with p = 20 overflows from |x| ~ 100 (or underflows to 0 from |x| ~ 0.01). The scaled form

    ‖x‖_p = m·‖x/m‖_p,   m = max|x|

sums terms in [0, 1] only: it is finite whenever the norm is (Blue 1978, "A portable Fortran
program to find the Euclidean norm of a vector", the idea behind LAPACK's ``xNRM2``). It costs
a second pass and a scaled copy of ``x``, so it is used where the plain kernel can be wrong:

- always for p > :data:`FAST_P_MAX` (|x|^p leaves the float32 range within a few decades);
- for p <= 2 only where the plain result came back +inf and reading that back is free (CPU
  tensors), or the caller reads the host anyway (``clip_grad_norm_(..., sync=True)``,
  :class:`~stabletrain.stability.StepGuard`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__: list[str] = []

FAST_P_MAX = 2.0  # up to p = 2 the plain kernels are exact unless |x| > ~1e19 (float32)


def norm_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64 tensors, else float32 (fp16/bf16 norms would overflow)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def safe_scale(peak: torch.Tensor) -> torch.Tensor:
    """``peak`` where it is finite and > 0, else 1: a divisor that changes nothing it cannot."""
    return torch.where(torch.isfinite(peak) & (peak > 0), peak, torch.ones_like(peak))


def needs_scaling(p: float) -> bool:
    """Whether the p-norm is always computed scaled (finite p above :data:`FAST_P_MAX`)."""
    return math.isfinite(p) and p > FAST_P_MAX


def reads_are_free(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether every tensor is a plain CPU tensor, where reading a result back stalls no queue
    (a sharded ``DTensor``'s read would be a collective: not free)."""
    return all(t.device.type == "cpu" and not hasattr(t, "device_mesh") for t in tensors)


_SAME_WIDTH_INT = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}


def at_most(bound: float, dtype: torch.dtype) -> torch.Tensor:
    """The largest value of the floating ``dtype`` that is <= ``bound`` (>= 0), 0-d.

    Comparing ``x <= bound`` with a Python number rounds the bound to x's dtype first, to
    nearest: 4e-8 becomes float16's 6e-8, which would count 6e-8 as <= 4e-8. Against this
    value the comparison is exact for every x of that dtype.
    """
    value = torch.tensor(bound, dtype=torch.float64).to(dtype)
    if float(value) > bound:  # rounded up (to inf, past the largest value): one step down
        value = (value.view(_SAME_WIDTH_INT[dtype]) - 1).view(dtype)
    return value


def _empty_norm(x: torch.Tensor, dims: Sequence[int], keepdim: bool) -> torch.Tensor:
    """Zeros shaped like a norm of ``x`` over ``dims`` (an empty unit has norm 0)."""
    shape = [1 if d in dims else s for d, s in enumerate(x.shape)]
    out = x.new_zeros(shape)
    if keepdim:
        return out
    return out.reshape([s for d, s in enumerate(x.shape) if d not in dims])


def scaled_norm(
    x: torch.Tensor,
    p: float,
    dims: Sequence[int] | None = None,
    *,
    keepdim: bool = False,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """‖x‖_p over ``dims`` (None: all) as m·‖x/m‖_p, m = max|x| over them, in ``dtype``.

    NaN in a unit gives NaN, ±inf gives inf; a unit with no values has norm 0 (for p = inf
    too, where torch's kernel has no identity and raises).
    """
    wide = x.to(norm_dtype(x.dtype) if dtype is None else dtype)
    reduce = list(range(wide.dim())) if dims is None else [d % max(wide.dim(), 1) for d in dims]
    if wide.dim() == 0:
        reduce = []
    if any(wide.shape[d] == 0 for d in reduce) or (not reduce and wide.numel() == 0):
        return _empty_norm(wide, reduce, keepdim)
    magnitude = wide.abs()
    peak = magnitude.amax(dim=reduce, keepdim=True) if reduce else magnitude
    if p == math.inf:
        norm = peak
    else:
        scale = safe_scale(peak)
        ratio = torch.linalg.vector_norm(magnitude / scale, p, dim=reduce or None, keepdim=True)
        norm = torch.where(torch.isfinite(peak), ratio * scale, peak)
    if keepdim:
        return norm
    return norm.reshape([s for d, s in enumerate(wide.shape) if d not in reduce])


def vector_norm(
    x: torch.Tensor, p: float, dims: Sequence[int] | None = None, *, keepdim: bool = False
) -> torch.Tensor:
    """‖x‖_p over ``dims`` in :func:`norm_dtype`, finite wherever it is representable.

    The plain kernel for p <= 2 and p = inf, redone scaled where it overflowed when the
    tensor is on the CPU (see the module docstring); scaled for every other p. An empty unit
    has norm 0.
    """
    reduce = list(range(x.dim())) if dims is None else list(dims)
    if needs_scaling(p) or any(x.shape[d] == 0 for d in reduce):
        return scaled_norm(x, p, reduce, keepdim=keepdim)
    wide = norm_dtype(x.dtype)
    norm: torch.Tensor = torch.linalg.vector_norm(
        x, p, dim=reduce or None, keepdim=keepdim, dtype=None if x.dtype == wide else wide
    )
    if p != math.inf and reads_are_free([x]) and bool(torch.isposinf(norm).any()):
        norm = scaled_norm(x, p, reduce, keepdim=keepdim)
    return norm
