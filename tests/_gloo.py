"""Tests on two CPU processes (gloo): spawn the ranks under a deadline, and give each rank its
process group.

The ranks meet through a file store in a temporary folder (no port to race for); each writes
its results to ``rank{r}.pt`` in the same folder. Ranks that outlive the deadline are killed,
so a hang fails the test instead of blocking the suite.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

DEADLINE_S = 120.0


def spawn_ranks(
    run: Callable[[int, str, str], None], world: int, out: Path, deadline_s: float = DEADLINE_S
) -> list[dict[str, Any]]:
    """Run ``run(rank, store_file, out_dir)`` on ``world`` processes; every rank's results."""
    context = mp.spawn(run, args=(str(out / "store"), str(out)), nprocs=world, join=False)
    deadline = time.monotonic() + deadline_s
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {world} ranks did not finish in {deadline_s} s")
    return [torch.load(out / f"rank{r}.pt") for r in range(world)]


def one_thread() -> None:
    """One intra-op thread per rank: two ranks on two cores, and sums in a fixed order."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


@contextlib.contextmanager
def process_group(rank: int, world: int, store_file: str) -> Iterator[None]:
    """This rank's gloo process group (on one thread), destroyed on the way out."""
    one_thread()
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store_file}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),
    )
    try:
        yield
    finally:
        dist.destroy_process_group()
