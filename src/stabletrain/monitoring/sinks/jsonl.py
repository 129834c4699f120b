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

The first line of a monitored run records what the monitor watched with (read by
:func:`read_meta`)::

    {"schema": 1, "meta": {"preset": "standard", "thresholds": {"vanishing_ratio": 0.001, ...},
     "layers": [{"name": "encoder.0.fc1", "depth": 0}, ...]}}

On a logged step where a rule fired, one line per firing follows that step's rows::

    {"schema": 1, "step": 120, "finding": {"severity": "warning", "layer": "encoder.0.fc1",
     "metric": "grad_norm", "value": 1e-09, "threshold": 1e-07, "message": "...", "fix": "...",
     "rule": "vanishing", "step": 120, "last_step": 120, "count": 1}}

so a report shows what the monitor found, with the layer metadata it had (depth, activation
kinds), instead of running the rules again on the rows.

Rows of one step are written together and flushed, so a crashed run keeps every logged step.
A write that cannot reach the file raises (``OSError``: disk full, no permission; also
``FileNotFoundError`` once the file was deleted or its directory removed, where the operating
system would otherwise accept writes to an unlinked file and lose them), and
:class:`~stabletrain.monitoring.TrainingMonitor` then warns and stops writing to this sink.
:func:`read_jsonl` reads a file back into :class:`~stabletrain.monitoring.sinks.base.Row` objects
(meta and finding lines are skipped), :func:`read_findings` reads its findings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from stabletrain.findings import Finding
from stabletrain.monitoring.sinks.base import SCHEMA_VERSION, Row, Sink

__all__ = ["JSONLSink", "read_findings", "read_jsonl", "read_meta"]


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

    def __repr__(self) -> str:
        return f"JSONLSink({os.fspath(self.path)!r})"

    def write(self, step: int, rows: Sequence[Row]) -> None:
        self._lines(_encoder.encode(row) for row in rows)

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        self._lines([json.dumps({"schema": SCHEMA_VERSION, "meta": dict(meta)})])

    def write_findings(self, step: int, findings: Sequence[Finding]) -> None:
        self._lines(
            json.dumps({"schema": SCHEMA_VERSION, "step": step, "finding": f.to_json()})
            for f in findings
        )

    def _lines(self, lines: Iterable[str]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open(self._mode, encoding="utf-8")
            self._mode = "a"
        self._file.write("".join(line + "\n" for line in lines))
        self._file.flush()
        if os.fstat(self._file.fileno()).st_nlink == 0:
            raise FileNotFoundError(
                f"JSONLSink: {self.path} was deleted (or its directory removed) during the run; "
                "the rows written since are lost."
            )

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


class _RowEncoder:
    """``json.dumps(row.to_json())``, byte for byte, at a fraction of its cost.

    A logged step writes one line per (layer, metric): tens to thousands of lines, each
    through the general JSON encoder. Here the constant part of a line, ``{"schema": 1,
    "step": `` ... ``"layer": "fc", "metric": "grad_norm", "value": ``, is built once per
    (layer, metric) and cached, and the value is written with ``float.__repr__``, which is
    what ``json.dumps`` uses for a float. Anything else (an int subclass, a non-finite value)
    goes through the exact path.
    """

    def __init__(self) -> None:
        self._middle: dict[tuple[str | None, str], str] = {}

    def encode(self, row: Row) -> str:
        value = row.value
        if type(value) is not float or value != value or value in (_INF, -_INF):
            return json.dumps(row.to_json())
        key = (row.layer, row.metric)
        middle = self._middle.get(key)
        if middle is None:
            if len(self._middle) > _MAX_CACHED:
                self._middle.clear()
            layer, metric = json.dumps(row.layer), json.dumps(row.metric)
            middle = self._middle[key] = f', "layer": {layer}, "metric": {metric}, "value": '
        step = row.step if type(row.step) is int else json.dumps(row.step)
        return f'{{"schema": {SCHEMA_VERSION}, "step": {step}{middle}{float.__repr__(value)}}}'


_INF = float("inf")
_MAX_CACHED = 100_000  # (layer, metric) pairs; a model has a few thousand at most
_encoder = _RowEncoder()


def _objects(path: str | os.PathLike[str], where: str) -> Iterator[tuple[int, dict[str, Any]]]:
    with Path(path).open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as err:
                raise ValueError(f"{where}: {path}, line {number}: {err}") from err
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: {path}, line {number}: {obj!r} is not an object")
            yield number, obj


def read_jsonl(path: str | os.PathLike[str]) -> list[Row]:
    """The rows of a file written by :class:`JSONLSink` (its finding lines are skipped).

    Raises:
        ValueError: a line is not JSON or not a row of the current schema (its line number is
            in the message).
    """
    rows = []
    for number, obj in _objects(path, "read_jsonl"):
        if "finding" in obj or "meta" in obj:
            continue
        try:
            rows.append(Row.from_json(obj))
        except (ValueError, TypeError) as err:
            raise ValueError(f"read_jsonl: {path}, line {number}: {err}") from err
    return rows


def read_findings(path: str | os.PathLike[str]) -> list[Finding]:
    """Every rule firing recorded in a file written by :class:`JSONLSink`, in order (one per
    rule, layer and logged step; :meth:`Finding.merged` combines repeats). Empty for a log
    written before findings were recorded.

    Raises:
        ValueError: a line is not JSON, or a finding line is not of the current schema.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "run.jsonl"
        >>> sink = JSONLSink(path)
        >>> nan_loss = Finding(severity="error", layer=None, metric="loss", value=float("nan"),
        ...                    threshold=0.0, message="NaN loss", fix="StepGuard",
        ...                    rule="nonfinite", step=3, last_step=3)
        >>> sink.write_findings(3, [nan_loss])
        >>> sink.close()
        >>> [(f.rule, f.step, f.value) for f in read_findings(path)]
        [('nonfinite', 3, nan)]
    """
    found = []
    for number, obj in _objects(path, "read_findings"):
        if "finding" not in obj:
            continue
        try:
            if obj.get("schema") != SCHEMA_VERSION:
                raise ValueError(f"schema {obj.get('schema')!r} is not {SCHEMA_VERSION}")
            found.append(Finding.from_json(obj["finding"]))
        except (ValueError, TypeError) as err:
            raise ValueError(f"read_findings: {path}, line {number}: {err}") from err
    return found


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What the monitor recorded about itself in a :class:`JSONLSink` file (the first meta
    line: preset, thresholds, layers with their depth), or None for a file without one.

    Raises:
        ValueError: the meta line is not what :meth:`JSONLSink.write_meta` writes (thresholds
            not an object, a layer without a name, a depth that is not an int >= 0 or null);
            the message names the line and the value.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "run.jsonl"
        >>> sink = JSONLSink(path)
        >>> sink.write_meta({"preset": "minimal", "thresholds": {}, "layers": []})
        >>> sink.close()
        >>> read_meta(path)["preset"]
        'minimal'
    """
    for number, obj in _objects(path, "read_meta"):
        if "meta" in obj:
            try:
                return _checked_meta(obj["meta"])
            except ValueError as err:
                raise ValueError(f"read_meta: {path}, line {number}: {err}") from err
    return None


def _checked_meta(meta: Any) -> dict[str, Any]:
    """``meta`` if it is what :meth:`JSONLSink.write_meta` writes, else a ``ValueError``."""
    if not isinstance(meta, dict):
        raise ValueError(
            f"the meta line holds {meta!r}, not an object of preset, thresholds, layers."
        )
    if not isinstance(meta.get("thresholds", {}), dict):
        raise ValueError(
            f"thresholds must be an object of name: value, got {meta['thresholds']!r}."
        )
    layers = meta.get("layers", [])
    if not isinstance(layers, list):
        raise ValueError(f"layers must be a list of {{name, depth}}, got {layers!r}.")
    for layer in layers:
        name = layer.get("name") if isinstance(layer, dict) else None
        if not isinstance(name, str):
            raise ValueError(
                f"layer {layer!r} is not an object with a name (a string) and a depth."
            )
        depth = layer.get("depth")
        if depth is not None and (
            isinstance(depth, bool) or not isinstance(depth, int) or depth < 0
        ):
            raise ValueError(
                f"layer {name!r} has depth {depth!r}; a depth is an int >= 0 (the position among "
                "the weight layers) or null."
            )
    return meta
