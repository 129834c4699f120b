"""What each monitor preset measures, resolved once from its name.

``minimal`` reads the gradient norms, the weight norms (from a fixed sample of each parameter's
entries, or exactly with ``exact=True``), the non-finite counts and the loss; ``standard`` adds
activation statistics (dead and saturated units, sampled rows), update/weight ratios and a
sampled symmetric-unit check on the first logged step and every
:data:`STANDARD_SYMMETRY_EVERY`-th after; ``full`` compares up to
``Thresholds.symmetric_rows`` rows on every logged step and writes histograms.

Example:
    >>> from stabletrain.monitoring.rules import Thresholds
    >>> m = measurements("standard", Thresholds())
    >>> m.activations, m.updates, m.symmetry_rows, m.symmetry_every, m.histograms
    (True, True, 32, 10, False)
    >>> measurements("minimal", Thresholds()).measures_symmetry(logged=1)
    False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stabletrain.monitoring.rules import Thresholds

__all__ = [
    "PRESETS",
    "STANDARD_SYMMETRY_EVERY",
    "STANDARD_SYMMETRY_ROWS",
    "Measurements",
    "Preset",
    "measurements",
]

Preset = Literal["minimal", "standard", "full"]
PRESETS: tuple[Preset, ...] = ("minimal", "standard", "full")
STANDARD_SYMMETRY_ROWS = 32
"""Rows per weight matrix the ``standard`` preset compares for symmetric units."""
STANDARD_SYMMETRY_EVERY = 10
"""The ``standard`` preset measures symmetric units on the first logged step and every this many
logged steps after it."""


@dataclass(frozen=True)
class Measurements:
    """What the monitor measures on a logged step.

    Attributes:
        activations: forward hooks measure dead and saturated units and activation moments.
        updates: update/weight ratios (a snapshot of the weights before the step).
        symmetry_rows: rows per weight matrix compared for symmetric units (0: never).
        symmetry_every: compare on the first logged step and every this many after it.
        histograms: gradient and weight histograms for sinks that want them.
    """

    activations: bool
    updates: bool
    symmetry_rows: int
    symmetry_every: int
    histograms: bool

    def measures_symmetry(self, logged: int) -> bool:
        """Whether the ``logged``-th logged step (from 1) compares rows."""
        return self.symmetry_rows > 0 and (logged - 1) % self.symmetry_every == 0


def measurements(preset: Preset, thresholds: Thresholds) -> Measurements:
    """What ``preset`` measures (``full``'s row count is ``thresholds.symmetric_rows``)."""
    if preset == "minimal":
        return Measurements(False, False, 0, 1, False)
    if preset == "standard":
        return Measurements(True, True, STANDARD_SYMMETRY_ROWS, STANDARD_SYMMETRY_EVERY, False)
    return Measurements(True, True, thresholds.symmetric_rows, 1, True)
