"""A sink that writes one JSON object per line: one row per step, layer and metric.

Schema, version 1 (:data:`~stabletrain.monitoring.sinks.base.SCHEMA_VERSION`)::

    {"schema": 1, "step": 120, "layer": "encoder.0.fc1", "metric": "grad_norm", "value": 0.0123}

- ``schema``: int, the version of this layout; a reader must check it.
- ``step``: int >= 1, the count of ``TrainingMonitor.step`` calls when the row was measured.
- ``layer``: the qualified module name (``model.named_modules()``; ``""`` for parameters held by
  the model itself), or ``null`` for a metric of the whole model (``loss``, ``grad_norm``,
  ``skipped_steps``).
- ``metric``: one of :data:`~stabletrain.monitoring.sinks.base.METRICS` (table in
  :mod:`stabletrain.monitoring.sinks.base`).
- ``value``: a number, or the string ``"nan"``, ``"inf"`` or ``"-inf"`` (JSON has no NaN).

Rows of one step are written together and flushed, so a crashed run keeps every logged step.
:func:`read_jsonl` reads a file back into :class:`~stabletrain.monitoring.sinks.base.Row` objects.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from stabletrain.monitoring.sinks.base import Row, Sink

__all__ = ["JSONLSink", "read_jsonl"]


class JSONLSink(Sink):
    """Write every row as a line of JSON to ``path``.

    Args:
        path: the file; its parent directories are created. It is truncated on the first write
            unless ``append``; after :meth:`close`, a later write appends.
        append: add to an existing file instead of replacing it.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "rows.jsonl"
        >>> sink = JSONLSink(path)
        >>> sink.write(1, [Row(1, "fc", "grad_norm", 0.5)])
        >>> sink.close()
        >>> read_jsonl(path)
        [Row(step=1, layer='fc', metric='grad_norm', value=0.5)]
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"JSONLSink: path must be a str or a path, got {type(path).__name__}.")
        self.path = Path(path)
        self._mode = "a" if append else "w"
        self._file: IO[str] | None = None

    def write(self, step: int, rows: Sequence[Row]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open(self._mode, encoding="utf-8")
            self._mode = "a"
        self._file.write("".join(json.dumps(row.to_json()) + "\n" for row in rows))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_jsonl(path: str | os.PathLike[str]) -> list[Row]:
    """The rows of a file written by :class:`JSONLSink`.

    Raises:
        ValueError: a line is not JSON or not a row of the current schema (its line number is
            in the message).
    """
    rows = []
    with Path(path).open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(Row.from_json(json.loads(line)))
            except (ValueError, TypeError) as err:
                raise ValueError(f"read_jsonl: {path}, line {number}: {err}") from err
    return rows
