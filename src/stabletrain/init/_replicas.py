"""Identical replicas after a data-dependent init: rank 0's parameters, on every rank.

``auto_init`` and ``lsuv_`` measure the model on an example batch; under data parallelism each
rank holds its own batch, so each would calibrate to its own statistics and the replicas would
silently differ (DDP broadcasts the parameters only when it is built). The rule here: **every
rank computes its init, then every rank takes rank 0's**: each parameter and buffer is broadcast
from rank 0 of the default process group, and the report returned on every rank is rank 0's
(the one that describes the parameters every rank now holds).

Sharded parameters (``DTensor``, FSDP2's ``fully_shard``) are left alone: each rank holds a
different shard of them by design. Like any collective, every rank must call the init.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn

if TYPE_CHECKING:  # policy imports this module: a runtime import would be circular
    from stabletrain.init.policy.report import InitReport

__all__ = ["replicate_from_rank0"]


def _world_size() -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


def replicate_from_rank0(model: nn.Module, report: InitReport) -> InitReport:
    """Broadcast ``model``'s parameters and buffers from rank 0; return rank 0's ``report``.

    Without an initialized process group of two or more ranks, returns ``report`` unchanged.
    """
    world = _world_size()
    if world < 2:
        return report
    from torch.distributed.tensor import DTensor

    tensors = [
        t
        for t in (*model.parameters(), *model.buffers())
        if not isinstance(t, DTensor) and t.numel() > 0
    ]
    with torch.no_grad():
        works = [dist.broadcast(t.data, src=0, async_op=True) for t in tensors]
        for work in works:
            if work is not None:
                work.wait()
    shared: list[object] = [report]
    dist.broadcast_object_list(shared, src=0)
    result = shared[0]
    if not isinstance(result, type(report)):  # only another stabletrain version on rank 0
        raise TypeError(f"rank 0 sent a {type(result).__name__}, not an InitReport.")
    result.notes.append(
        f"distributed: {len(tensors)} parameter(s) and buffer(s) broadcast from rank 0 to all "
        f"{world} ranks after init, so every replica holds rank 0's init (calibrated on rank 0's "
        "batch); this report is rank 0's."
    )
    return result
