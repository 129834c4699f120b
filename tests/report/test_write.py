"""Writing reports: the files asked for and only those, JSON that reads back (a Diagnosis
through Diagnosis.from_dict, a run as its findings and summary), and clear errors."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import pytest

from stabletrain.diagnostics import Diagnosis, LayerStats
from stabletrain.findings import Finding
from stabletrain.monitoring import Row, Thresholds
from stabletrain.report import (
    RUN_REPORT_SCHEMA,
    RUN_REPORT_VERSION,
    RunLog,
    load_run,
    render_run,
    run_dict,
    write_report,
)
from tests.report._data import THRESHOLDS, diagnosis, fixed_diagnosis


def test_a_diagnosis_report_is_written_in_every_format(tmp_path: Path) -> None:
    paths = write_report(diagnosis(), tmp_path / "out")
    assert paths == {f: tmp_path / "out" / f"report.{f}" for f in ("html", "md", "json")}
    assert paths["html"].read_text().startswith("<!DOCTYPE html>")
    assert paths["md"].read_text().startswith("# stabletrain diagnose: \\<MLP & co\\>")


def test_the_json_reads_back_into_the_same_diagnosis(tmp_path: Path) -> None:
    d = diagnosis(0.5)  # every number measured: no NaN, so == compares them all
    text = write_report(d, tmp_path, ["json"])["json"].read_text()
    back = Diagnosis.from_dict(json.loads(text))
    assert back == d
    assert back.findings[0].message == "Signal <shrinks> & vanishes | with depth."


def test_unmeasured_values_survive_the_json_as_nan(tmp_path: Path) -> None:
    d = Diagnosis(model="M", layers=(LayerStats(name="a|b", kind="Linear", depth=0),))
    text = write_report(d, tmp_path, ("json",))["json"].read_text()
    back = Diagnosis.from_dict(json.loads(text))
    assert math.isnan(back["a|b"].out_std)
    assert back.to_json(indent=2) + "\n" == text


def test_only_the_formats_asked_for_are_written(tmp_path: Path) -> None:
    assert list(write_report(diagnosis(), tmp_path, ("md",))) == ["md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]
    assert list(write_report(diagnosis(), tmp_path, "json")) == ["json"]  # one name alone


def test_a_fixed_diagnosis_writes_its_report(tmp_path: Path) -> None:
    paths = write_report(fixed_diagnosis(), tmp_path)
    assert "Before and after the fix" in paths["html"].read_text()


@pytest.mark.parametrize(
    ("formats", "error", "expected"),
    [
        (("pdf",), ValueError, "unknown format 'pdf'; valid options are 'html', 'md', 'json'"),
        ((), ValueError, "formats is empty"),
    ],
)
def test_bad_formats_are_refused_before_anything_is_written(
    tmp_path: Path, formats: tuple[str, ...], error: type[Exception], expected: str
) -> None:
    with pytest.raises(error, match=expected):
        write_report(diagnosis(), tmp_path / "out", formats)
    assert not (tmp_path / "out").exists()


def test_what_is_neither_a_diagnosis_nor_rows_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="Row"):
        write_report({"model": "M"}, tmp_path)  # type: ignore[arg-type]


def test_a_run_report_holds_the_findings_and_a_summary(
    run_log: tuple[Path, list[Finding]], tmp_path: Path
) -> None:
    rows = load_run(run_log[0])
    run = RunLog.from_rows(rows, thresholds=THRESHOLDS)
    data = json.loads(write_report(run, tmp_path)["json"].read_text())
    assert (data["schema"], data["version"]) == (RUN_REPORT_SCHEMA, RUN_REPORT_VERSION)
    assert data["findings"] == [asdict(f) for f in run.findings]
    assert data["thresholds"] == asdict(THRESHOLDS)
    summary = data["summary"]
    assert summary["rows"] == len(rows)
    assert (summary["logged_steps"], summary["first_step"], summary["last_step"]) == (8, 1, 8)
    assert summary["layers"] == ["0", "2", "4"]
    losses = [r.value for r in rows if r.layer is None and r.metric == "loss"]
    assert summary["loss"] == {"first": losses[0], "last": losses[-1], "min": min(losses)}
    counts = {s: sum(f.severity == s for f in run.findings) for s in ("error", "warning", "info")}
    assert summary["findings"] == counts
    last = {(r.layer, r.metric): r.value for r in rows if r.step == 8 and r.layer is not None}
    assert summary["last_step_layers"]["2"]["max_row_cosine"] == last[("2", "max_row_cosine")]
    assert sum(len(m) for m in summary["last_step_layers"].values()) == len(last)


def test_a_run_dict_of_nonfinite_values_is_written_as_json_nan() -> None:
    data = run_dict([Row(1, None, "loss", float("nan")), Row(1, "fc", "grad_norm", float("inf"))])
    assert math.isnan(data["summary"]["loss"]["first"])
    assert data["summary"]["loss"]["min"] is None
    assert [f["rule"] for f in data["findings"]] == ["nonfinite", "exploding"]
    assert "NaN" in json.dumps(data)


def test_render_run_reads_a_log_and_writes_its_report(
    run_log: tuple[Path, list[Finding]], tmp_path: Path
) -> None:
    paths = render_run(run_log[0], tmp_path / "report", ("md", "json"), thresholds=THRESHOLDS)
    assert sorted(paths) == ["json", "md"]
    data = json.loads(paths["json"].read_text())
    assert data["source"] == str(run_log[0])
    expected = RunLog.from_rows(load_run(run_log[0]), thresholds=THRESHOLDS).findings
    assert data["findings"] == [asdict(f) for f in expected]
    assert f"- **log**: {run_log[0]}" in paths["md"].read_text()


def test_render_run_reports_the_findings_the_monitor_recorded(
    run_log: tuple[Path, list[Finding]], tmp_path: Path
) -> None:
    paths = render_run(run_log[0], tmp_path, ["json", "md"])
    data = json.loads(paths["json"].read_text())
    assert data["findings_source"] == "monitor"
    assert data["findings"] == [asdict(f) for f in run_log[1]]  # the monitor's own, text too
    assert data["thresholds"] == asdict(THRESHOLDS)  # the monitor's, as recorded in the log
    assert Thresholds() != THRESHOLDS
    assert "the monitor recorded while training" in paths["md"].read_text()
    replayed = render_run(run_log[0], tmp_path / "again", ["json", "md"], thresholds=THRESHOLDS)
    assert json.loads(replayed["json"].read_text())["findings_source"] == "rules"
    assert "recomputed from the logged rows" in replayed["md"].read_text()


def test_render_run_refuses_a_missing_file_a_foreign_file_and_another_schema(
    tmp_path: Path,
) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        render_run(tmp_path / "missing.jsonl", tmp_path / "out")
    foreign = tmp_path / "notes.txt"
    foreign.write_text("hello\n")
    with pytest.raises(ValueError, match=r"notes\.txt is not a JSON lines file"):
        render_run(foreign, tmp_path / "out")
    newer = tmp_path / "newer.jsonl"
    newer.write_text(
        json.dumps({"schema": 9, "step": 1, "layer": None, "metric": "loss", "value": 1})
    )
    with pytest.raises(ValueError, match=r"newer\.jsonl was written with row schema 9.*schema 1"):
        render_run(newer, tmp_path / "out")
    assert not (tmp_path / "out").exists()
