"""A sink that keeps the rows in memory, for tests and notebooks."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from stabletrain._checks import check_positive_int
from stabletrain.findings import Finding
from stabletrain.monitoring.schedules import Schedule, check_schedule, every
from stabletrain.monitoring.sinks.base import Histogram, Row, Sink

__all__ = ["MemorySink"]

_ALWAYS = every(1)


class MemorySink(Sink):
    """Keep every row (or the last ``max_rows``), histogram and rule firing in lists.

    Args:
        max_rows: keep only the most recent rows (and as many histograms); all when None. A
            long run with no bound grows with the number of logged steps.
        histograms: on which steps to take histograms (preset ``full``).

    Example:
        >>> sink = MemorySink()
        >>> sink.write(1, [Row(1, "fc", "grad_norm", 0.5), Row(1, None, "loss", 2.0)])
        >>> sink.series("grad_norm", "fc")
        [(1, 0.5)]
        >>> sink.last("loss")
        2.0
    """

    def __init__(self, max_rows: int | None = None, *, histograms: Schedule = _ALWAYS) -> None:
        if max_rows is not None:
            max_rows = check_positive_int("max_rows", max_rows, where="MemorySink")
        self.rows: deque[Row] = deque(maxlen=max_rows)
        self.histograms: deque[Histogram] = deque(maxlen=max_rows)
        self.findings: deque[Finding] = deque(maxlen=max_rows)  # every firing, per step
        self.meta: dict[str, Any] | None = None  # what the monitor watched with
        self._histograms = check_schedule(histograms, where="MemorySink")

    def wants_histograms(self, step: int) -> bool:
        return bool(self._histograms(step))

    def write(self, step: int, rows: Sequence[Row]) -> None:
        self.rows.extend(rows)

    def write_histograms(self, step: int, histograms: Sequence[Histogram]) -> None:
        self.histograms.extend(histograms)

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        self.meta = dict(meta)

    def write_findings(self, step: int, findings: Sequence[Finding]) -> None:
        self.findings.extend(findings)

    def series(self, metric: str, layer: str | None = None) -> list[tuple[int, float]]:
        """``(step, value)`` of ``metric`` for ``layer`` (None: the whole model), in order."""
        return [(r.step, r.value) for r in self.rows if r.metric == metric and r.layer == layer]

    def last(self, metric: str, layer: str | None = None) -> float:
        """The latest value of ``metric`` for ``layer``.

        Raises:
            KeyError: no such row was written.
        """
        for row in reversed(self.rows):
            if row.metric == metric and row.layer == layer:
                return row.value
        raise KeyError(f"MemorySink: no row of metric {metric!r} for layer {layer!r}.")

    def clear(self) -> None:
        """Forget every row, histogram and finding."""
        self.rows.clear()
        self.histograms.clear()
        self.findings.clear()
