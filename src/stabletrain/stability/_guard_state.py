"""What :meth:`StepGuard.load_state_dict <stabletrain.stability.StepGuard.load_state_dict>`
accepts: the dict of ``state_dict()``, every key and value checked before anything is loaded."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import torch

from stabletrain._checks import check_choice
from stabletrain.stability._spikes import SPIKE_METRICS, SpikeMetric

__all__: list[str] = []

_COUNTERS = ("steps", "skipped_steps", "consecutive_skips")
_OPTIONAL = "spikes_detected"  # absent from states saved before spikes were counted


def check_state(
    state: Any,
) -> tuple[tuple[int, int, int, int], dict[SpikeMetric, torch.Tensor]]:
    """The counters (steps, skipped, consecutive, spikes) and windows of a saved state."""
    where = "StepGuard.load_state_dict"
    if not isinstance(state, Mapping):
        raise TypeError(
            f"{where}: expected the dict returned by StepGuard.state_dict(), got "
            f"{type(state).__name__}."
        )
    required = (*_COUNTERS, "windows")
    valid = (*required, _OPTIONAL)
    missing = [k for k in required if k not in state]
    unknown = [k for k in state if k not in valid]
    if missing or unknown:
        raise ValueError(
            f"{where}: the state has {'missing keys ' + str(missing) if missing else ''}"
            f"{' and ' if missing and unknown else ''}"
            f"{'unknown keys ' + str(unknown) if unknown else ''}; StepGuard.state_dict() has "
            f"{list(valid)}. Pass the dict that state_dict() returned, unchanged."
        )
    counts = []
    for key in (*_COUNTERS, _OPTIONAL):
        value = state.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{where}: state[{key!r}] must be an int, got {type(value).__name__}.")
        if value < 0:
            raise ValueError(f"{where}: state[{key!r}] must be >= 0, got {value}.")
        counts.append(int(value))
    steps, skipped, consecutive, spikes = counts
    if not consecutive <= skipped <= steps or spikes > steps:
        raise ValueError(
            f"{where}: inconsistent counters: consecutive_skips={consecutive} <= "
            f"skipped_steps={skipped} <= steps={steps} and spikes_detected={spikes} <= steps "
            "must hold. Pass the dict that state_dict() returned, unchanged."
        )
    raw = state["windows"]
    if not isinstance(raw, Mapping):
        raise TypeError(
            f"{where}: state['windows'] must be a dict {{metric: 1-D tensor}}, got "
            f"{type(raw).__name__}."
        )
    windows: dict[SpikeMetric, torch.Tensor] = {}
    for metric, history in raw.items():
        name = check_choice("window metric", metric, SPIKE_METRICS, where=where)
        key = f"state['windows'][{metric!r}]"
        if not isinstance(history, torch.Tensor):
            raise TypeError(f"{where}: {key} must be a tensor, got {type(history).__name__}.")
        if history.dim() != 1 or not history.is_floating_point():
            raise ValueError(
                f"{where}: {key} must be a 1-D floating-point tensor, got dtype {history.dtype} "
                f"and shape {tuple(history.shape)}."
            )
        if not bool(torch.isfinite(history).all()):
            raise ValueError(f"{where}: {key} holds NaN or inf; a window records finite values.")
        windows[name] = history
    return (steps, skipped, consecutive, spikes), windows
