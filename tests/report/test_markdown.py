"""Markdown reports: tables keep their shape whatever the names hold, findings come with their
fixes, before/after and the init report are summarized, runs list their findings by step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stabletrain.diagnostics import Diagnosis, LayerStats
from stabletrain.findings import Finding
from stabletrain.monitoring import Row
from stabletrain.report import (
    RunLog,
    diagnosis_markdown,
    escape_markdown,
    load_run,
    run_markdown,
)
from tests.report._data import HOSTILE, SCRIPT, THRESHOLDS, diagnosis, fixed_diagnosis

CELL_SPLIT = re.compile(r"(?<!\\)\|")  # a pipe that is not escaped separates cells


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of ``text``: rows of cells (the separator row dropped)."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in CELL_SPLIT.split(line)[1:-1]]
            if not all(re.fullmatch(r"-+:?|:?-+", c) for c in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def test_every_table_row_has_as_many_cells_as_its_header_whatever_the_names() -> None:
    text = diagnosis_markdown(fixed_diagnosis())
    found = tables(text)
    assert len(found) == 4  # before/after summary, layers, before/after layers, init report
    for table in found:
        assert len({len(row) for row in table}) == 1, table
    layer_table = next(t for t in found if t[0][:2] == ["layer", "kind"])
    assert [row[0] for row in layer_table[1:]] == [escape_markdown(n) for n in HOSTILE]
    assert r"a&b\|c" in text


def test_escape_markdown_escapes_pipes_html_and_code_and_joins_lines() -> None:
    assert escape_markdown("a|b") == r"a\|b"
    assert escape_markdown(SCRIPT) == r"\<script\>alert(1)\</script\>"
    assert escape_markdown("x`y*z[w]\\") == r"x\`y\*z\[w\]\\"
    assert escape_markdown("one\ntwo\r\n three") == "one two three"
    assert escape_markdown("blocks.0.fc_out") == "blocks.0.fc_out"  # names stay readable


def test_no_raw_html_reaches_the_markdown() -> None:
    text = diagnosis_markdown(fixed_diagnosis())
    assert "<script>" not in text
    assert re.search(r"(?<!\\)<", text) is None


def test_findings_are_listed_with_their_fixes() -> None:
    d = diagnosis()
    text = diagnosis_markdown(d)
    assert "1. **warning** in blocks.0.\\<script\\>" in text
    assert r"Signal \<shrinks\> & vanishes \| with depth." in text
    assert "   - fix: stabletrain.auto_init(model, example_input)" in text


def test_gains_and_layer_numbers_are_written_to_three_significant_digits() -> None:
    d = diagnosis(0.5)
    text = diagnosis_markdown(d)
    assert f"- **forward gain (output std / input std)**: {d.forward_gain:.3g}" in text
    layer_table = next(t for t in tables(text) if t[0][:2] == ["layer", "kind"])
    header, last = layer_table[0], layer_table[-1]
    row = dict(zip(header, last, strict=True))
    assert row["out std"] == f"{0.5**3:.3g}"
    assert row["out theory"] == "1"
    assert row["out ratio"] == f"×{0.5**3:.3g}"
    assert row["grad std"] == row["grad theory"] == "0.01"  # the last layer's gradient: scale⁰
    assert row["saturated"] == "6.0%"


def test_a_fix_shows_before_and_after_side_by_side() -> None:
    text = diagnosis_markdown(fixed_diagnosis())
    assert "## Before and after the fix" in text
    assert "| forward gain (output std / input std) | 0.125 | 1 |" in text
    compare = next(t for t in tables(text) if t[0][:2] == ["layer", "out std before"])
    assert compare[-1][1:3] == ["0.125", "1"]


def test_without_a_fix_there_is_no_before_section() -> None:
    assert "Before and after" not in diagnosis_markdown(diagnosis())


def test_the_init_report_is_summarized() -> None:
    text = diagnosis_markdown(diagnosis())
    assert "## Initialization applied" in text
    assert "1 parameter(s): xavier\\_normal ×1" not in text  # underscores are left alone
    assert "1 parameter(s): xavier_normal ×1; 0 kept as they were" in text
    assert r"calibrated \<1\> layer & kept 0" in text


def test_unmeasured_values_read_n_a() -> None:
    d = Diagnosis(model="M", layers=(LayerStats(name="fc", kind="Linear", depth=0),))
    row = tables(diagnosis_markdown(d))[0][1]
    assert row[:2] == ["fc", "Linear"]
    assert row[5:] == ["n/a"] * 8


def test_an_empty_diagnosis_renders() -> None:
    text = diagnosis_markdown(Diagnosis(model="Empty"))
    assert "No findings." in text
    assert "(none)" in text


def test_a_run_lists_its_findings_with_their_steps_and_the_last_step_table(
    run_log: tuple[Path, list[Finding]],
) -> None:
    run = RunLog.from_rows(load_run(run_log[0]), thresholds=THRESHOLDS)
    text = run_markdown(run)
    for f in run.findings:
        steps = f"{f.step}" if f.count == 1 else f"{f.step}-{f.last_step} (×{f.count})"
        assert f"**{f.severity}** in {f.layer} ({f.rule}: " in text
        assert f", steps {steps}): " in text
    last = next(t for t in tables(text) if t[0][0] == "layer")
    assert [row[0] for row in last[1:]] == ["0", "2", "4"]
    assert "max row cos" in last[0]
    assert "- **logged steps**: 8 (1-8)" in text


def test_run_markdown_takes_rows_and_escapes_their_layer_names() -> None:
    text = run_markdown([Row(1, "a|b", "grad_norm", 5e3), Row(1, None, "loss", 1.0)])
    assert r"**error** in a\|b (exploding" in text
    assert all(len({len(r) for r in t}) == 1 for t in tables(text))


def test_an_empty_run_renders() -> None:
    text = run_markdown([])
    assert "- **logged steps**: 0" in text
    assert "No findings." in text


def test_a_diagnosis_function_refuses_rows() -> None:
    with pytest.raises(TypeError, match="run_"):
        diagnosis_markdown([Row(1, "fc", "grad_norm", 1.0)])  # type: ignore[arg-type]
