"""Numerical stability of the optimizer step: clipping that returns what it measured, and a
guard that skips non-finite or spiking steps.

>>> import torch
>>> from torch import nn
>>> from stabletrain.stability import StepGuard
>>> model = nn.Linear(4, 1)
>>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
>>> guard = StepGuard(opt, max_norm=1.0, model=model)
>>> model(torch.randn(8, 4)).pow(2).mean().backward()
>>> guard.step().stepped
True
"""

from stabletrain.stability.adaptive import UnitDims, adaptive_clip_grad_
from stabletrain.stability.clipping import (
    NonFiniteGradError,
    Parameters,
    clip_grad_norm_,
    clip_grad_value_,
    grad_norm,
)
from stabletrain.stability.guard import (
    SKIP_REASONS,
    SPIKE_ACTIONS,
    SPIKE_METRICS,
    ConsecutiveSkipsError,
    SkipReason,
    SpikeAction,
    SpikeMetric,
    StepGuard,
    StepResult,
)

__all__ = [
    "SKIP_REASONS",
    "SPIKE_ACTIONS",
    "SPIKE_METRICS",
    "ConsecutiveSkipsError",
    "NonFiniteGradError",
    "Parameters",
    "SkipReason",
    "SpikeAction",
    "SpikeMetric",
    "StepGuard",
    "StepResult",
    "UnitDims",
    "adaptive_clip_grad_",
    "clip_grad_norm_",
    "clip_grad_value_",
    "grad_norm",
]
