"""Write a report to a folder, as ``report.html``, ``report.md`` and ``report.json``.

For a :class:`~stabletrain.diagnostics.Diagnosis` the JSON is :meth:`Diagnosis.to_json` (read it
back with :meth:`Diagnosis.from_dict`). For a monitor log it follows the schema
``"stabletrain.run_report"``, version :data:`RUN_REPORT_VERSION`::

    {
      "schema": "stabletrain.run_report", "version": 1,
      "source": str | null,                  # the log file
      "summary": {
        "rows": int, "logged_steps": int, "first_step": int | null, "last_step": int | null,
        "layers": [str, ...],
        "loss": {"first": float, "last": float, "min": float} | null,
        "grad_norm": float | null,           # the total, at the last logged step
        "skipped_steps": float | null,
        "findings": {"error": int, "warning": int, "info": int},
        "last_step_layers": {layer: {metric: float}}   # "" is the model's own parameters
      },
      "findings": [Finding as a dict, merged over the run],
      "findings_source": "monitor" | "rules",  # recorded while training, or recomputed
      "thresholds": Thresholds as a dict
    }
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from stabletrain._checks import check_choice
from stabletrain.findings import SEVERITIES
from stabletrain.monitoring.rules import Thresholds
from stabletrain.monitoring.sinks.base import Row
from stabletrain.report.html import diagnosis_html, run_html
from stabletrain.report.markdown import diagnosis_markdown, run_markdown
from stabletrain.report.run import RunLog, as_run

if TYPE_CHECKING:
    from stabletrain.diagnostics import Diagnosis

__all__ = [
    "FORMATS",
    "RUN_REPORT_SCHEMA",
    "RUN_REPORT_VERSION",
    "Format",
    "render_run",
    "run_dict",
    "write_report",
]

Format = Literal["html", "md", "json"]
FORMATS: tuple[Format, ...] = ("html", "md", "json")
RUN_REPORT_SCHEMA = "stabletrain.run_report"
RUN_REPORT_VERSION = 1


def run_dict(rows: Sequence[Row] | RunLog) -> dict[str, Any]:
    """A monitor log's findings and summary as plain data (schema in this module's docstring).

    Example:
        >>> from stabletrain.monitoring import Row
        >>> data = run_dict([Row(1, "fc", "grad_norm", 2e3), Row(1, None, "loss", 1.5)])
        >>> data["summary"]["findings"], data["findings"][0]["rule"]
        ({'error': 1, 'warning': 0, 'info': 0}, 'exploding')
    """
    run = as_run(rows)
    _, losses = run.series(None, "loss")
    finite = [v for v in losses if math.isfinite(v)]
    loss = None
    if losses:
        loss = {"first": losses[0], "last": losses[-1], "min": min(finite) if finite else None}
    counts = Counter(f.severity for f in run.findings)
    last = run.steps[-1] if run.steps else None
    layers: dict[str, dict[str, float]] = {}
    for row in run.rows:
        if row.step == last and row.layer is not None:
            layers.setdefault(row.layer, {})[row.metric] = row.value
    return {
        "schema": RUN_REPORT_SCHEMA,
        "version": RUN_REPORT_VERSION,
        "source": run.source,
        "summary": {
            "rows": len(run.rows),
            "logged_steps": len(run.steps),
            "first_step": run.steps[0] if run.steps else None,
            "last_step": last,
            "layers": list(run.layers),
            "loss": loss,
            "grad_norm": run.last(None, "grad_norm"),
            "skipped_steps": run.last(None, "skipped_steps"),
            "findings": {s: counts.get(s, 0) for s in reversed(SEVERITIES)},
            "last_step_layers": layers,
        },
        "findings": [asdict(f) for f in run.findings],
        "findings_source": run.findings_source,
        "thresholds": asdict(run.thresholds),
    }


def _check_formats(formats: Sequence[str]) -> tuple[Format, ...]:
    if isinstance(formats, str):
        formats = (formats,)
    if not formats:
        raise ValueError(
            f"write_report: formats is empty; pass some of {', '.join(map(repr, FORMATS))}."
        )
    valid: tuple[str, ...] = FORMATS
    return tuple(
        cast(Format, check_choice("format", f, valid, where="write_report")) for f in formats
    )


def write_report(
    d_or_rows: Diagnosis | Sequence[Row] | RunLog,
    out_dir: str | os.PathLike[str],
    formats: Sequence[str] = FORMATS,
) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and/or ``report.json`` into ``out_dir``.

    Args:
        d_or_rows: a :class:`~stabletrain.diagnostics.Diagnosis`, or a monitor log: its rows
            (``read_jsonl(path)``, ``MemorySink().rows``) or a :class:`RunLog`.
        out_dir: the folder; created if missing; existing reports in it are replaced.
        formats: any of ``"html"``, ``"md"``, ``"json"``.

    Returns:
        The written files, by format.

    Raises:
        ValueError: an unknown format. TypeError: not a Diagnosis nor rows.

    Example:
        >>> import tempfile
        >>> from stabletrain.diagnostics import Diagnosis
        >>> paths = write_report(Diagnosis(model="MLP"), tempfile.mkdtemp(), ("md", "json"))
        >>> sorted(paths), paths["json"].name
        (['json', 'md'], 'report.json')
    """
    chosen = _check_formats(formats)
    if not isinstance(out_dir, str | os.PathLike):
        raise TypeError(f"write_report: out_dir must be a str or a path, got {type(out_dir)}.")
    from stabletrain.diagnostics import Diagnosis

    texts: dict[Format, Any]
    if isinstance(d_or_rows, Diagnosis):
        d = d_or_rows
        texts = {
            "html": lambda: diagnosis_html(d),
            "md": lambda: diagnosis_markdown(d),
            "json": lambda: d.to_json(indent=2),
        }
    else:
        run = as_run(d_or_rows)
        texts = {
            "html": lambda: run_html(run),
            "md": lambda: run_markdown(run),
            "json": lambda: json.dumps(run_dict(run), indent=2),
        }
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for fmt in dict.fromkeys(chosen):
        path = folder / f"report.{fmt}"
        path.write_text(texts[fmt]() + ("" if fmt == "md" else "\n"), encoding="utf-8")
        written[fmt] = path
    return written


def render_run(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    formats: Sequence[str] = FORMATS,
    *,
    thresholds: Thresholds | None = None,
) -> dict[str, Path]:
    """Read a TrainingMonitor JSONL log and write its report into ``out_dir``.

    Args:
        path: the log, written by :class:`~stabletrain.monitoring.JSONLSink`.
        out_dir: where ``report.html`` / ``report.md`` / ``report.json`` go.
        formats: any of ``"html"``, ``"md"``, ``"json"``.
        thresholds: None: the findings and thresholds the monitor recorded in the log (the
            rules run again only for a log without findings, with the recorded thresholds or
            else the defaults); given: the rules run again over the rows with these.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a monitor log of this schema version (the message names
            the path and what was expected), or an unknown format.

    Example:
        >>> import tempfile
        >>> from stabletrain.monitoring import JSONLSink, Row
        >>> folder = Path(tempfile.mkdtemp())
        >>> sink = JSONLSink(folder / "run.jsonl")
        >>> sink.write(1, [Row(1, "fc", "grad_norm", 0.5), Row(1, None, "loss", 2.0)])
        >>> sink.close()
        >>> render_run(folder / "run.jsonl", folder / "report", ["md"])["md"].name
        'report.md'
    """
    chosen = _check_formats(formats)
    return write_report(RunLog.from_file(path, thresholds=thresholds), out_dir, chosen)
