"""Norms of tensors spread over ranks, and the step guard's one collective.

Two cases, following PyTorch's own distribution:

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

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup
    from torch.distributed.device_mesh import DeviceMesh

__all__: list[str] = []

ShardKey = tuple["DeviceMesh", tuple[int, ...]]


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
