"""The monitor's sinks, each on its own: a sink that fails is dropped, and training goes on.

A sink writes to a disk that fills up, a file that gets deleted, a directory that loses its
permissions, a remote service that goes away. None of that is a reason to stop a training run
that may have cost hours: a sink whose method raises (any ``Exception``) gets one
``RuntimeWarning`` naming it and the error, and nothing more from this run; the other sinks
carry on. ``KeyboardInterrupt`` and other ``BaseException`` subclasses still propagate.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stabletrain.findings import Finding
from stabletrain.monitoring.sinks.base import Histogram, Row, Sink


class SinkSet:
    """The sinks still written to (``live``) and those dropped after an error (``dropped``)."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.live = list(sinks)
        self.dropped: list[Sink] = []

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        """:meth:`Sink.write_meta` on every live sink."""
        self._each("write_meta", lambda sink: sink.write_meta(meta))

    def write(self, step: int, rows: Sequence[Row]) -> None:
        """:meth:`Sink.write` on every live sink."""
        self._each("write", lambda sink: sink.write(step, rows))

    def write_findings(self, step: int, findings: Sequence[Finding]) -> None:
        """:meth:`Sink.write_findings` on every live sink."""
        self._each("write_findings", lambda sink: sink.write_findings(step, findings))

    def wanting_histograms(self, step: int) -> list[Sink]:
        """The live sinks that take histograms at ``step``."""
        wanting: list[Sink] = []
        self._each(
            "wants_histograms",
            lambda sink: wanting.append(sink) if sink.wants_histograms(step) else None,
        )
        return wanting

    def write_histograms(
        self, step: int, histograms: Sequence[Histogram], sinks: Sequence[Sink]
    ) -> None:
        """:meth:`Sink.write_histograms` on those of ``sinks`` still live."""
        chosen = {id(sink) for sink in sinks}
        self._each(
            "write_histograms",
            lambda sink: sink.write_histograms(step, histograms) if id(sink) in chosen else None,
        )

    def close(self) -> None:
        """Close every sink: a live one that fails warns; a dropped one (it already warned) is
        closed quietly, to release what it holds."""
        dropped = list(self.dropped)
        self._each("close", lambda sink: sink.close())
        for sink in dropped:
            with contextlib.suppress(Exception):
                sink.close()

    def _each(self, method: str, action: Callable[[Sink], None]) -> None:
        for sink in list(self.live):
            try:
                action(sink)
            except Exception as err:  # any failure of a sink, never of the training
                self.live.remove(sink)
                self.dropped.append(sink)
                warnings.warn(
                    f"TrainingMonitor: the sink {sink!r} failed in {method}: "
                    f"{type(err).__name__}: {err}. It gets nothing more from this run; training "
                    "and the other sinks go on.",
                    RuntimeWarning,
                    stacklevel=4,
                )
