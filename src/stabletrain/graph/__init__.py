"""Which operation follows every layer, observed in one forward pass.

:func:`trace` runs the model once on an example input and records, for every module that holds
parameters (Linear, ConvNd, Embedding, RNNs, attention, norms, custom modules), what consumes its
output: an activation (module or functional: ``F.relu(self.fc(x))``, ``x * torch.sigmoid(x)``),
a normalization (and the activation after it), a residual addition, another layer, attention,
or the model's output; how many times it was called and in which order; and every residual
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

from stabletrain.graph._analysis import (
    NORM_TYPES,
    Following,
    FollowingKind,
    LayerInfo,
    ParamUse,
    ResidualBranch,
    analyse,
    first_activation,
)
from stabletrain.graph._recorder import Recording, call_model, check_example_input, record
from stabletrain.graph._state import preserved_state

__all__ = [
    "NORM_TYPES",
    "Following",
    "FollowingKind",
    "Graph",
    "LayerInfo",
    "ParamUse",
    "ResidualBranch",
    "call_model",
    "check_example_input",
    "first_activation",
    "preserved_state",
    "trace",
]


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


def trace(model: nn.Module, example_input: Any) -> Graph:
    """Run ``model`` once on ``example_input`` and record what follows every layer.

    Args:
        model: any ``nn.Module``; it runs in its current train/eval mode, without gradients.
        example_input: a tensor, a tuple/list of positional inputs, or a dict of keyword inputs.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``example_input`` is of another type.
        ValueError: the model raised on ``example_input`` (the original error is chained).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"trace: expected an nn.Module, got {type(model).__name__}.")
    check_example_input(example_input, where="trace")
    with preserved_state(model):
        try:
            rec = record(model, example_input)
        except Exception as err:
            raise ValueError(
                f"trace: the model raised {type(err).__name__} on example_input: {err}. Pass an "
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
    return Graph(
        {layer.name: layer for layer in layers}, {u.name: u for u in uses}, residuals, unused, rec
    )
