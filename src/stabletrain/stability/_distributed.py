"""Fused gradient norms and scaling, global over ranks; the step guard's one collective.

:class:`GradSet` groups gradients by (device, dtype) once, measures them with one
``torch._foreach_norm`` per group and rescales them with one ``torch._foreach_mul_`` per group.
Two cases, as PyTorch distributes gradients:

- **Replicated gradients** (DDP, or no distribution): after backward every rank holds the same
  averaged gradient, so a norm computed locally is already the global norm. Nothing to reduce.
- **Sharded gradients** (``DTensor``, as produced by FSDP2's ``fully_shard`` or tensor
  parallelism): each rank holds a shard. For a p-norm the global value is
  ``(Σ_ranks Σ_local |g|^p)^(1/p)``; for the ∞-norm it is the max over ranks. The local sum of
  p-th powers is all-reduced over the mesh dimensions on which the tensor is sharded (``Shard``);
  replicated mesh dimensions hold copies and are not summed. A ``Partial`` gradient (unreduced
  sum) is redistributed to ``Replicate`` before it is measured.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from stabletrain import _norms
from stabletrain._norms import needs_scaling, norm_dtype, safe_scale

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup
    from torch.distributed.device_mesh import DeviceMesh

__all__: list[str] = []

Key = tuple[torch.device, torch.dtype]

ShardKey = tuple["DeviceMesh", tuple[int, ...]]


@functools.cache
def _dtensor_type() -> type | None:
    if not torch.distributed.is_available():
        return None
    from torch.distributed.tensor import DTensor

    return DTensor


def is_dtensor(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor``."""
    dtensor = _dtensor_type()
    return dtensor is not None and isinstance(tensor, dtensor)


def is_partial(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a DTensor with a ``Partial`` (unreduced) placement."""
    return is_dtensor(tensor) and any(p.is_partial() for p in _placements(tensor))


def _placements(tensor: torch.Tensor) -> Sequence[Any]:
    placements: Sequence[Any] = tensor.placements  # type: ignore[attr-defined]
    return placements


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The rank-local shard of a DTensor (the tensor itself otherwise), sharing its storage."""
    if is_dtensor(tensor):
        local: torch.Tensor = tensor.to_local()  # type: ignore[attr-defined]
        return local
    return tensor


def measurable(tensor: torch.Tensor) -> torch.Tensor:
    """A rank-local tensor whose norm, reduced with :func:`shard_key`, is the global norm.

    ``Partial`` placements are redistributed to ``Replicate`` first (a copy): the norm of a sum
    is not the sum of the norms.
    """
    if not is_dtensor(tensor):
        return tensor
    if is_partial(tensor):
        from torch.distributed.tensor import Replicate

        placements = [Replicate() if p.is_partial() else p for p in _placements(tensor)]
        tensor = tensor.redistribute(tensor.device_mesh, placements)  # type: ignore[attr-defined]
    return local_tensor(tensor)


def shard_key(tensor: torch.Tensor) -> ShardKey | None:
    """``(mesh, sharded mesh dims)`` for a sharded DTensor, ``None`` when nothing to reduce."""
    if not is_dtensor(tensor):
        return None
    dims = tuple(i for i, p in enumerate(_placements(tensor)) if p.is_shard())
    if not dims:
        return None
    mesh: DeviceMesh = tensor.device_mesh  # type: ignore[attr-defined]
    return mesh, dims


def reduce_shard_norms(local_norms: torch.Tensor, key: ShardKey, norm_type: float) -> torch.Tensor:
    """Global norms from the local norms (1-D, one per tensor) of tensors sharded like ``key``.

    One all-reduce per sharded mesh dimension for the whole batch of tensors.
    """
    mesh, dims = key
    if norm_type == float("inf"):
        values, op = local_norms.clone(), torch.distributed.ReduceOp.MAX
    else:
        values, op = local_norms.pow(norm_type), torch.distributed.ReduceOp.SUM
    for dim in dims:
        torch.distributed.all_reduce(values, op=op, group=mesh.get_group(dim))
    return values if norm_type == float("inf") else values.pow(1.0 / norm_type)


def world_size(group: ProcessGroup | None) -> int:
    """Ranks in ``group`` (the default group when None); 1 when not running distributed."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return 1
    return int(torch.distributed.get_world_size(group))


def all_reduce_mean(values: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """The mean of ``values`` over the ranks of ``group`` (a new tensor; NaN/inf propagate).

    A SUM all-reduce carries a non-finite value on any rank to every rank, so a decision taken
    on the result is the same everywhere.
    """
    size = world_size(group)
    if size == 1:
        return values
    reduced = values.clone()
    torch.distributed.all_reduce(reduced, op=torch.distributed.ReduceOp.SUM, group=group)
    return reduced / size


def index_tensor(idx: Sequence[int], device: torch.device) -> torch.Tensor:
    """Positions as an int64 tensor on ``device``, copied without waiting for its queue."""
    return torch.tensor(idx, dtype=torch.long).to(device, non_blocking=True)


def _group_norms(members: list[torch.Tensor], p: float) -> torch.Tensor:
    """The p-norms of tensors of one device and dtype, stacked, in float32 at least."""
    dtype = norm_dtype(members[0].dtype)
    if p == math.inf and members[0].device.type == "cpu":
        # torch's CPU ∞-norm takes |g| element by element, ~15x slower than a min/max reduction:
        # max|g| = max(max g, −min g), NaN propagating
        lows, highs = zip(*(torch.aminmax(t) for t in members), strict=True)
        return torch.maximum(torch.stack(highs).to(dtype), torch.stack(lows).to(dtype).neg())
    return torch.stack(torch._foreach_norm(members, p, dtype=dtype))


class GradSet:
    """Gradients grouped once by (device, dtype) for fused norms, scaling and clamping.

    Sparse and empty gradients, and every gradient with ``foreach=False``, take a per-tensor
    path. Sharded (DTensor) gradients are handled through their rank-local shards.
    """

    def __init__(self, grads: Sequence[torch.Tensor], foreach: bool) -> None:
        self.grads = list(grads)
        self.foreach = foreach
        dtensor = _dtensor_type()
        self.sharded = dtensor is not None and any(isinstance(g, dtensor) for g in self.grads)
        self.locals = [local_tensor(g) for g in self.grads] if self.sharded else self.grads
        self.groups: dict[Key, list[int]] = {}
        self.others: list[int] = []
        for i, t in enumerate(self.locals):
            if foreach and not t.is_sparse and t.numel() > 0:
                self.groups.setdefault((t.device, t.dtype), []).append(i)
            else:
                self.others.append(i)
        self.device = self.locals[0].device if self.locals else torch.device("cpu")
        wide = any(t.dtype == torch.float64 for t in self.locals)
        self.dtype = torch.float64 if wide else torch.float32

    def __len__(self) -> int:
        return len(self.grads)

    def norms(self, p: float) -> torch.Tensor:
        """The global p-norm of each gradient, as one 1-D tensor in the gradients' order.

        Finite wherever the norm is representable: scaled for p > 2, and for p <= 2 the fused
        norms that came back +inf are recomputed scaled when the gradients are on the CPU
        (:mod:`stabletrain._norms`); on an accelerator that needs a host read, which
        :func:`~stabletrain.stability._distributed.GradSet.exact_norms` does on request.
        """
        tensors = [measurable(g) for g in self.grads] if self.sharded else self.locals
        if needs_scaling(p):
            return self._scaled_norms(tensors, p)[0]
        out = self._global(self._local_norms(tensors, p), p)
        if p != math.inf and self.locals and _norms.reads_are_free(self.locals):
            infinite = torch.isposinf(out).nonzero().flatten().tolist()  # free on the CPU
            if infinite:
                exact, _ = self.exact_norms(infinite, p)
                out = out.index_copy(0, index_tensor(infinite, out.device), exact.to(out.dtype))
        return out

    def _local_norms(self, tensors: Sequence[torch.Tensor], p: float) -> torch.Tensor:
        """The rank-local p-norm of each of ``tensors`` (grouped like the gradients), fused."""
        groups = [(idx, [tensors[i] for i in idx]) for idx in self.groups.values()]
        if len(groups) == 1 and not self.others:  # the common case: no reordering
            return _group_norms(groups[0][1], p).to(self.dtype)
        out = torch.zeros(len(tensors), dtype=self.dtype, device=self.device)
        for idx, members in groups:
            norms = _group_norms(members, p).to(self.device, self.dtype)
            out[index_tensor(idx, self.device)] = norms
        for i in self.others:
            t = tensors[i]
            if t.numel() == 0:  # an empty shard; the inf-norm kernel has no identity for it
                continue
            dense = t.coalesce().values() if t.is_sparse else t
            if dense.numel() == 0:
                continue
            norm = torch.linalg.vector_norm(dense, p, dtype=norm_dtype(t.dtype))
            out[i] = norm.to(self.device)
        return out

    def _global(self, local: torch.Tensor, p: float) -> torch.Tensor:
        return self._reduce(local, p) if self.sharded else local

    def _scaled_norms(
        self, tensors: Sequence[torch.Tensor], p: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(‖g_i‖_p computed as m_i·‖g_i/m_i‖_p, m_i = max|g_i|, and the m_i), global.

        Every term of the scaled sums is at most 1, so no sum overflows (an entry of 1e19
        squared is 1e38, near float32's largest number) or underflows to 0 (|g|^20 for
        |g| = 0.01); the product is inf only if the norm itself is not representable. m_i is
        NaN or inf exactly when the gradient holds a NaN or an inf, and so then is the norm.
        Copies the gradients (in float32 at least) once, with no host read.
        """
        peaks = self._global(self._local_norms(tensors, math.inf), math.inf)
        scales = safe_scale(peaks)
        scaled = []
        for i, t in enumerate(tensors):
            dense = t.coalesce().values() if t.is_sparse else t
            wide = norm_dtype(t.dtype)
            scaled.append(dense.to(wide) / scales[i].to(t.device, wide))
        ratios = self._global(GradSet(scaled, self.foreach)._local_norms(scaled, p), p)
        return torch.where(torch.isfinite(peaks), ratios * scales, peaks), peaks

    def exact_norms(self, idx: Sequence[int], p: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The p-norms of the gradients at ``idx`` computed so that no sum can overflow, and their
        largest |g| (both 1-D, global over shards): see :meth:`_scaled_norms`.

        For the path that follows an infinite fused norm, never for a healthy step. Under
        sharding every rank must pass the same sharded gradients, as for :meth:`norms`.
        """
        sub = GradSet([self.grads[i] for i in idx], foreach=self.foreach)
        tensors = [measurable(g) for g in sub.grads] if sub.sharded else sub.locals
        return sub._scaled_norms(tensors, p)

    def _reduce(self, norms: torch.Tensor, p: float) -> torch.Tensor:
        by_key: dict[ShardKey, list[int]] = {}
        for i, g in enumerate(self.grads):
            key = shard_key(g)
            if key is not None:
                by_key.setdefault(key, []).append(i)
        for key, idx in by_key.items():
            where = index_tensor(idx, norms.device)
            norms = norms.index_copy(0, where, reduce_shard_norms(norms[where], key, p))
        return norms

    def scale_(self, coef: torch.Tensor) -> None:
        """Multiply every gradient in place by ``coef``: 0-d, or 1-D with one per gradient."""
        per_grad = coef.dim() == 1
        for (device, _), idx in self.groups.items():
            members = [self.locals[i] for i in idx]
            if per_grad:
                torch._foreach_mul_(
                    members, coef[index_tensor(idx, coef.device)].to(device).unbind()
                )
            else:
                torch._foreach_mul_(members, coef.to(device))
        for i in self.others:
            t = self.locals[i]
            t.mul_((coef[i] if per_grad else coef).to(t.device))

    def clamp_(self, bound: float) -> None:
        """Clamp every gradient element to [-bound, bound] in place.

        A bound beyond a gradient dtype's range is that dtype's bound as rounding makes it:
        its largest finite value when ``bound`` rounds to it, else nothing to clamp (±inf).
        """
        for (_, dtype), idx in self.groups.items():
            limit = _bound_in(bound, dtype)
            if limit is None:
                continue
            members = [self.locals[i] for i in idx]
            torch._foreach_clamp_min_(members, -limit)
            torch._foreach_clamp_max_(members, limit)
        for i in self.others:
            limit = _bound_in(bound, self.locals[i].dtype)
            if limit is not None:
                self.locals[i].clamp_(-limit, limit)


def _bound_in(bound: float, dtype: torch.dtype) -> float | None:
    """``bound`` as a clamp limit for ``dtype``: itself when representable, the largest finite
    value when it rounds to it, None when it rounds to inf (clamping changes nothing)."""
    largest = torch.finfo(dtype).max
    if bound <= largest:
        return bound
    rounded = float(torch.tensor(bound, dtype=torch.float64).to(dtype))
    return largest if math.isfinite(rounded) else None
