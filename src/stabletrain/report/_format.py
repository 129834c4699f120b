"""How reports write numbers and tables: shared by the Markdown and the HTML pages."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from stabletrain.findings import Finding
from stabletrain.monitoring.sinks.base import layer_label

NOT_MEASURED = "n/a"


def num(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits; ``"n/a"`` for None or NaN.

    >>> num(0.012345), num(float("nan")), num(None), num(float("inf"))
    ('0.0123', 'n/a', 'n/a', 'inf')
    """
    if value is None or value != value:
        return NOT_MEASURED
    return f"{value:.{digits}g}"


def ratio(value: float | None) -> str:
    """A measured/predicted ratio as ``"×1.23"``; ``"n/a"`` without one.

    >>> ratio(1.234), ratio(float("nan"))
    ('×1.23', 'n/a')
    """
    if value is None or not math.isfinite(value):
        return NOT_MEASURED
    return f"×{value:.3g}"


def pct(value: float | None) -> str:
    """A fraction as a percentage, ``"n/a"`` when not measured.

    >>> pct(0.25), pct(float("nan"))
    ('25.0%', 'n/a')
    """
    if value is None or value != value:
        return NOT_MEASURED
    return f"{value:.1%}"


def change(before: str, after: str) -> str:
    """``"before → after"``, or just ``after`` when the two read the same.

    >>> change("1.2", "1"), change("1", "1")
    ('1.2 → 1', '1')
    """
    return after if before == after else f"{before} → {after}"


@dataclass(frozen=True)
class Table:
    """A table as text cells; ``numeric`` marks the columns that are right-aligned."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]
    note: str = ""


@dataclass(frozen=True)
class FindingView:
    """A finding as the pages show it."""

    severity: str
    layer: str
    rule: str
    metric: str
    value: str
    threshold: str
    steps: str
    message: str
    fix: str


@dataclass(frozen=True)
class Page:
    """Everything a report shows except its figures, as text.

    ``summary`` is a list of (label, value) pairs; ``compare`` the before/after pairs of a fix
    (label, before, after), empty when none was applied.
    """

    kind: str  # "diagnosis" or "run"
    title: str
    subtitle: str
    summary: tuple[tuple[str, str], ...]
    compare: tuple[tuple[str, str, str], ...]
    findings: tuple[FindingView, ...]
    tables: tuple[Table, ...]
    notes: tuple[str, ...]


def finding_views(findings: Iterable[Finding], *, steps: bool) -> tuple[FindingView, ...]:
    """The findings as text; ``steps``: say on which logged steps each fired (runs)."""
    views = []
    for f in findings:
        seen = ""
        if steps:
            seen = f"{f.step}" if f.count == 1 else f"{f.step}-{f.last_step} (×{f.count})"
        views.append(
            FindingView(
                f.severity,
                layer_label(f.layer),
                f.rule,
                f.metric,
                num(f.value),
                num(f.threshold),
                seen,
                f.message,
                f.fix,
            )
        )
    return tuple(views)
