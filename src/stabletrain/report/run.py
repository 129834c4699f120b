"""A TrainingMonitor log read back for a report: its series, and its findings.

:func:`load_run` reads a file written by :class:`~stabletrain.monitoring.JSONLSink` and checks
that it is one (clear errors for a missing file, a file that is not JSON lines, or a log of
another schema version); :meth:`RunLog.from_rows` organizes the rows by layer and metric. The
findings are the ones the monitor recorded in the log (``findings=``, from
:func:`~stabletrain.monitoring.read_findings` or ``MemorySink.findings``), with the layer
metadata it had; without them (a log of rows only, or other thresholds) the monitor's rules run
again over the rows (:mod:`stabletrain.monitoring.rules`).

Example:
    >>> from stabletrain.monitoring import Row
    >>> rows = [Row(s, "fc", "grad_norm", 0.5 / s) for s in (10, 20)]
    >>> run = RunLog.from_rows(rows)
    >>> run.steps, run.layers, run.series("fc", "grad_norm")
    ((10, 20), ('fc',), ((10, 20), (0.05, 0.025)))
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from stabletrain.findings import Finding
from stabletrain.monitoring.rules import Thresholds
from stabletrain.monitoring.sinks.base import SCHEMA_VERSION, Row
from stabletrain.monitoring.sinks.jsonl import read_findings, read_jsonl, read_meta
from stabletrain.report._replay import layer_order, merge, replay

__all__ = ["RunLog", "load_run"]

_EXPECTED = (
    f"a TrainingMonitor log written by JSONLSink: one JSON object a line, schema {SCHEMA_VERSION}, "
    f'e.g. {{"schema": {SCHEMA_VERSION}, "step": 10, "layer": "fc", "metric": "grad_norm", '
    '"value": 0.5}'
)


@dataclass(frozen=True)
class RunLog:
    """The rows of one monitored run, by layer and metric, with the findings they imply.

    Attributes:
        rows: every row, as logged.
        steps: the logged steps, ascending.
        layers: the monitored layers, in the monitor's order (``""``: the model's own
            parameters); the metrics of the whole model have layer None and are not listed.
        events: every firing of a rule on a logged step (``step == last_step``).
        findings: the firings merged per rule and layer, errors first (``Finding.step`` the
            first step, ``last_step`` the latest, ``count`` how many logged steps).
        thresholds: the thresholds the rules ran with (when ``findings_source`` is
            ``"rules"``; the report's plots use them either way).
        source: the file the rows came from, if any.
        findings_source: ``"monitor"``: the findings the monitor recorded while training;
            ``"rules"``: recomputed from the rows with ``thresholds``.
        index: ``(steps, values)`` by ``(layer, metric)``, steps ascending (see :meth:`series`).
    """

    rows: tuple[Row, ...]
    steps: tuple[int, ...]
    layers: tuple[str, ...]
    events: tuple[Finding, ...]
    findings: tuple[Finding, ...]
    thresholds: Thresholds
    source: str | None = None
    findings_source: Literal["monitor", "rules"] = "rules"
    index: Mapping[tuple[str | None, str], tuple[tuple[int, ...], tuple[float, ...]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Row],
        *,
        thresholds: Thresholds | None = None,
        source: str | os.PathLike[str] | None = None,
        findings: Sequence[Finding] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> RunLog:
        """Organize ``rows`` (``read_jsonl``, ``MemorySink.rows``) with their findings.

        Args:
            rows: the logged rows.
            thresholds: the thresholds to run the rules with; given, the rules run again
                over ``rows`` even when ``findings`` is given.
            source: the file the rows came from.
            findings: the rule firings the monitor recorded (``read_findings(path)``,
                ``MemorySink.findings``). The rules run again over ``rows`` with
                ``thresholds`` when it is None or empty and there is no ``meta`` either (a log
                of rows only); with ``meta``, an empty list means the monitor found nothing.
            meta: what the monitor recorded about itself (``read_meta(path)``,
                ``MemorySink.meta``): its thresholds are the default for ``thresholds`` (else
                :class:`Thresholds`), and a replay uses its layer depths.

        Raises:
            TypeError: ``rows`` is not a sequence of :class:`~stabletrain.monitoring.Row`, or
                ``findings`` not one of :class:`~stabletrain.monitoring.Finding`.
        """
        given = type(rows).__name__
        if not isinstance(rows, str | bytes | os.PathLike | dict):
            rows = tuple(rows)  # a generator is read once
        if isinstance(rows, str | bytes | os.PathLike | dict) or not all(
            isinstance(r, Row) for r in rows
        ):
            raise TypeError(
                "RunLog.from_rows: rows must be a sequence of stabletrain.monitoring.Row "
                f"(read_jsonl(path) or MemorySink().rows), got {given}; for a "
                "file, use load_run(path) or render_run(path, out_dir)."
            )
        if thresholds is not None and not isinstance(thresholds, Thresholds):
            raise TypeError(
                f"RunLog.from_rows: thresholds must be a Thresholds, got {type(thresholds)}."
            )
        recorded = tuple(findings or ())
        if not all(isinstance(f, Finding) for f in recorded):
            raise TypeError(
                "RunLog.from_rows: findings must be stabletrain.monitoring.Finding objects "
                "(read_findings(path) or MemorySink().findings)."
            )
        t = thresholds or _recorded_thresholds(meta) or Thresholds()
        layers = layer_order(rows)
        # a log with a meta line comes from a monitor that records its findings: none is none
        use_recorded = thresholds is None and (bool(recorded) or bool(meta))
        events = list(recorded) if use_recorded else replay(rows, t, _recorded_depths(meta))
        return cls(
            rows=tuple(rows),
            steps=tuple(sorted({r.step for r in rows})),
            layers=layers,
            events=tuple(events),
            findings=tuple(merge(events, layers)),
            thresholds=t,
            source=None if source is None else os.fspath(source),
            findings_source="monitor" if use_recorded else "rules",
            index=_index(rows),
        )

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, thresholds: Thresholds | None = None
    ) -> RunLog:
        """Read a TrainingMonitor JSONL log: its rows (:func:`load_run`, checked), the findings
        and the meta line the monitor recorded (see :meth:`from_rows` for ``thresholds``).

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file is not a valid monitor log of this schema version; the message
                names the path, the line and what was expected.
        """
        return cls.from_rows(
            load_run(path),
            thresholds=thresholds,
            source=path,
            findings=read_findings(path),
            meta=read_meta(path),
        )

    def metrics(self, layer: str | None = None) -> tuple[str, ...]:
        """The metrics logged for ``layer`` (None: the whole model), in logging order."""
        return tuple(metric for (owner, metric) in self.index if owner == layer)

    def series(self, layer: str | None, metric: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """``(steps, values)`` of ``metric`` for ``layer`` (None: the whole model)."""
        return self.index.get((layer, metric), ((), ()))

    def last(self, layer: str | None, metric: str) -> float | None:
        """The latest logged value of ``metric`` for ``layer``, None if never logged."""
        _, values = self.series(layer, metric)
        return values[-1] if values else None


def _recorded_thresholds(meta: Mapping[str, Any] | None) -> Thresholds | None:
    if not meta or not isinstance(meta.get("thresholds"), Mapping):
        return None
    known = {f.name for f in fields(Thresholds)}
    try:
        return Thresholds(**{k: v for k, v in meta["thresholds"].items() if k in known})
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"RunLog.from_rows: the log's recorded thresholds are not valid Thresholds ({err}); "
            "pass thresholds=Thresholds(...) to run the rules with your own."
        ) from err


def _recorded_depths(meta: Mapping[str, Any] | None) -> dict[str, int | None] | None:
    layers = meta.get("layers") if meta else None
    if not isinstance(layers, list):
        return None
    return {
        str(layer["name"]): layer.get("depth")
        for layer in layers
        if isinstance(layer, Mapping) and "name" in layer
    }


def _index(
    rows: Sequence[Row],
) -> dict[tuple[str | None, str], tuple[tuple[int, ...], tuple[float, ...]]]:
    pairs: dict[tuple[str | None, str], list[tuple[int, float]]] = {}
    for r in rows:
        pairs.setdefault((r.layer, r.metric), []).append((r.step, r.value))
    out = {}
    for key, found in pairs.items():
        found.sort(key=lambda p: p[0])
        out[key] = (tuple(s for s, _ in found), tuple(v for _, v in found))
    return out


def _first_line(path: Path) -> tuple[int, str] | None:
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    return number, line
    except UnicodeDecodeError as err:
        raise ValueError(
            f"load_run: {path} is not a text file ({err}); expected {_EXPECTED}."
        ) from err
    return None


def _check_header(path: Path, number: int, line: str) -> None:
    from stabletrain.diagnostics import SCHEMA_NAME as DIAGNOSIS_SCHEMA

    try:
        obj: Any = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"load_run: {path} is not a JSON lines file: line {number} is not JSON ({err}); "
            f"expected {_EXPECTED}."
        ) from err
    if not isinstance(obj, dict) or "schema" not in obj:
        raise ValueError(
            f"load_run: {path}, line {number}: a JSON value without a 'schema' field is not a "
            f"monitor row; expected {_EXPECTED}."
        )
    if obj["schema"] == DIAGNOSIS_SCHEMA:
        raise ValueError(
            f"load_run: {path} is a Diagnosis (schema {DIAGNOSIS_SCHEMA!r}), not a monitor log; "
            "render it with write_report(Diagnosis.from_dict(json.load(f)), out_dir)."
        )
    if obj["schema"] != SCHEMA_VERSION:
        raise ValueError(
            f"load_run: {path} was written with row schema {obj['schema']!r}, this version "
            f"reads schema {SCHEMA_VERSION}; render it with the stabletrain version that wrote it."
        )


def load_run(path: str | os.PathLike[str]) -> list[Row]:
    """The rows of a TrainingMonitor JSONL log, checked.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is empty, not JSON lines, or of another schema version; the
            message names the path and what was expected.

    Example:
        >>> import tempfile
        >>> from stabletrain.monitoring import JSONLSink, Row
        >>> path = Path(tempfile.mkdtemp()) / "run.jsonl"
        >>> sink = JSONLSink(path)
        >>> sink.write(1, [Row(1, None, "loss", 2.5)])
        >>> sink.close()
        >>> load_run(path)
        [Row(step=1, layer=None, metric='loss', value=2.5)]
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"load_run: path must be a str or a path, got {type(path).__name__}.")
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(
            f"load_run: no file {file}; expected {_EXPECTED} (JSONLSink(path) in "
            "TrainingMonitor(..., sinks=[...]) writes one)."
        )
    if not file.is_file():
        raise ValueError(f"load_run: {file} is not a file; expected {_EXPECTED}.")
    first = _first_line(file)
    if first is None:
        raise ValueError(f"load_run: {file} is empty; expected {_EXPECTED}.")
    _check_header(file, *first)
    return read_jsonl(file)


def as_run(rows: Sequence[Row] | RunLog) -> RunLog:
    """``rows`` as a :class:`RunLog` (unchanged if it is one)."""
    return rows if isinstance(rows, RunLog) else RunLog.from_rows(rows)
