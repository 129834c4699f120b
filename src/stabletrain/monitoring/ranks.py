"""Which process writes: under ``torch.distributed`` every rank measures the same global numbers
(the gradients are synchronized, the guard's decisions agree), so by default only global rank 0
writes rows, findings and the summary; two ranks appending to one file would interleave and
corrupt its lines. ``"each"`` lets every rank write, each JSONL file under its own name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch.distributed as dist

from stabletrain.monitoring.sinks.base import Sink
from stabletrain.monitoring.sinks.jsonl import JSONLSink

WriteRanks = Literal["zero", "each"]
WRITE_RANKS: tuple[WriteRanks, ...] = ("zero", "each")


def global_rank() -> int | None:
    """This process's global rank, None outside an initialized process group."""
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return None


def is_writer(write_ranks: WriteRanks) -> bool:
    """Whether this process writes rows and prints the summary."""
    rank = global_rank()
    return write_ranks == "each" or rank is None or rank == 0


def for_ranks(sinks: Sequence[Sink], write_ranks: WriteRanks) -> list[Sink]:
    """The sinks this process writes to: all of them on a writer, none elsewhere. With
    ``"each"``, a :class:`JSONLSink` of rank ``r`` writes to ``<stem>.rank<r><suffix>``."""
    if not is_writer(write_ranks):
        return []
    rank = global_rank()
    if write_ranks == "each" and rank is not None:
        for sink in sinks:
            if isinstance(sink, JSONLSink) and f".rank{rank}" not in sink.path.name:
                sink.path = sink.path.with_name(f"{sink.path.stem}.rank{rank}{sink.path.suffix}")
    return list(sinks)
