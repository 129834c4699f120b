"""Helpers of the numerical-stability experiments (S1–S6), the recipes (C1–C5) and P-FIXUP2019.

On top of :mod:`stabletrain.lab._common` (data, train loop, per-layer signals) and
:mod:`stabletrain.lab._init_common` (named schemes): a He init scaled by a factor (the
"oversized" and "undersized" inits), the mean and standard error over seeds, and the spread of
a profile in decades. The residual MLP these experiments train is
:func:`stabletrain.models.resmlp`.

Example:
    >>> import torch
    >>> w = scaled_he(2.0)(torch.empty(256, 256), torch.Generator().manual_seed(0))
    >>> round(float(w.var() * 256), 1)   # 2 · 2² = 8: twice He's std
    8.0
    >>> [round(v, 4) for v in mean_se([0.9, 0.92, 0.94])]
    [0.92, 0.0115]
    >>> decades([0.01, 1.0, 10.0])
    3.0
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import torch

from stabletrain import init
from stabletrain._checks import check_real
from stabletrain.lab._init_common import Scheme

__all__ = ["decades", "fan_in_normal", "mean_se", "scaled_he"]


def fan_in_normal(sigma_w2: float) -> Scheme:
    """``N(0, σ_w² / fan_in)``: weights of mean-field variance ``σ_w² = fan_in · Var(w)``.

    ``σ_w² = 1`` is Xavier's variance for a square layer (LeCun's for any), ``2`` He's.
    """
    scale = check_real("sigma_w2", sigma_w2, where="fan_in_normal", positive=True)

    def scheme(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return init.variance_scaling_(weight, scale, "fan_in", "normal", generator=generator)

    return scheme


def scaled_he(scale: float) -> Scheme:
    """He normal times ``scale``: ``N(0, scale² · 2 / fan_in)`` (``scale = 1`` is He's init).

    Through a ReLU each layer multiplies the signal's std by ``scale`` (forward and backward),
    so a depth-``L`` chain changes it by ``scale^L``.
    """
    return fan_in_normal(2.0 * check_real("scale", scale, where="scaled_he", positive=True) ** 2)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value, NaN if a value is not finite)."""
    if not values:
        raise ValueError("mean_se: needs at least one value.")
    mean = statistics.fmean(values)
    if not all(math.isfinite(v) for v in values):
        return mean, math.nan
    if len(values) < 2:
        return mean, 0.0
    return mean, statistics.stdev(values) / math.sqrt(len(values))


def decades(values: Sequence[float]) -> float:
    """``log10(max / min)`` of positive values: how many orders of magnitude they span.

    ``inf`` when a value is 0 or not finite (the signal vanished or overflowed).
    """
    if not values:
        raise ValueError("decades: needs at least one value.")
    low, high = min(values), max(values)
    if not (low > 0 and math.isfinite(high)):
        return math.inf
    return math.log10(high / low)
