"""The depth of every parameter, for layer-wise learning-rate and decay multipliers.

Depth counts blocks in execution order (Bao et al. 2021, "BEiT"; Clark et al. 2020, "ELECTRA"):

- **Blocks** are the innermost numbered composites: entries of a container (``nn.ModuleList`` /
  ``nn.Sequential`` index) that hold layers of their own and no such entry inside. A parameter
  named ``stages.1.blocks.2.mlp.fc1.weight`` is in block ``stages.1.blocks.2`` (a ConvNeXt or
  Swin block, not its stage ``stages.1``), ``blocks.3.0.conv_pw.weight`` in ``blocks.3.0`` (an
  EfficientNet block), ``encoder.layer.3.attention.query.weight`` in ``encoder.layer.3``. A
  numbered single layer (``stem.0``, a Conv2d) is not a block: it is part of what surrounds one.
- The k-th block to run has depth k (from 1); parameters that run before every block (embeddings,
  the stem) have depth 0, those after every block (final norm, head) depth L + 1, and those
  between two blocks (a stage's downsampling) join the block after them, which reads their
  output (timm's matchers put a stage's downsampling with its first block too).
- **Models without numbered composites** (an ``nn.Sequential`` of layers, plain modules): every
  module that holds a weight is its own block, and the norms and biases in between join the
  layer before them (the layer they normalize or shift).

Execution order comes from a traced forward pass when there is one (the first operation that
reads each parameter), else registration order.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from torch import nn

from stabletrain.graph import Graph
from stabletrain.regularization.classify import ParamInfo


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


def _blocks(modules: Mapping[str, nn.Module]) -> set[str]:
    """The innermost numbered composites of the model (see the module docstring)."""
    numbered = {
        name
        for name, module in modules.items()
        if name.rpartition(".")[2].isdigit() and any(True for _ in module.children())
    }
    inner = set()
    for name in numbered:
        prefix = name + "."
        if not any(other.startswith(prefix) for other in numbered):
            inner.add(name)
    return inner


def _block_of(name: str, blocks: set[str]) -> str | None:
    """``stages.1.blocks.2.mlp.fc1.weight`` -> ``stages.1.blocks.2``; None outside blocks."""
    parts = name.split(".")[:-1]
    for i in range(len(parts), 0, -1):
        owner = ".".join(parts[:i])
        if owner in blocks:
            return owner
    return None


def depths(
    infos: list[ParamInfo], modules: Mapping[str, nn.Module], graph: Graph | None = None
) -> list[int]:
    """The depth of each parameter of ``infos`` (same order), from 0 to L + 1; ``modules``:
    the model's ``named_modules()``."""
    positions = _positions(infos, graph)
    found = _blocks(modules)
    blocks = [_block_of(info.name, found) for info in infos]
    join_next = True  # between blocks: the block after (it reads their output)
    if not any(blocks):  # each module with a weight is a block
        layers = {info.module for info in infos if info.category == "weight"}
        blocks = [info.module if info.module in layers else None for info in infos]
        join_next = False  # between layers: the layer before (the one they normalize)
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
        elif join_next:  # before the first block: 0 (bisect_left: the next block's index)
            result.append(bisect.bisect_left(starts, position) + 1 if position > starts[0] else 0)
        else:  # before the first layer: 0; between layers: the layer before
            result.append(bisect.bisect_right(starts, position))
    return result
