"""A sink that writes TensorBoard event files: per-layer scalars and, optionally, histograms.

Tags are ``"{metric}/{layer}"`` (``grad_norm/encoder.0.fc1``), so TensorBoard groups every
layer of one metric in one section; the metrics of the whole model are ``"{metric}/(model)"``.
Histograms (preset ``full``) are ``"{weight|grad}_hist/{layer}"``, on their own, slower
schedule: a histogram costs a pass over the tensor and a few kilobytes of event file.

Needs the ``tensorboard`` package: ``pip install 'stabletrain[tensorboard]'``. It is imported
when a sink is created, never when :mod:`stabletrain` is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from stabletrain.monitoring.schedules import Schedule, check_schedule, every
from stabletrain.monitoring.sinks.base import Histogram, Row, Sink, layer_label

__all__ = ["TensorBoardSink"]

_EVERY_100 = every(100)


def _summary_writer() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError(
            "TensorBoardSink needs the tensorboard package, which is not installed: "
            "pip install 'stabletrain[tensorboard]' (or pip install tensorboard). Use "
            f"JSONLSink or MemorySink without it. ({err})"
        ) from err
    return SummaryWriter


class TensorBoardSink(Sink):
    """Write the rows as TensorBoard scalars under ``log_dir``.

    Args:
        log_dir: the run's directory (``tensorboard --logdir`` its parent).
        histograms: on which steps to write weight and gradient histograms (those steps the
            monitor logs, preset ``full``); None for none.
        flush_secs: how often the writer flushes to disk.

    Raises:
        ImportError: tensorboard is not installed; the message names the extra to install.

    Example:
        >>> import tempfile
        >>> sink = TensorBoardSink(tempfile.mkdtemp())
        >>> sink.write(10, [Row(10, "fc", "grad_norm", 0.5)])
        >>> sink.close()
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        *,
        histograms: Schedule | None = _EVERY_100,
        flush_secs: int = 30,
    ) -> None:
        if not isinstance(log_dir, str | os.PathLike):
            raise TypeError(
                f"TensorBoardSink: log_dir must be a str or a path, got {type(log_dir).__name__}."
            )
        self.log_dir = os.fspath(log_dir)
        self._histograms = (
            None if histograms is None else check_schedule(histograms, where="TensorBoardSink")
        )
        self._writer = _summary_writer()(log_dir=self.log_dir, flush_secs=flush_secs)
        self._owned = True

    @classmethod
    def from_writer(
        cls, writer: Any, *, histograms: Schedule | None = _EVERY_100
    ) -> TensorBoardSink:
        """A sink writing through an existing ``SummaryWriter`` (a framework logger's, e.g.
        Lightning's ``TensorBoardLogger.experiment``), so the run keeps one event file.
        :meth:`close` only flushes it: its owner closes it.

        Example:
            >>> import tempfile
            >>> from torch.utils.tensorboard import SummaryWriter
            >>> writer = SummaryWriter(tempfile.mkdtemp())
            >>> sink = TensorBoardSink.from_writer(writer)
            >>> sink.write(1, [Row(1, None, "loss", 0.5)])
            >>> sink.close()
            >>> writer.close()
        """
        if not callable(getattr(writer, "add_scalar", None)):
            raise TypeError(
                f"TensorBoardSink.from_writer: writer must be a SummaryWriter, got "
                f"{type(writer).__name__}."
            )
        sink = cls.__new__(cls)
        sink.log_dir = os.fspath(getattr(writer, "log_dir", "") or "")
        sink._histograms = (
            None if histograms is None else check_schedule(histograms, where="TensorBoardSink")
        )
        sink._writer = writer
        sink._owned = False
        return sink

    def __repr__(self) -> str:
        return f"TensorBoardSink({self.log_dir!r})"

    def wants_histograms(self, step: int) -> bool:
        return self._histograms is not None and bool(self._histograms(step))

    def write(self, step: int, rows: Sequence[Row]) -> None:
        for row in rows:
            self._writer.add_scalar(f"{row.metric}/{layer_label(row.layer)}", row.value, step)

    def write_histograms(self, step: int, histograms: Sequence[Histogram]) -> None:
        for h in histograms:
            self._writer.add_histogram_raw(
                f"{h.metric}_hist/{layer_label(h.layer)}",
                min=h.low,
                max=h.high,
                num=h.num,
                sum=h.total,
                sum_squares=h.sum_squares,
                bucket_limits=list(h.edges[1:]),
                bucket_counts=list(h.counts),
                global_step=step,
            )

    def close(self) -> None:
        self._writer.flush()
        if self._owned:
            self._writer.close()
