"""The findings as a table that fits the terminal: what the monitor prints when its ``with``
block ends. On a narrow terminal or in a pipe each finding becomes a block (layer name whole,
then the finding and its fix wrapped at the full width), never a column one word wide."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import RenderableType
from rich.text import Text

from stabletrain._fit import Col, FitTable
from stabletrain.findings import Finding
from stabletrain.monitoring.sinks.base import layer_label

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}

COLUMNS = (
    Col("severity", justify="left"),
    Col("layer", justify="left", key=True),
    Col("metric", justify="left", drop=1),
    Col("value"),
    Col("threshold", drop=2, short="limit"),
    Col("steps", drop=3),
    Col("finding / fix", justify="left", wrap=True, min_width=40, short=""),
)


def findings_renderable(
    findings: Sequence[Finding], *, steps: int, logged: int, preset: str
) -> RenderableType:
    """A table of ``findings`` (or one line saying there are none)."""
    head = f"stabletrain monitor ({preset}): {steps} steps, {logged} logged"
    if not findings:
        return Text(f"{head}: no findings.")
    rows = []
    for f in findings:
        seen = f"{f.step}" if f.count == 1 else f"{f.step}-{f.last_step} (x{f.count})"
        rows.append(
            [
                Text(f.severity, style=_STYLE[f.severity]),
                Text(layer_label(f.layer)),
                Text(f.metric),
                Text(f"{f.value:.3g}"),
                Text(f"{f.threshold:.3g}"),
                Text(seen),
                Text(f.message) + Text(f"\nfix: {f.fix}", style="dim"),
            ]
        )
    return FitTable(COLUMNS, rows, title=f"{head}: {len(findings)} finding(s)")
