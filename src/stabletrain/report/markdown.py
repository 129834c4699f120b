"""Reports as Markdown, for terminals and CI logs: tables, findings with fixes, notes.

Every text taken from the model or the log is escaped (``|`` as ``\\|``, and the characters
Markdown would read as code, emphasis, links or HTML), so a layer name cannot break a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from stabletrain._render import escape_markdown
from stabletrain.monitoring.sinks.base import Row
from stabletrain.report._diagnosis_page import diagnosis_page
from stabletrain.report._format import Page, Table
from stabletrain.report._run_page import run_page
from stabletrain.report.run import RunLog, as_run

if TYPE_CHECKING:
    from stabletrain.diagnostics import Diagnosis

__all__ = ["diagnosis_markdown", "escape_markdown", "run_markdown"]


def _table(table: Table) -> list[str]:
    if not table.rows:
        return [f"## {escape_markdown(table.title)}", "", "(none)", ""]
    align = ["---:" if n else "---" for n in table.numeric]
    lines = [
        f"## {escape_markdown(table.title)}",
        "",
        "| " + " | ".join(escape_markdown(c) for c in table.columns) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += ["| " + " | ".join(escape_markdown(c) for c in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", f"_{escape_markdown(table.note)}_"]
    return [*lines, ""]


def page_markdown(page: Page) -> str:
    """A page (see ``_format.Page``) as Markdown."""
    e = escape_markdown
    lines = [f"# {e(page.title)}", "", e(page.subtitle), ""]
    lines += [f"- **{e(label)}**: {e(value)}" for label, value in page.summary]
    lines.append("")
    if page.compare:
        lines += [
            "## Before and after the fix",
            "",
            "| | before | after |",
            "| --- | ---: | ---: |",
        ]
        lines += [f"| {e(label)} | {e(old)} | {e(new)} |" for label, old, new in page.compare]
        lines.append("")
    lines += ["## Findings", ""]
    if not page.findings:
        lines += ["No findings.", ""]
    for i, f in enumerate(page.findings, start=1):
        seen = f", steps {e(f.steps)}" if f.steps else ""
        lines.append(
            f"{i}. **{e(f.severity)}** in {e(f.layer)} ({e(f.rule or f.metric)}: "
            f"{e(f.metric)} = {e(f.value)}, threshold {e(f.threshold)}{seen}): {e(f.message)}"
        )
        lines += [f"   - fix: {e(f.fix)}", ""]
    for table in page.tables:
        lines += _table(table)
    if page.notes:
        lines += ["## Notes", ""]
        lines += [f"- {e(note)}" for note in page.notes]
        lines.append("")
    return "\n".join(lines)


def diagnosis_markdown(d: Diagnosis) -> str:
    r"""A :class:`~stabletrain.diagnostics.Diagnosis` as Markdown: summary and gains (before →
    after a fix, when the diagnosis carries ``before``), findings with their fixes, the
    per-layer table against theory, and the init report.

    Example:
        >>> from stabletrain.diagnostics import Diagnosis, LayerStats
        >>> layer = LayerStats(name="a|b", kind="Linear", depth=0, out_std=1.0,
        ...     predicted_out_std=1.0)
        >>> text = diagnosis_markdown(Diagnosis(model="MLP", layers=(layer,), forward_gain=1.0))
        >>> r"| a\|b | Linear |" in text
        True
    """
    return page_markdown(diagnosis_page(d))


def run_markdown(rows: Sequence[Row] | RunLog) -> str:
    """A TrainingMonitor log (its rows, or a :class:`RunLog`) as Markdown: summary, the
    findings the monitor's rules give over the run with their fixes, the last logged step.

    Example:
        >>> from stabletrain.monitoring import Row
        >>> text = run_markdown([Row(1, "fc", "grad_norm", 2e3), Row(1, None, "loss", 1.0)])
        >>> "**error** in fc (exploding" in text
        True
    """
    return page_markdown(run_page(as_run(rows)))
