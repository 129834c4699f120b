"""What each rank runs in tests/init/test_replicas.py (2 CPU processes, gloo): a DDP model
initialized by ``auto_init`` and ``lsuv_`` on each rank's own batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

import stabletrain as st
from stabletrain._wrappers import unwrap_model
from tests._gloo import one_thread, process_group

WORLD = 2


def build_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 3)
    )


def local_batch(rank: int) -> torch.Tensor:
    # per-rank data at different scales, so each rank's calibration differs
    return torch.randn(16, 6, generator=torch.Generator().manual_seed(10 + rank)) * (1 + rank)


def initialized(model: nn.Module, rank: int, how: str) -> tuple[dict[str, torch.Tensor], Any]:
    """Parameters after ``how`` (auto_init or lsuv_) on this rank's batch, and the report."""
    generator = torch.Generator().manual_seed(5)
    if how == "auto_init":
        report = st.auto_init(model, local_batch(rank), generator=generator)
    else:
        report = st.lsuv_(model, local_batch(rank), generator=generator)
    inner = unwrap_model(model)
    return {n: p.detach().clone() for n, p in inner.named_parameters()}, report.to_dict()


def run(rank: int, init_file: str, out_dir: str) -> None:
    """Entry point of each spawned rank."""
    one_thread()
    # before the process group exists: what this rank alone would get
    local = {how: initialized(build_model(), rank, how)[0] for how in ("auto_init", "lsuv_")}
    with process_group(rank, WORLD, init_file):
        results = {}
        for how in ("auto_init", "lsuv_"):
            ddp = nn.parallel.DistributedDataParallel(build_model())
            results[how] = initialized(ddp, rank, how)
        torch.save({"local": local, "ddp": results}, Path(out_dir) / f"rank{rank}.pt")
