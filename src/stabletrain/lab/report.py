"""The lab's reports: a verdict table and one section per claim, as Markdown, HTML and JSON.

- :func:`markdown_report`: the verdict table (claim ID, claim, verdict, key number, seconds),
  then per group a section per claim: the claim with the documents that make it, what a
  measurement must show, the verdict with the comparison that decided it (and the 95% interval
  of the measured number over the seeds), the measured numbers by name and unit with their
  value on each seed, the explanation and the tables. For terminals and CI logs; every text is
  escaped.
- :func:`html_report`: the same as one self-contained page (Jinja2 template
  ``report/templates/lab.html.j2``, autoescaped) with the figures drawn by
  :mod:`stabletrain.report.figures` embedded as PNG ``data:`` URIs. Needs
  ``pip install 'stabletrain[report]'``.
- :func:`results_json`: the results with the run's settings, for machines.
- :func:`verdict_table`: the verdict table for the terminal (rich).

Example:
    >>> from stabletrain.lab import Result, verdicts
    >>> r = Result(verdicts.at_most(0.01, 0.05), "error = 0.01", "Holds.", claim_id="I5")
    >>> print(markdown_report([r], quick=True, seed=0).splitlines()[0])
    # stabletrain lab: the tutorials' claims, measured
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.text import Text

from stabletrain import __version__
from stabletrain._fit import Col, FitTable
from stabletrain._render import escape_markdown
from stabletrain.lab.claims import GROUPS, SEEDS, get_claim
from stabletrain.lab.estimate import seeds_of
from stabletrain.lab.experiment import Figure, Result, Table

__all__ = [
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "STATUSES",
    "html_report",
    "markdown_report",
    "measured_table",
    "results_json",
    "verdict_table",
    "write_reports",
]

SCHEMA_NAME = "stabletrain.lab"
# 2: a verdict's interval (low, high, seeds), a result's named numbers (measured) and the
# "inconclusive" count; files of version 1 read back with no interval and no named numbers.
SCHEMA_VERSION = 2
STATUSES = ("holds", "holds with caveat", "inconclusive", "does not hold", "error")
TEMPLATE = "lab.html.j2"
_STATUS_STYLE = {
    "holds": "green",
    "holds with caveat": "yellow",
    "inconclusive": "cyan",
    "does not hold": "red",
    "error": "bold magenta",
}
_OTHER = "Other experiments"


@dataclass(frozen=True)
class _About:
    """What a report says about a claim ID besides its result."""

    title: str
    text: str
    seeds: str
    measurement: str
    source: str
    group: str


def _about(claim_id: str) -> _About:
    try:
        c = get_claim(claim_id)
    except ValueError:  # a result whose ID is not in the claim list (read from elsewhere)
        return _About(claim_id, "", "", "", "", _OTHER)
    seeds = ", ".join(f"{s} ({SEEDS[s]})" for s in c.seeds)
    return _About(c.title, c.text, seeds, c.measurement, c.source, GROUPS[c.group])


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _verdict_line(r: Result) -> str:
    if r.error:
        return f"error: {r.error}"
    v = r.verdict
    return (
        f"{v.outcome}: measured {v.measured:.4g}{v.interval()} against {v.threshold:.4g} ({v.rule})"
    )


def measured_table(r: Result) -> tuple[Table, ...]:
    """The experiment's named numbers as a table: mean ± 95% interval and the value on each
    seed (none for an experiment that names no numbers)."""
    if not r.measured:
        return ()
    rows = tuple(
        (m.name, m.unit or "—", m.estimate.describe(4), seeds_of(m.values), m.about or "—")
        for m in r.measured
    )
    seeds = len(r.measured[0].values)
    title = f"Measured on {seeds} seed{'s' if seeds > 1 else ''}"
    return (Table(title, ("quantity", "unit", "mean", "per seed", "what"), rows),)


def _counts(results: Sequence[Result]) -> dict[str, int]:
    seen = Counter(r.status for r in results)
    return {s: seen[s] for s in STATUSES}


def _summary(results: Sequence[Result], quick: bool, seed: int, seconds: float | None) -> str:
    took = sum(r.seconds for r in results) if seconds is None else seconds
    return (
        f"{'quick' if quick else 'full'} mode · seed {seed} · stabletrain {__version__} · "
        f"torch {torch.__version__} · {len(results)} experiments in {took:.1f} s"
    )


def _counts_line(results: Sequence[Result]) -> str:
    return " · ".join(f"{n} {s}" for s, n in _counts(results).items())


# --------------------------------------------------------------------------- Markdown


def _md(text: object) -> str:
    return escape_markdown(str(text))


def _md_table(t: Table) -> list[str]:
    numeric = [all(_is_number(row[i]) for row in t.rows) for i in range(len(t.columns))]
    lines = [
        f"**{_md(t.title)}**",
        "",
        "| " + " | ".join(_md(c) for c in t.columns) + " |",
        "| " + " | ".join("---:" if n else "---" for n in numeric) + " |",
    ]
    lines += ["| " + " | ".join(_md(_cell(v)) for v in row) + " |" for row in t.rows]
    return [*lines, ""]


def _md_section(r: Result, about: _About) -> list[str]:
    lines = [f"### {r.claim_id}: {_md(about.title)}", ""]
    if about.text:
        lines += [f"**Claim.** {_md(about.text)}", ""]
    if about.seeds:
        lines += [f"**Documents.** {_md(about.seeds)}", ""]
    if about.source:
        lines += [f"**Source.** {_md(about.source)}", ""]
    if about.measurement:
        lines += [f"**What a measurement must show.** {_md(about.measurement)}", ""]
    lines += [
        f"**Verdict.** {_md(_verdict_line(r))}",
        "",
        f"**Key number.** {_md(r.key_number)} ({r.seconds:.1f} s)",
        "",
        _md(r.explanation),
        "",
    ]
    for t in (*measured_table(r), *r.tables):
        lines += _md_table(t)
    if r.figures:
        titles = "; ".join(_md(f.title) for f in r.figures)
        lines += [f"_Figures (in report.html): {titles}._", ""]
    return lines


def markdown_report(
    results: Sequence[Result],
    *,
    quick: bool,
    seed: int,
    seconds: float | None = None,
) -> str:
    """The results as Markdown: summary, verdict table, then one section per claim by group.

    ``seconds`` is the run's wall time (default: the sum of the experiments' times). What a
    section says about a claim comes from :mod:`stabletrain.lab.claims`; an ID outside it (a
    result read from elsewhere) goes under "Other experiments".
    """
    abouts = {r.claim_id: _about(r.claim_id) for r in results}
    lines = [
        "# stabletrain lab: the tutorials' claims, measured",
        "",
        _md(_summary(results, quick, seed, seconds)),
        "",
        f"**Verdicts:** {_counts_line(results)}",
        "",
        "| ID | claim | verdict | key number | s |",
        "| --- | --- | --- | --- | ---: |",
    ]
    for r in results:
        row = (r.claim_id, abouts[r.claim_id].title, r.status, r.key_number)
        lines.append("| " + " | ".join(_md(v) for v in row) + f" | {r.seconds:.1f} |")
    lines.append("")
    group = None
    for r in results:
        about = abouts[r.claim_id]
        if about.group != group:
            group = about.group
            lines += [f"## {_md(group)}", ""]
        lines += _md_section(r, about)
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML


@dataclass(frozen=True)
class _TableView:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]


@dataclass(frozen=True)
class _FigureView:
    title: str
    data_uri: str  # empty when the figure could not be drawn
    width: int
    height: int
    error: str = ""


@dataclass(frozen=True)
class _SectionView:
    claim_id: str
    about: _About
    status: str
    verdict: str
    key_number: str
    explanation: str
    seconds: float
    tables: tuple[_TableView, ...]
    figures: tuple[_FigureView, ...]


def _table_view(t: Table) -> _TableView:
    numeric = tuple(all(_is_number(row[i]) for row in t.rows) for i in range(len(t.columns)))
    rows = tuple(tuple(_cell(v) for v in row) for row in t.rows)
    return _TableView(t.title, t.columns, rows, numeric)


def _figure_view(f: Figure) -> _FigureView:
    from stabletrain.report.figures import figure_plot

    try:
        plot = figure_plot(f)
    except (ValueError, TypeError) as err:  # one bad figure is a note, not a lost report
        return _FigureView(f.title, "", 0, 0, f"{type(err).__name__}: {err}")
    return _FigureView(f.title, plot.data_uri, plot.width, plot.height)


def _section_view(r: Result, about: _About) -> _SectionView:
    figures = tuple(_figure_view(f) for f in r.figures)
    return _SectionView(
        r.claim_id,
        about,
        r.status,
        _verdict_line(r),
        r.key_number,
        r.explanation,
        r.seconds,
        tuple(_table_view(t) for t in (*measured_table(r), *r.tables)),
        figures,
    )


def html_report(
    results: Sequence[Result],
    *,
    quick: bool,
    seed: int,
    seconds: float | None = None,
) -> str:
    """The results as one self-contained HTML page (figures embedded, every text escaped).

    Arguments as for :func:`markdown_report`.

    Example:
        >>> from stabletrain.lab import Result, verdicts
        >>> r = Result(verdicts.at_most(0.01, 0.05), "<b>0.01</b>", "ok", claim_id="I5")
        >>> page = html_report([r], quick=True, seed=0)
        >>> "&lt;b&gt;0.01&lt;/b&gt;" in page, "<b>0.01" in page
        (True, False)
    """
    from stabletrain.report.html import load_template  # the HTML stack: only here

    sections = [_section_view(r, _about(r.claim_id)) for r in results]
    groups: list[tuple[str, list[_SectionView]]] = []
    for s in sections:
        if not groups or groups[-1][0] != s.about.group:
            groups.append((s.about.group, []))
        groups[-1][1].append(s)
    return str(
        load_template(TEMPLATE).render(
            summary=_summary(results, quick, seed, seconds),
            counts=_counts(results),
            sections=sections,
            groups=groups,
        )
    )


# --------------------------------------------------------------------------- JSON, terminal


def results_json(
    results: Sequence[Result], *, quick: bool, seed: int, seconds: float | None = None
) -> dict[str, Any]:
    """The results and the run's settings as JSON-ready data (NaN written as JSON ``NaN``).

    Schema: ``{"schema": "stabletrain.lab", "version": 2, "stabletrain": str, "torch": str,
    "mode": "quick"|"full", "seed": int, "seconds": float, "counts": {status: int},
    "results": [Result.to_dict(), ...]}``.
    """
    return {
        "schema": SCHEMA_NAME,
        "version": SCHEMA_VERSION,
        "stabletrain": __version__,
        "torch": torch.__version__,
        "mode": "quick" if quick else "full",
        "seed": seed,
        "seconds": sum(r.seconds for r in results) if seconds is None else seconds,
        "counts": _counts(results),
        "results": [r.to_dict() for r in results],
    }


def verdict_table(results: Sequence[Result]) -> FitTable:
    """The verdict table for the terminal: ID, claim, verdict (coloured), key number, seconds.

    It fits the terminal (:class:`~stabletrain._fit.FitTable`): the claim and the key number
    wrap at word boundaries; on a narrow terminal each claim becomes a block.
    """
    columns = (
        Col("ID", justify="left", key=True),
        Col("claim", justify="left", wrap=True, min_width=30, short=""),
        Col("verdict", justify="left"),
        Col("key number", justify="left", wrap=True, min_width=24, short=""),
        Col("s", drop=1),
    )
    rows = [
        [  # Text, not markup: "[a, b]" in a key number is shown as it is
            Text(r.claim_id),
            Text(_about(r.claim_id).title),
            Text(r.status, style=_STATUS_STYLE[r.status]),
            Text(r.error or r.key_number),
            Text(f"{r.seconds:.1f}"),
        ]
        for r in results
    ]
    return FitTable(columns, rows, title="stabletrain lab: verdicts")


def write_reports(
    results: Sequence[Result],
    out_dir: str | os.PathLike[str],
    *,
    quick: bool,
    seed: int,
    seconds: float | None = None,
    formats: Sequence[str] = ("html", "md", "json"),
) -> dict[str, Path]:
    """Write ``report.md``, ``results.json`` and ``report.html`` into ``out_dir`` (created).

    Returns ``{"markdown": path, "json": path, "html": path}`` for the ``formats`` written
    (``"md"``, ``"json"``, ``"html"``; the HTML's figures take seconds of matplotlib). The HTML
    needs the report extra; without it the others are written and the ``ImportError`` names
    the extra.
    """
    unknown = sorted(set(formats) - {"html", "md", "json"})
    if unknown:
        raise ValueError(
            f"write_reports: unknown format(s) {', '.join(unknown)}; valid: html, md, json."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out / "report.md",
        "json": out / "results.json",
        "html": out / "report.html",
    }
    kwargs: dict[str, Any] = {"quick": quick, "seed": seed, "seconds": seconds}
    if "md" in formats:
        paths["markdown"].write_text(markdown_report(results, **kwargs), encoding="utf-8")
    if "json" in formats:
        data = results_json(results, **kwargs)
        paths["json"].write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    if "html" in formats:
        paths["html"].write_text(html_report(results, **kwargs), encoding="utf-8")
    wanted = {"markdown": "md", "json": "json", "html": "html"}
    return {name: path for name, path in paths.items() if wanted[name] in formats}
