"""The findings as a rich table: what the monitor prints when its ``with`` block ends."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from stabletrain.monitoring.rules import Finding
from stabletrain.monitoring.sinks.base import layer_label

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def findings_renderable(
    findings: Sequence[Finding], *, steps: int, logged: int, preset: str
) -> RenderableType:
    """A table of ``findings`` (or one line saying there are none)."""
    head = f"stabletrain monitor ({preset}): {steps} steps, {logged} logged"
    if not findings:
        return Text(f"{head}: no findings.")
    table = Table(title=f"{head}: {len(findings)} finding(s)", show_lines=True, expand=False)
    for column in ("severity", "layer", "metric", "value", "threshold", "steps", "finding / fix"):
        table.add_column(column, overflow="fold")
    for f in findings:
        seen = f"{f.step}" if f.count == 1 else f"{f.step}-{f.last_step} (x{f.count})"
        table.add_row(
            Text(f.severity, style=_STYLE[f.severity]),
            escape(layer_label(f.layer)),
            f.metric,
            f"{f.value:.3g}",
            f"{f.threshold:.3g}",
            seen,
            f"{escape(f.message)}\n[dim]fix: {escape(f.fix)}[/dim]",
        )
    return Group(table)
