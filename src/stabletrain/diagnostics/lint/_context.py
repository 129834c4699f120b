"""What every lint rule reads: the model, its structure (traced or static), the parameters'
categories, the optimizer's groups and the thresholds; plus the walks the rules share."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from stabletrain.diagnostics.lint._thresholds import LintThresholds
from stabletrain.findings import Finding, Severity
from stabletrain.graph import NORM_TYPES, DataflowIndex, Graph, LayerInfo, Op
from stabletrain.graph.ops import op_kind
from stabletrain.regularization.classify import ParamInfo

__all__ = ["LintContext", "ParamGroup", "Source", "longest_run", "readers", "through_reshapes"]

Source = Literal["trace", "graph", "module order", "modules"]
"""Where the structure came from: traced on ``example_input``, a given graph, the module order
of a pure ``nn.Sequential`` model, or module types and parameters only (no graph)."""


@dataclass(frozen=True)
class ParamGroup:
    """One optimizer parameter group, as the decay rule reads it."""

    index: int
    weight_decay: float
    params: tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class LintContext:
    """Everything a rule reads; rules are pure functions ``LintContext -> list[Finding]``."""

    model: nn.Module
    graph: Graph | None
    source: Source
    params: tuple[ParamInfo, ...]
    thresholds: LintThresholds
    groups: tuple[ParamGroup, ...] | None = None
    input_ms: float | None = None  # E[x²] of a single floating-point example input

    @functools.cached_property
    def modules(self) -> dict[str, nn.Module]:
        """Every module by qualified name."""
        return dict(self.model.named_modules(remove_duplicate=False))

    @functools.cached_property
    def weight_layers(self) -> dict[str, tuple[ParamInfo, ...]]:
        """Modules that own a weight matrix (category ``"weight"``) -> those parameters."""
        found: dict[str, list[ParamInfo]] = {}
        for info in self.params:
            if info.category == "weight":
                found.setdefault(info.module, []).append(info)
        return {name: tuple(infos) for name, infos in found.items()}

    @functools.cached_property
    def index(self) -> DataflowIndex:
        """Producers and consumers of every tensor of the recorded pass (needs a graph)."""
        if self.graph is None:
            raise RuntimeError("LintContext.index needs a graph")
        return DataflowIndex(self.graph.recording)

    def calls(self) -> Iterator[LayerInfo]:
        """The layers of the graph once per call, in execution order."""
        if self.graph is None:
            return
        order = sorted((o, name) for name, info in self.graph.layers.items() for o in info.order)
        for _, name in order:
            yield self.graph.layers[name]

    def is_norm(self, name: str) -> bool:
        """Whether module ``name`` is a normalization layer."""
        return isinstance(self.modules.get(name), NORM_TYPES)

    def in_residual(self, name: str) -> bool:
        """Whether layer ``name`` is part of a residual branch."""
        return self.graph is not None and self.graph.residual_of(name) is not None

    def finding(
        self,
        severity: Severity,
        layer: str | None,
        metric: str,
        value: float,
        threshold: float,
        message: str,
        fix: str,
        rule: str,
    ) -> Finding:
        """A :class:`Finding`; the message says so when the structure came from module order."""
        if self.source == "module order":
            message = message.rstrip(".") + " (read from the module order: no example_input)."
        return Finding(
            severity=severity,
            layer=layer,
            metric=metric,
            value=value,
            threshold=threshold,
            message=message,
            fix=fix,
            rule=rule,
        )


def readers(ctx: LintContext, node: int, through: Callable[[Op, int], bool]) -> list[Op | None]:
    """The ops that read tensor ``node``, walking on through every op where ``through(op,
    node)`` holds (it read ``node``); ``None`` stands for the model's output.
    """
    if ctx.graph is None:
        return []
    outputs = set(ctx.graph.recording.output_nodes)
    found: list[Op | None] = []
    seen: set[int] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in outputs:
            found.append(None)
        for op in ctx.index.consumers.get(n, []):
            if through(op, n):
                stack.extend(op.outputs)
            else:
                found.append(op)
    return found


def through_reshapes(op: Op, node: int) -> bool:
    """For :func:`readers`: walk on through views, reshapes, dropout and pooling only."""
    return op_kind(op.name) == "transparent"


def longest_run(
    layers: Iterator[LayerInfo], verdict: Callable[[LayerInfo], bool | None]
) -> list[str]:
    """The longest stretch of consecutive calls with ``verdict`` True; False breaks a stretch,
    None (a layer the rule does not count, e.g. an embedding) neither counts nor breaks."""
    best: list[str] = []
    run: list[str] = []
    for info in layers:
        keep = verdict(info)
        if keep is None:
            continue
        if keep:
            run.append(info.name)
            if len(run) > len(best):
                best = list(run)
        else:
            run = []
    return best
