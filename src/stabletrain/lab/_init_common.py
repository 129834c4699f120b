"""Helpers of the initialization experiments (claims I1–I11, the published init results).

Named schemes applied to every ``nn.Linear`` of a model with :mod:`stabletrain.init`, signal
profiles over depth as tables and figures, and the per-layer factor that makes a profile's
trend comparable across depths.

Example:
    >>> import torch
    >>> from stabletrain import models
    >>> net = models.mlp(64, 64, depth=20, width=64, activation="relu")
    >>> _ = init_linears_(net, "xavier_normal", torch.Generator().manual_seed(0))
    >>> stds = forward_stds(net, torch.randn(256, 64))
    >>> round(per_layer_factor(stds[:-1]), 1)   # ReLU halves the variance: 1/sqrt(2) per layer
    0.7
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from stabletrain import init
from stabletrain.lab._common import LayerSignal, layer_signals
from stabletrain.lab.experiment import Figure, Table

__all__ = [
    "SCHEMES",
    "Scheme",
    "forward_stds",
    "init_linears_",
    "per_layer_factor",
    "profile_figure",
    "profile_table",
]

Tensor = torch.Tensor
Scheme = Callable[[Tensor, torch.Generator], Tensor]
"""An in-place weight initializer ``(weight, generator) -> weight``."""

SCHEMES: dict[str, Scheme] = {
    # the tutorials' "standard" init U(±1/sqrt(n_in)), also PyTorch's default for Linear weights
    "standard": lambda w, g: init.standard_(w, generator=g),
    "small_random": lambda w, g: init.small_random_(w, 0.01, generator=g),
    "xavier_uniform": lambda w, g: init.xavier_uniform_(w, generator=g),
    "xavier_normal": lambda w, g: init.xavier_normal_(w, generator=g),
    "he_uniform": lambda w, g: init.he_uniform_(w, nonlinearity="relu", generator=g),
    "he_normal": lambda w, g: init.he_normal_(w, nonlinearity="relu", generator=g),
    "he_normal_fan_out": lambda w, g: init.he_normal_(
        w, mode="fan_out", nonlinearity="relu", generator=g
    ),
    "orthogonal": lambda w, g: init.orthogonal_(w, generator=g),
}
"""The weight schemes the experiments compare, by name (biases are set to 0 separately)."""


def init_linears_(
    model: nn.Module,
    scheme: str | Scheme,
    generator: torch.Generator,
    *,
    bias: float = 0.0,
) -> nn.Module:
    """Initialize every ``nn.Linear`` weight of ``model`` with ``scheme``; biases to ``bias``.

    ``scheme`` is a name from :data:`SCHEMES` or an initializer ``(weight, generator)``.

    Raises:
        ValueError: for an unknown scheme name.
    """
    if isinstance(scheme, str):
        if scheme not in SCHEMES:
            raise ValueError(
                f"init_linears_: unknown scheme {scheme!r}; valid names are "
                f"{', '.join(SCHEMES)}, or pass an initializer (weight, generator) -> weight."
            )
        scheme = SCHEMES[scheme]
    for module in model.modules():
        if isinstance(module, nn.Linear):
            scheme(module.weight, generator)
            if module.bias is not None:
                init.constant_(module.bias, bias)
    return model


def forward_stds(model: nn.Module, x: Tensor) -> list[float]:
    """Std of every ``nn.Linear`` output (pre-activation) over one batch, in call order."""
    return [s.forward_std for s in layer_signals(model, x)]


def per_layer_factor(stds: Sequence[float]) -> float:
    """The geometric mean ratio of consecutive stds: ``(stds[-1] / stds[0]) ** (1 / (n - 1))``.

    1 for a flat profile; an exponential trend ``r**l`` gives ``r`` whatever the depth, so a
    threshold on it means the same at depth 20 and 50. 0 when the signal vanished entirely
    (the last std underflowed to 0); NaN when the first std is not positive or one is not
    finite.
    """
    if len(stds) < 2:
        raise ValueError(f"per_layer_factor: needs at least 2 stds, got {len(stds)}.")
    first, last = stds[0], stds[-1]
    if not (first > 0 and last >= 0 and math.isfinite(first) and math.isfinite(last)):
        return math.nan
    return float((last / first) ** (1.0 / (len(stds) - 1)))


def _rows_at(depth: int, points: int) -> list[int]:
    """About ``points`` layer indices from 0 to ``depth - 1``, first and last included."""
    if depth <= points:
        return list(range(depth))
    step = (depth - 1) / (points - 1)
    return sorted({round(i * step) for i in range(points)})


def profile_table(
    title: str, profiles: Mapping[str, Sequence[LayerSignal]], *, points: int = 8
) -> Table:
    """Forward and backward std per layer for each named profile, at about ``points`` layers."""
    rows = []
    for label, signals in profiles.items():
        for i in _rows_at(len(signals), points):
            s = signals[i]
            rows.append((label, i + 1, s.name, s.forward_std, s.batch_std, s.backward_std))
    return Table(
        title,
        ("setting", "layer", "module", "forward std", "input-dependent std", "backward std"),
        tuple(rows),
    )


def profile_figure(
    title: str,
    profiles: Mapping[str, Sequence[LayerSignal]],
    *,
    what: str = "forward",
) -> Figure:
    """Per-layer std over depth (log y) for each named profile: ``what`` is ``"forward"``,
    ``"input-dependent"`` or ``"backward"``."""
    pick: dict[str, Callable[[LayerSignal], float]] = {
        "forward": lambda s: s.forward_std,
        "input-dependent": lambda s: s.batch_std,
        "backward": lambda s: s.backward_std,
    }
    if what not in pick:
        raise ValueError(f"profile_figure: unknown what={what!r}; valid: {', '.join(pick)}.")
    get = pick[what]
    series = {
        label: (
            [float(i + 1) for i in range(len(signals))],
            [get(s) for s in signals],
        )
        for label, signals in profiles.items()
    }
    return Figure(title, "layer", f"{what} std", series, logy=True)
