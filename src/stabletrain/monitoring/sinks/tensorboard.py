"""A sink that writes TensorBoard event files: per-layer scalars, findings as text and,
optionally, histograms.

Tags are ``"{metric}/{block}/{rest}"`` (:func:`tag`): TensorBoard groups every layer of one
metric in one section, and the layers of one block sort together
(``grad_norm/encoder.layer.3/attention.self.query``; filter one block with the regex
``/encoder.layer.3/``); a layer outside any numbered block is ``"{metric}/{layer}"`` and the
metrics of the whole model are ``"{metric}/(model)"``. Histograms (preset ``full``) are
``"{weight|grad}_hist/..."``, on their own, slower schedule: a histogram costs a pass over the
tensor and a few kilobytes of event file.

Non-finite counts (``grad_nonfinite``, ``weight_nonfinite``) are written per layer only where
they are not 0, and once per step for the whole model (``grad_nonfinite/(model)``, the sum):
a 12-block Transformer no longer writes 150 series that are always 0. The findings are written
as text (the ``findings`` tag, one Markdown entry per step a rule fired).

It writes into a ``SummaryWriter`` of its own, or into one that exists (a Lightning
``TensorBoardLogger.experiment``, the Hugging Face ``TensorBoardCallback``'s) so that the run
keeps one event file: ``TensorBoardSink(writer)``.

Needs the ``tensorboard`` package: ``pip install 'stabletrain[tensorboard]'``. It is imported
when a sink is created, never when :mod:`stabletrain` is.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stabletrain.monitoring.schedules import Schedule, check_schedule, every
from stabletrain.monitoring.sinks.base import Histogram, Row, Sink, layer_label

if TYPE_CHECKING:
    from stabletrain.findings import Finding

__all__ = ["NONFINITE", "TensorBoardSink", "scalars", "tag"]

_EVERY_100 = every(100)

NONFINITE = ("grad_nonfinite", "weight_nonfinite")
"""Counts written per layer only where they are not 0 (and summed for the model each step)."""


def tag(metric: str, layer: str | None) -> str:
    """The TensorBoard tag of ``metric`` for ``layer``: ``metric/block/rest``.

    The block is the name up to its first numeric component (a ``ModuleList`` index), so the
    layers of one block sort together and a regex on ``/block/`` selects them.

    Example:
        >>> tag("grad_norm", "encoder.layer.3.attention.self.query")
        'grad_norm/encoder.layer.3/attention.self.query'
        >>> tag("grad_norm", "fc1"), tag("loss", None), tag("grad_norm", "0")
        ('grad_norm/fc1', 'loss/(model)', 'grad_norm/0')
    """
    label = layer_label(layer)
    parts = label.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return f"{metric}/{'.'.join(parts[: i + 1])}/{'.'.join(parts[i + 1 :])}"
    return f"{metric}/{label}"


def scalars(rows: Sequence[Row]) -> list[tuple[str, float]]:
    """``(tag, value)`` to write for one step's rows: every row under :func:`tag`, except the
    non-finite counts of a layer that are 0; those counts summed per metric for the model.

    Example:
        >>> scalars([Row(1, "a.0.q", "grad_nonfinite", 0.0), Row(1, "a.0.q", "grad_norm", 2.0)])
        [('grad_norm/a.0/q', 2.0), ('grad_nonfinite/(model)', 0.0)]
    """
    out: list[tuple[str, float]] = []
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        if row.metric in NONFINITE and row.layer is not None:
            totals[row.metric] += row.value
            if row.value == 0:
                continue  # a series that is always 0 only hides the ones that are not
        out.append((tag(row.metric, row.layer), row.value))
    return out + [(tag(metric, None), total) for metric, total in totals.items()]


def _is_writer(obj: object) -> bool:
    return callable(getattr(obj, "add_scalar", None))


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
    """Write the rows as TensorBoard scalars under ``log_dir``, or into an existing writer.

    Args:
        log_dir: the run's directory (``tensorboard --logdir`` its parent), or a
            ``SummaryWriter`` that exists (see :meth:`from_writer`): the rows then go into its
            event file, which stays open for its owner to close.
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
        log_dir: str | os.PathLike[str] | Any,
        *,
        histograms: Schedule | None = _EVERY_100,
        flush_secs: int = 30,
    ) -> None:
        schedule = (
            None if histograms is None else check_schedule(histograms, where="TensorBoardSink")
        )
        self._histograms = schedule
        self._writer: Any
        if _is_writer(log_dir):  # someone else's writer: write into it, leave it open
            self.log_dir = os.fspath(getattr(log_dir, "log_dir", "") or "")
            self._writer, self._owned = log_dir, False
            return
        if not isinstance(log_dir, str | os.PathLike):
            raise TypeError(
                f"TensorBoardSink: log_dir must be a str, a path or a SummaryWriter, got "
                f"{type(log_dir).__name__}."
            )
        self.log_dir = os.fspath(log_dir)
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
        if not _is_writer(writer):
            raise TypeError(
                f"TensorBoardSink.from_writer: writer must be a SummaryWriter, got "
                f"{type(writer).__name__}."
            )
        return cls(writer, histograms=histograms)

    def __repr__(self) -> str:
        return f"TensorBoardSink({self.log_dir!r})"

    def wants_histograms(self, step: int) -> bool:
        return self._histograms is not None and bool(self._histograms(step))

    def write(self, step: int, rows: Sequence[Row]) -> None:
        for name, value in scalars(rows):
            self._writer.add_scalar(name, value, step)

    def write_findings(self, step: int, findings: Sequence[Finding]) -> None:
        """The findings of ``step`` as one Markdown text entry under the ``findings`` tag."""
        if not findings:
            return
        lines = [
            f"- **{f.severity}** `{layer_label(f.layer)}` {f.rule or f.metric} "
            f"({f.metric} = {f.value:.3g}, threshold {f.threshold:.3g}): {f.message} "
            f"*Fix:* {f.fix}"
            for f in findings
        ]
        self._writer.add_text("findings", "\n".join(lines), step)

    def write_histograms(self, step: int, histograms: Sequence[Histogram]) -> None:
        for h in histograms:
            self._writer.add_histogram_raw(
                tag(f"{h.metric}_hist", h.layer),
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
