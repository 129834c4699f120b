"""Which modules the monitor reports on, in which order, and what it knows about each.

A *layer* is a module that holds parameters directly (Linear, ConvNd, norms, Embedding, RNNs,
attention, custom modules); a parameter shared by several modules belongs to the first. The
order is execution order when a traced forward pass is available
(:func:`stabletrain.graph.trace`), else registration order (``model.named_modules()``).

Execution order is the graph's own: ``Graph.layers`` in order of first call, matched to the
monitor's layers by module identity, not by name. A module registered at several positions
(``nn.Sequential(a, act, a)``) has several qualified names; the monitor names it by the first
(as ``named_modules()`` does), and the graph's record of that module, whatever name it is
filed under, gives its place and the activation that follows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from stabletrain.graph import NORM_TYPES, Graph, LayerInfo
from stabletrain.monitoring.activations import ActivationKind, activation_kind

_CHANNEL_FIRST = (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.GroupNorm)
_LOOKUPS = (nn.Embedding, nn.EmbeddingBag)


@dataclass
class LayerSpec:
    """One monitored layer."""

    name: str
    module: nn.Module
    params: tuple[nn.Parameter, ...]  # held directly, each parameter under one layer only
    depth: int | None  # position among the weight layers, None for norms and lookups
    unit_dim: int  # the dim of its output that indexes units: channels (1) or features (-1)
    matrix: nn.Parameter | None  # its main weight of >= 2 dims (symmetry, histograms)
    input_kind: ActivationKind | None  # a functional activation the trace saw after it


def _matrix(module: nn.Module, params: tuple[nn.Parameter, ...]) -> nn.Parameter | None:
    weight = getattr(module, "weight", None)
    if isinstance(weight, nn.Parameter) and weight.dim() >= 2 and any(weight is p for p in params):
        return weight
    return next((p for p in params if p.dim() >= 2), None)


def _input_kind(info: LayerInfo | None, level: float) -> ActivationKind | None:
    if info is None:
        return None
    act = next((f for f in info.following if f.kind == "activation"), None)
    if act is None:
        return None
    return activation_kind(act.op, dict(act.params), level=level, space="input")


def discover(model: nn.Module, graph: Graph | None, *, level: float) -> list[LayerSpec]:
    """The layers of ``model``, in execution order if ``graph`` is given, else registration."""
    traced = {id(info.module): info for info in graph.layers.values()} if graph else {}
    seen: set[int] = set()
    found: dict[int, LayerSpec] = {}  # by module identity, in registration order
    for name, module in model.named_modules():
        params = tuple(p for p in module.parameters(recurse=False) if id(p) not in seen)
        if not params:
            continue
        seen.update(id(p) for p in params)
        matrix = _matrix(module, params)
        found[id(module)] = LayerSpec(
            name,
            module,
            params,
            None,
            1 if isinstance(module, _CHANNEL_FIRST) else -1,
            matrix,
            _input_kind(traced.get(id(module)), level),
        )
    # the graph's order (first call), then the layers the forward pass never called
    order = [key for key in traced if key in found]
    layers = [found[key] for key in order] + [v for k, v in found.items() if k not in traced]
    depth = 0
    for layer in layers:
        if layer.matrix is not None and not isinstance(layer.module, NORM_TYPES + _LOOKUPS):
            layer.depth = depth
            depth += 1
    return layers
