"""The graph of a model whose forward pass is its module order, without running it.

A model built only of ``nn.Sequential`` containers (``stabletrain.models.mlp``, ``cnn``, most
hand-written stacks) applies its leaf modules one after the other, so their order *is* the
forward pass. :func:`sequential_graph` writes that chain as the recording a traced pass would
have produced (one op per leaf: ``linear``, ``batch_norm``, ``relu``, ``dropout``, ...) and hands
it to the same analysis as :func:`stabletrain.graph.trace`, so the lint rules read one structure
whether or not an example input was given. Any other container (a custom ``forward``, a
``ModuleList``) may branch, add or skip: then there is no static graph.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from torch import nn

from stabletrain.graph import Call, Graph, Op
from stabletrain.graph.analysis import analyse
from stabletrain.graph.ops import ACTIVATION_OPS
from stabletrain.graph.recorder import Recording
from stabletrain.init.gain import activation_name

__all__ = ["is_sequential", "sequential_graph"]

_NORMS: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.modules.batchnorm._BatchNorm, "batch_norm"),
    (nn.modules.instancenorm._InstanceNorm, "instance_norm"),
    (nn.LayerNorm, "layer_norm"),
    (nn.GroupNorm, "group_norm"),
    (nn.LocalResponseNorm, "local_response_norm"),
    *(((nn.RMSNorm, "rms_norm"),) if hasattr(nn, "RMSNorm") else ()),
)


def is_sequential(model: nn.Module) -> bool:
    """Whether every container in ``model`` is a plain ``nn.Sequential`` (a leaf counts too)."""
    return all(
        type(m).forward is nn.Sequential.forward
        for m in model.modules()
        if next(m.children(), None) is not None
    )


def _leaves(prefix: str, module: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    if next(module.children(), None) is None:
        yield prefix, module
        return
    for name, child in module.named_children():
        yield from _leaves(f"{prefix}.{name}" if prefix else name, child)


def _snake(name: str) -> str:
    """``MaxPool2d`` -> ``max_pool2d``, ``LogSoftmax`` -> ``log_softmax``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _op_of(module: nn.Module) -> tuple[str, tuple[tuple[str, float], ...]] | None:
    """The op a leaf module runs, as a traced pass would name it; None for ``nn.Identity``."""
    if isinstance(module, nn.Identity):
        return None
    for kind, op in _NORMS:
        if isinstance(module, kind):
            return op, ()
    if isinstance(module, nn.modules.conv._ConvNd):
        dims = len(module.kernel_size)
        transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)
        return f"conv{'_transpose' if transposed else ''}{dims}d", ()
    if isinstance(module, nn.PReLU | nn.RReLU):
        return _snake(type(module).__name__).replace("_", ""), ()
    name = activation_name(module)
    if name in ACTIVATION_OPS:
        keys = ACTIVATION_OPS[name][1]
        return name, tuple((k, float(getattr(module, k))) for k in keys if hasattr(module, k))
    return _snake(type(module).__name__), ()  # linear, dropout, flatten, max_pool2d, softmax, ...


def sequential_graph(model: nn.Module) -> Graph | None:
    """The :class:`~stabletrain.graph.Graph` of a pure ``nn.Sequential`` model, else None.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
        >>> graph = sequential_graph(model)
        >>> graph.layers["0"].following[0].describe(), graph.layers["3"].following[0].kind
        ('batch_norm -> relu', 'output')
        >>> sequential_graph(nn.ModuleList([nn.Linear(4, 4)])) is None
        True
    """
    if not is_sequential(model):
        return None
    rec = Recording(input_nodes=(0,))
    node = 0
    for name, module in _leaves("", model):
        op = _op_of(module)
        if op is None:
            continue
        params = tuple(
            f"{name}.{p}" if name else p for p, _ in module.named_parameters(recurse=False)
        )
        index = len(rec.ops)
        rec.ops.append(Op(index, op[0], (node,), params, (node + 1,), name, op[1]))
        if params:
            rec.calls.append(Call(name, len(rec.calls), (node,), (node + 1,), index, index + 1))
        node += 1
    rec.output_nodes = (node,)
    layers, uses, residuals = analyse(rec, model)
    used = {layer.name for layer in layers}
    unused = tuple(
        name
        for name, m in model.named_modules()
        if name not in used and next(m.parameters(recurse=False), None) is not None
    )
    return Graph(
        {layer.name: layer for layer in layers}, {u.name: u for u in uses}, residuals, unused, rec
    )
