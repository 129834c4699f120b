"""A Diagnosis as a terminal table: one row per layer, then the findings.

Both tables fit the terminal (:class:`~stabletrain._fit.FitTable`): at 80 columns the
predicted values, then kind and activation, give way before a layer name is ever cut, and the
findings become blocks whose text wraps at the full width.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text

from stabletrain._fit import Cell, Col, FitTable

if TYPE_CHECKING:
    from stabletrain.diagnostics.diagnosis import Diagnosis

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}

LAYER_COLUMNS = (
    Col("layer", justify="left", key=True),
    Col("kind", justify="left", drop=3),
    Col("act", justify="left", drop=2),
    Col("out std"),
    Col("predicted", drop=4, short="pred"),
    Col("ratio"),
    Col("grad std"),
    Col("predicted", drop=4, short="pred"),
    Col("ratio"),
    Col("zero%", drop=5),
    Col("sat%", drop=5),
)
"""The per-layer columns; higher ``drop`` levels give way first on a narrow terminal."""

FINDING_COLUMNS = (
    Col("severity", justify="left"),
    Col("rule", justify="left", drop=1),
    Col("layer", justify="left", key=True),
    Col("what", justify="left", wrap=True, short=""),
    Col("fix", justify="left", wrap=True),
)


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
    rows: list[list[Cell]] = [
        [
            Text(x.name or "(root)"),
            Text(x.kind),
            Text(x.activation or ""),
            _num(x.out_std),
            _num(x.predicted_out_std),
            _ratio(x.forward_ratio),
            _num(x.grad_out_std),
            _num(x.predicted_grad_out_std),
            _ratio(x.backward_ratio),
            _percent(x.zero_fraction),
            _percent(x.saturated_fraction),
        ]
        for x in d.layers
    ]
    caption = [f"loss: {d.loss} = {_num(d.loss_value)}; {_gains(d)}"]
    if d.before is not None:
        caption.append(f"before the fix: {_gains(d.before)}")
    table = FitTable(
        LAYER_COLUMNS,
        rows,
        title=f"stabletrain diagnosis: {d.model}",
        caption=Text("\n".join(caption + d.notes)),
    )
    if not d.findings:
        return table
    findings = FitTable(
        FINDING_COLUMNS,
        [
            [
                Text(f.severity, style=_STYLE.get(f.severity, "")),
                Text(f.rule),
                Text(f.layer or ""),
                Text(f.message),
                Text(f.fix),
            ]
            for f in d.findings
        ],
        title="findings",
    )
    return Group(table, findings)
