"""Reading a monitor log back: the rules replayed from the log give the monitor's own findings,
series come out in step order, and every kind of wrong file is refused with a clear error."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from stabletrain.findings import Finding
from stabletrain.monitoring import Row, Thresholds, read_findings, read_jsonl
from stabletrain.report import RunLog, load_run
from tests.report._data import THRESHOLDS, diagnosis, monitored_run


def comparable(f: Finding) -> dict[str, object]:
    """A finding without its text: the log does not name activations (the monitor writes
    "sigmoid outputs", the replay "bounded outputs"), and the monitor keeps the fix of the first
    firing where the replay keeps the latest (an update ratio from too high to too low)."""
    data = asdict(f)
    del data["fix"], data["message"]
    return data


def test_findings_replayed_from_the_log_equal_the_monitors_own(
    run_log: tuple[Path, list[Finding]],
) -> None:
    path, findings = run_log
    run = RunLog.from_rows(load_run(path), thresholds=THRESHOLDS)
    assert findings, "the broken model must give findings, or this test proves nothing"
    assert {f.rule for f in findings} >= {"symmetric_units", "saturation"}
    assert [comparable(f) for f in run.findings] == [comparable(f) for f in findings]


def test_findings_recorded_in_the_log_are_the_monitors_own_text_included(
    run_log: tuple[Path, list[Finding]],
) -> None:
    path, findings = run_log
    recorded = read_findings(path)
    assert recorded, "the monitor must have recorded its firings"
    run = RunLog.from_rows(load_run(path), findings=recorded)
    # exactly the monitor's findings: messages and fixes too, which the replay cannot name
    assert list(run.findings) == findings
    assert run.events == tuple(recorded)
    assert run.findings_source == "monitor"


def test_given_thresholds_the_rules_run_again_over_the_rows(
    run_log: tuple[Path, list[Finding]],
) -> None:
    path, _ = run_log
    recorded = read_findings(path)
    assert "saturation" in {f.rule for f in recorded}
    lax = Thresholds(saturation_fraction=0.999)
    run = RunLog.from_rows(load_run(path), thresholds=lax, findings=recorded)
    assert "saturation" not in {f.rule for f in run.findings}
    assert run.thresholds == lax
    assert run.findings_source == "rules"


def test_findings_must_be_findings() -> None:
    with pytest.raises(TypeError, match=r"read_findings\(path\)"):
        RunLog.from_rows([Row(1, "fc", "grad_norm", 1.0)], findings=["vanishing"])  # type: ignore[list-item]


def test_every_event_is_one_firing_and_the_events_add_up_to_the_merged_counts(
    run_log: tuple[Path, list[Finding]],
) -> None:
    run = RunLog.from_rows(load_run(run_log[0]), thresholds=THRESHOLDS)
    assert all(e.step == e.last_step and e.count == 1 for e in run.events)
    for f in run.findings:
        steps = [
            e.step for e in run.events if (e.rule, e.layer, e.metric) == (f.rule, f.layer, f.metric)
        ]
        assert (len(steps), min(steps), max(steps)) == (f.count, f.step, f.last_step)


def test_a_log_with_steps_skipped_by_the_schedule_is_read_at_the_logged_steps(
    tmp_path: Path,
) -> None:
    monitored_run(tmp_path / "rows.jsonl", steps=9, log_every=3)
    run = RunLog.from_rows(load_run(tmp_path / "rows.jsonl"))
    assert run.steps == (3, 6, 9)
    assert run.layers == ("0", "2", "4")
    assert run.series("2", "max_row_cosine")[0] == (3, 6, 9)


def test_series_are_in_step_order_whatever_the_row_order() -> None:
    rows = [
        Row(3, "fc", "grad_norm", 3.0),
        Row(1, "fc", "grad_norm", 1.0),
        Row(2, None, "loss", 9.0),
    ]
    run = RunLog.from_rows(rows)
    assert run.series("fc", "grad_norm") == ((1, 3), (1.0, 3.0))
    assert run.series("fc", "loss") == ((), ())
    assert run.last("fc", "grad_norm") == 3.0
    assert run.last(None, "grad_norm") is None
    assert run.metrics("fc") == ("grad_norm",)
    assert run.metrics() == ("loss",)
    assert run.steps == (1, 2, 3)


def test_rows_may_come_from_a_generator() -> None:
    run = RunLog.from_rows(Row(s, "fc", "grad_norm", 1.0) for s in (1, 2))  # type: ignore[arg-type]
    assert run.steps == (1, 2)
    assert len(run.rows) == 2


def test_layers_keep_the_order_the_monitor_wrote_them_in() -> None:
    rows = [
        Row(1, "z", "grad_norm", 1.0),
        Row(1, "", "grad_norm", 1.0),
        Row(1, "a", "grad_norm", 1.0),
    ]
    assert RunLog.from_rows(rows).layers == ("z", "", "a")


def test_rows_must_be_rows() -> None:
    with pytest.raises(TypeError, match="load_run"):
        RunLog.from_rows("run.jsonl")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"sequence of stabletrain\.monitoring\.Row"):
        RunLog.from_rows([{"step": 1}])  # type: ignore[list-item]


# --------------------------------------------------------------------------- load_run errors


def test_a_missing_file_is_a_file_not_found_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl.*JSONLSink"):
        load_run(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("step,layer,metric\n1,fc,0.5\n", "not a JSON lines file: line 1 is not JSON"),
        ('{"step": 1, "layer": "fc"}\n', "without a 'schema' field"),
        ("[1, 2]\n", "without a 'schema' field"),
        ('{"schema": 2, "step": 1, "layer": null, "metric": "loss", "value": 1}\n', "schema 2"),
    ],
)
def test_a_file_that_is_not_a_log_of_this_schema_is_refused_naming_path_and_expectation(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=expected) as err:
        load_run(path)
    assert str(path) in str(err.value)
    if "schema 2" not in expected:
        assert "JSONLSink" in str(err.value)  # what a log looks like


def test_a_diagnosis_json_is_refused_with_the_call_that_renders_it(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(diagnosis().to_json())
    with pytest.raises(ValueError, match=r"is a Diagnosis.*Diagnosis\.from_dict"):
        load_run(path)


def test_a_binary_file_and_a_directory_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19.\xff\xfe")
    with pytest.raises(ValueError, match="not a text file"):
        load_run(path)
    with pytest.raises(ValueError, match="not a file"):
        load_run(tmp_path)


def test_a_corrupt_line_after_a_good_one_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    good = json.dumps(Row(1, "fc", "grad_norm", 0.5).to_json())
    path.write_text(f"{good}\n{good}\n{{truncated\n")
    with pytest.raises(ValueError, match="line 3"):
        load_run(path)


def test_load_run_returns_what_read_jsonl_reads(run_log: tuple[Path, list[Finding]]) -> None:
    assert load_run(run_log[0]) == read_jsonl(run_log[0])


# --------------------------------------------------------------------------- the log's meta


def _norm_rows() -> list[Row]:
    # "n" is a LayerNorm whose tiny gradient is no vanishing gradient: it is not a weight layer
    return [
        Row(1, name, "grad_norm", value)
        for name, value in (("a", 1.0), ("n", 1e-9), ("b", 2.0), ("c", 1.5))
    ]


META = {
    "preset": "minimal",
    "thresholds": {"vanishing_ratio": 1e-12, "loss_window": 4},
    "layers": [
        {"name": "a", "depth": 0},
        {"name": "n", "depth": None},
        {"name": "b", "depth": 1},
        {"name": "c", "depth": 2},
    ],
}


def test_a_replay_uses_the_depths_the_monitor_recorded() -> None:
    inferred = RunLog.from_rows(_norm_rows())  # rows alone: "n" counts as a weight layer
    assert ("vanishing", "n") in {(f.rule, f.layer) for f in inferred.findings}
    meta = {**META, "thresholds": {}}
    recorded = RunLog.from_rows(_norm_rows(), meta=meta, thresholds=Thresholds())
    # 3 weight layers, under the depth rules' minimum of 4, and "n" is not one of them
    assert recorded.findings == ()
    assert recorded.findings_source == "rules"


def test_with_the_monitors_meta_no_recorded_finding_means_none_found() -> None:
    run = RunLog.from_rows(_norm_rows(), meta=META, findings=[])
    assert run.findings == ()
    assert run.findings_source == "monitor"
    assert RunLog.from_rows(_norm_rows()).findings_source == "rules"  # rows alone: replayed


def test_the_recorded_thresholds_are_the_default_and_explicit_ones_win() -> None:
    run = RunLog.from_rows(_norm_rows(), meta=META)
    assert (run.thresholds.vanishing_ratio, run.thresholds.loss_window) == (1e-12, 4)
    own = Thresholds(vanishing_ratio=0.5)
    assert RunLog.from_rows(_norm_rows(), meta=META, thresholds=own).thresholds == own
    # fields this version does not know are ignored; invalid values are refused with the fix
    run = RunLog.from_rows(_norm_rows(), meta={"thresholds": {"future_field": 1}})
    assert run.thresholds == Thresholds()
    with pytest.raises(ValueError, match=r"recorded thresholds .* pass thresholds="):
        RunLog.from_rows(_norm_rows(), meta={"thresholds": {"loss_window": 1}})
