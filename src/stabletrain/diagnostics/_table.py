"""A Diagnosis as a terminal table: one row per layer, then the findings."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from stabletrain.diagnostics.diagnosis import Diagnosis

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _num(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.3g}"


def _ratio(value: float) -> str:
    if math.isnan(value):
        return ""
    off = abs(math.log(value)) if value > 0 else math.inf
    style = "green" if off <= math.log(1.25) else "yellow" if off <= math.log(2) else "red"
    return f"[{style}]{value:.3g}[/{style}]"


def _percent(value: float) -> str:
    return "" if math.isnan(value) else f"{100 * value:.0f}%"


def _gains(d: Diagnosis) -> str:
    return f"forward gain {_num(d.forward_gain)}, backward gain {_num(d.backward_gain)}"


def diagnosis_table(d: Diagnosis) -> RenderableType:
    """The per-layer table (measured next to predicted) and the findings of ``d``."""
    table = Table(title=f"stabletrain diagnosis: {d.model}", title_justify="left")
    for column in (
        "layer",
        "kind",
        "act",
        "out std",
        "predicted",
        "ratio",
        "grad std",
        "predicted",
        "ratio",
        "zero%",
        "sat%",
    ):
        left = column in ("layer", "kind", "act")
        table.add_column(column, justify="left" if left else "right")
    for x in d.layers:
        table.add_row(
            escape(x.name or "(root)"),
            escape(x.kind),
            escape(x.activation or ""),
            _num(x.out_std),
            _num(x.predicted_out_std),
            _ratio(x.forward_ratio),
            _num(x.grad_out_std),
            _num(x.predicted_grad_out_std),
            _ratio(x.backward_ratio),
            _percent(x.zero_fraction),
            _percent(x.saturated_fraction),
        )
    caption = [f"loss: {d.loss} = {_num(d.loss_value)}; {_gains(d)}"]
    if d.before is not None:
        caption.append(f"before the fix: {_gains(d.before)}")
    table.caption = escape("\n".join(caption + d.notes))
    table.caption_justify = "left"
    if not d.findings:
        return table
    findings = Table(title="findings", title_justify="left")
    for column in ("severity", "rule", "layer", "what", "fix"):
        findings.add_column(column)
    for f in d.findings:
        style = _STYLE.get(f.severity, "")
        findings.add_row(
            f"[{style}]{f.severity}[/{style}]",
            escape(f.rule),
            escape(f.layer or ""),
            escape(f.message),
            escape(f.fix),
        )
    return Group(table, findings)
