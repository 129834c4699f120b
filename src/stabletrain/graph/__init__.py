"""Which operation follows every layer, observed in one forward pass.

:func:`trace` runs the model once on an example input and records, for every module that holds
parameters (Linear, ConvNd, Embedding, RNNs, attention, norms, custom modules), what consumes its
output: an activation (module or functional: ``F.relu(self.fc(x))``, ``x * torch.sigmoid(x)``),
a normalization (and the activation after it), a residual addition, another layer, attention,
or the model's output (an activation module built from several ops, such as transformers'
``NewGELUActivation``, counts as one activation; :func:`register_activation` adds your own);
how many times it was called and in which order; and every residual
branch (an addition of a block's input, or its projection, and the block's output).

It observes at run time (a ``TorchFunctionMode`` and module hooks), so it works where
``torch.fx`` cannot trace: data-dependent control flow, Hugging Face models. Parameters, buffers
(BatchNorm running statistics included) and train/eval modes are as before afterwards.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    >>> graph = trace(model, torch.randn(16, 4))
    >>> graph.layers["0"].following[0].describe()
    'batch_norm -> relu'
    >>> graph.layers["3"].following[0].kind
    'output'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from stabletrain._wrappers import unwrap_model
from stabletrain.graph._modules import register_activation
from stabletrain.graph._rows import leading_rows
from stabletrain.graph._state import (
    SnapshotDevice,
    Transaction,
    preserved_rng,
    preserved_state,
    snapshot_of,
    transaction,
)
from stabletrain.graph.analysis import (
    NORM_TYPES,
    DataflowIndex,
    Following,
    FollowingKind,
    LayerInfo,
    ParamUse,
    ResidualBranch,
    analyse,
    first_activation,
    is_norm,
)
from stabletrain.graph.recorder import (
    Call,
    Observer,
    Op,
    Recording,
    call_model,
    check_example_input,
    run,
    tensors_in,
)

__all__ = [
    "NORM_TYPES",
    "STRUCTURE_ROWS",
    "Call",
    "DataflowIndex",
    "Following",
    "FollowingKind",
    "Graph",
    "LayerInfo",
    "Observer",
    "Op",
    "ParamUse",
    "Recording",
    "ResidualBranch",
    "SnapshotDevice",
    "Transaction",
    "call_model",
    "check_example_input",
    "first_activation",
    "is_norm",
    "leading_rows",
    "preserved_rng",
    "preserved_state",
    "register_activation",
    "snapshot_of",
    "tensors_in",
    "trace",
    "trace_with_grad",
    "transaction",
]


STRUCTURE_ROWS = 1
"""The rows a structure-only trace starts from (``trace(model, x, rows=STRUCTURE_ROWS)``)."""

# BatchNorm in train mode refuses one value per channel: the rows tried after a refusal of fewer
_BATCHNORM_ROWS = 2


@dataclass
class Graph:
    """What one forward pass of a model did, layer by layer."""

    layers: dict[str, LayerInfo]  # in order of first call
    params: dict[str, ParamUse]  # every parameter an op read, by its (first) qualified name
    residuals: list[ResidualBranch]
    unused: tuple[str, ...]  # modules with parameters that the forward pass never called
    recording: Recording

    def residual_of(self, layer: str) -> ResidualBranch | None:
        """The residual branch ``layer`` belongs to, if any (the innermost one)."""
        for branch in sorted(self.residuals, key=lambda b: len(b.layers)):
            if layer in branch.layers:
                return branch
        return None


def trace(model: nn.Module, example_input: Any, *, rows: int | None = None) -> Graph:
    """Run ``model`` once on ``example_input`` and record what follows every layer.

    The recording is structure only (which op reads which tensor, inside which module), so it
    does not depend on how many rows the batch has, but its cost does: ``rows=1`` traces the
    first row of the batch (every tensor of ``example_input`` cut to its first rows where they
    share their leading size; see :func:`leading_rows`). A ResNet-50 on eight 224² images
    traces in about 0.12 s on one row against 0.63 s on all eight (2-core CPU). Where the model
    raises on one row (BatchNorm in train mode needs two values per channel) it is traced on
    two, and where it raises on those (a reshape by a fixed batch size), or the input has no
    common leading size, on the whole input; so a model that raises on its input raises after
    the last try. Keep ``rows=None`` for a model whose ops depend on the batch size itself
    (checked on every model of the test zoo: the graphs of one row and of the batch are
    identical).

    Buffers, train/eval modes and the random state (CPU and the model's CUDA devices) are
    restored afterwards: dropout in train mode draws, and tracing must not shift the draws of
    the training that follows.

    Args:
        model: any ``nn.Module``; it runs in its current train/eval mode, without gradients.
        example_input: a tensor, a tuple/list of positional inputs, or a dict of keyword inputs.
        rows: trace on this many leading rows of the batch first (a positive int), or on all
            of it.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``example_input`` is of another type, or
            ``rows`` is not an int.
        ValueError: the model raised on ``example_input`` (the original error is chained), or
            ``rows < 1``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> graph = trace(model, torch.randn(64, 4), rows=STRUCTURE_ROWS)
        >>> graph.layers["0"].activation.op
        'relu'
    """
    model = unwrap_model(model)
    _check(model, example_input, "trace")
    tries: tuple[int, ...] = ()
    if rows is not None:
        first = _checked_rows(rows)
        tries = tuple(dict.fromkeys((first, max(first, _BATCHNORM_ROWS))))
    with preserved_state(model), preserved_rng(model):
        for n in tries:
            fewer = leading_rows(example_input, n)
            if fewer is None:
                continue
            try:
                return _trace(model, fewer, "trace", grad=False, observer=None)[0]
            except ValueError:  # refused: more rows, then the whole batch
                pass
        return _trace(model, example_input, "trace", grad=False, observer=None)[0]


def _checked_rows(rows: Any) -> int:
    if isinstance(rows, bool) or not isinstance(rows, int):
        raise TypeError(f"trace: rows must be a positive int or None, got {type(rows).__name__}.")
    if rows < 1:
        raise ValueError(f"trace: rows must be at least 1 (or None: every row), got {rows}.")
    return rows


def trace_with_grad(
    model: nn.Module, example_input: Any, observer: Observer | None = None
) -> tuple[Graph, Any]:
    """:func:`trace` with gradients enabled, returning the model's output too.

    For measurements that need the forward pass's values and its graph in the same pass (a
    backward pass follows): ``observer`` sees every op and layer call as it runs. Unlike
    :func:`trace`, buffers and modes are not restored here: wrap the forward and the backward
    in :func:`preserved_state` (BatchNorm's backward may read the running statistics).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        >>> with preserved_state(model):
        ...     graph, out = trace_with_grad(model, torch.randn(3, 4))
        >>> graph.layers["0"].activation.op, out.requires_grad
        ('tanh', True)
    """
    _check(model, example_input, "trace_with_grad")
    return _trace(model, example_input, "trace_with_grad", grad=True, observer=observer)


def _check(model: Any, example_input: Any, where: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{where}: expected an nn.Module, got {type(model).__name__}.")
    check_example_input(example_input, where=where)


def _trace(
    model: nn.Module, example_input: Any, where: str, *, grad: bool, observer: Observer | None
) -> tuple[Graph, Any]:
    try:
        rec, output = run(model, example_input, grad=grad, observer=observer)
    except Exception as err:
        raise ValueError(
            f"{where}: the model raised {type(err).__name__} on example_input: {err}. Pass an "
            "input the model accepts (a tensor, a tuple of positional inputs or a dict of "
            "keyword inputs)."
        ) from err
    layers, uses, residuals = analyse(rec, model)
    used = {layer.name for layer in layers} | {u.name.rpartition(".")[0] for u in uses}
    unused = tuple(
        name
        for name, m in model.named_modules()
        if name not in used and any(True for _ in m.parameters(recurse=False))
    )
    graph = Graph(
        {layer.name: layer for layer in layers}, {u.name: u for u in uses}, residuals, unused, rec
    )
    return graph, output
