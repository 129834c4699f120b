"""The depth of every parameter, for layer-wise learning-rate and decay multipliers.

Depth counts blocks in execution order (Bao et al. 2021, "BEiT"; Clark et al. 2020, "ELECTRA"):

- **Blocks** are the numbered children of containers (``nn.ModuleList`` / ``nn.Sequential``
  indices): a parameter named ``encoder.layer.3.attention.query.weight`` is in block
  ``encoder.layer.3``. The k-th block to run has depth k (from 1); parameters that run before
  every block (embeddings, stem) have depth 0, those after every block (final norm, head) have
  depth L + 1, and those between blocks join the block before them.
- **Models without numbered containers** (``nn.Sequential`` with named children, plain modules):
  every module that holds a weight is its own block, and the norms and biases in between join
  the layer before them.

Execution order comes from a traced forward pass when there is one (the first operation that
reads each parameter), else registration order.
"""

from __future__ import annotations

import bisect

from stabletrain.graph import Graph
from stabletrain.regularization._classify import ParamInfo


def _positions(infos: list[ParamInfo], graph: Graph | None) -> list[float]:
    """Execution position of each parameter: the first operation that read it; registration
    order without a graph, and for parameters the forward pass did not read (placed just after
    the parameter registered before them)."""
    if graph is None:
        return [float(i) for i in range(len(infos))]
    first_read: dict[str, int] = {}
    for op in graph.recording.ops:
        for name in op.params:
            first_read.setdefault(name, op.index)
    positions = []
    last = -1.0
    for info in infos:
        read = first_read.get(info.name)
        position = float(read) if read is not None else last + 1e-3
        positions.append(position)
        last = position
    return positions


def _block_of(name: str) -> str | None:
    """``encoder.layer.3.attn.weight`` -> ``encoder.layer.3``; None outside numbered blocks."""
    parts = name.split(".")[:-1]
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return None


def depths(infos: list[ParamInfo], graph: Graph | None = None) -> list[int]:
    """The depth of each parameter of ``infos`` (same order), from 0 to L + 1."""
    positions = _positions(infos, graph)
    blocks = [_block_of(info.name) for info in infos]
    if not any(blocks):  # each module with a weight is a block
        layers = {info.module for info in infos if info.category == "weight"}
        blocks = [info.module if info.module in layers else None for info in infos]
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    for block, position in zip(blocks, positions, strict=True):
        if block is not None:
            start[block] = min(start.get(block, position), position)
            end[block] = max(end.get(block, position), position)
    if not start:
        return [0] * len(infos)
    ordered = sorted(start, key=start.__getitem__)
    starts = [start[b] for b in ordered]
    depth_of = {block: i + 1 for i, block in enumerate(ordered)}
    last_end = max(end.values())
    result = []
    for block, position in zip(blocks, positions, strict=True):
        if block is not None:
            result.append(depth_of[block])
        elif position > last_end:
            result.append(len(ordered) + 1)
        else:  # before the first block: 0; between blocks: the block before
            result.append(bisect.bisect_right(starts, position))
    return result
