"""JSONL sink: rows parse, match the documented schema, and the file is written as promised."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.findings import Finding
from stabletrain.monitoring import (
    JSONLSink,
    Thresholds,
    TrainingMonitor,
    every,
    read_findings,
    read_jsonl,
    read_meta,
)
from stabletrain.monitoring.sinks import METRICS, SCHEMA_VERSION, Row

ROWS = [Row(1, "fc", "grad_norm", 0.5), Row(1, None, "loss", float("nan"))]


def at(step: int) -> list[Row]:
    return [Row(step, "fc", "grad_norm", 0.5)]


def test_every_row_the_monitor_writes_is_a_json_object_of_the_schema(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "run" / "rows.jsonl"
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    with TrainingMonitor(
        model, opt, preset="full", schedule=every(2), sinks=[JSONLSink(path)], summary=False
    ) as mon:
        for _ in range(4):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    first, *lines = path.read_text().splitlines()
    meta = json.loads(first)  # what the monitor watched with, before any row
    assert set(meta) == {"schema", "meta"}
    assert meta["meta"]["preset"] == "full"
    assert meta["meta"]["thresholds"] == asdict(Thresholds())
    assert meta["meta"]["layers"] == [{"name": "0", "depth": 0}, {"name": "2", "depth": 1}]
    assert read_meta(path) == meta["meta"]
    assert lines
    for line in lines:
        obj = json.loads(line)
        assert set(obj) == {"schema", "step", "layer", "metric", "value"}
        assert obj["schema"] == SCHEMA_VERSION
        assert obj["step"] in (2, 4)
        assert obj["layer"] in (None, "0", "2")
        assert obj["metric"] in METRICS
        assert isinstance(obj["value"], float | int)
    rows = read_jsonl(path)
    assert len(rows) == len(lines)
    assert {(r.layer, r.metric) for r in rows} >= {("0", "saturation_fraction"), (None, "loss")}


def test_the_file_is_truncated_once_then_appended_to_after_close(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("old\n")
    sink = JSONLSink(path)
    sink.write(1, at(1))
    sink.close()
    sink.write(2, at(2))
    sink.close()
    assert [r.step for r in read_jsonl(path)] == [1, 2]


def test_append_keeps_the_existing_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    first = JSONLSink(path)
    first.write(1, ROWS)
    first.close()
    sink = JSONLSink(path, append=True)
    sink.write(2, at(2))
    sink.close()
    assert [r.step for r in read_jsonl(path)] == [1, 1, 2]


def test_rows_are_flushed_at_every_write(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    sink = JSONLSink(path)
    sink.write(1, ROWS)
    assert len(path.read_text().splitlines()) == 2  # before close
    sink.close()


def test_a_write_after_the_file_or_its_directory_was_deleted_raises(tmp_path: Path) -> None:
    path = tmp_path / "run" / "rows.jsonl"
    sink = JSONLSink(path)
    sink.write(1, ROWS)
    shutil.rmtree(path.parent)  # the open file still accepts writes, into nothing
    with pytest.raises(FileNotFoundError, match="deleted"):
        sink.write(2, ROWS)
    sink.close()
    assert repr(sink) == f"JSONLSink({str(path)!r})"


def test_reading_a_bad_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(ROWS[0].to_json()) + "\n{not json\n")
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(path)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"layers": [{"name": "fc", "depth": "deep"}]}, "layer 'fc' has depth 'deep'"),
        ({"layers": [{"name": "fc", "depth": -3}]}, "layer 'fc' has depth -3"),
        ({"layers": [{"depth": 0}]}, "not an object with a name"),
        ({"layers": "fc"}, "layers must be a list"),
        ({"thresholds": [1, 2]}, "thresholds must be an object"),
        (5, "the meta line holds 5"),
    ],
)
def test_a_meta_line_that_the_monitor_did_not_write_is_named_with_its_line(
    tmp_path: Path, meta: object, message: str
) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text(
        json.dumps(ROWS[0].to_json()) + "\n" + json.dumps({"schema": 1, "meta": meta}) + "\n"
    )
    with pytest.raises(ValueError, match=message) as error:
        read_meta(path)
    assert "line 2" in str(error.value)


def test_a_meta_line_with_null_depths_reads_back(tmp_path: Path) -> None:
    meta = {"preset": "minimal", "thresholds": {}, "layers": [{"name": "", "depth": None}]}
    sink = JSONLSink(tmp_path / "run.jsonl")
    sink.write_meta(meta)
    sink.close()
    assert read_meta(tmp_path / "run.jsonl") == meta


def test_a_path_of_another_type_is_rejected() -> None:
    with pytest.raises(TypeError, match="path"):
        JSONLSink(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- findings

FINDINGS = [
    Finding(
        severity="error",
        layer=None,
        metric="loss",
        value=float("nan"),
        threshold=0.0,
        message="the loss is NaN",
        fix="StepGuard",
        rule="nonfinite",
    ),
    Finding(
        severity="warning",
        layer="fc",
        metric="grad_norm",
        value=1e-9,
        threshold=float("inf"),
        message="vanishing",
        fix="auto_init",
        rule="v",
        step=3,
        last_step=3,
    ),
]


def test_findings_follow_their_rows_and_read_back_exactly_nan_and_inf_included(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.jsonl"
    sink = JSONLSink(path)
    sink.write(3, ROWS)
    sink.write_findings(3, FINDINGS)
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [("finding" in obj) for obj in lines] == [False, False, True, True]
    assert lines[2]["schema"] == SCHEMA_VERSION
    assert lines[2]["step"] == 3
    assert lines[2]["finding"]["value"] == "nan"  # JSON has no NaN
    assert lines[3]["finding"]["threshold"] == "inf"
    got = read_findings(path)
    assert [f.to_json() for f in got] == [f.to_json() for f in FINDINGS]
    assert math.isnan(got[0].value)
    assert got[1] == FINDINGS[1]
    assert read_jsonl(path)[0] == ROWS[0]  # rows are read as before, finding lines skipped
    assert len(read_jsonl(path)) == 2


def test_a_log_of_rows_only_has_no_findings(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    sink = JSONLSink(path)
    sink.write(1, ROWS)
    sink.close()
    assert read_findings(path) == []


def test_a_corrupt_finding_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps(ROWS[0].to_json())
    bad = json.dumps({"schema": SCHEMA_VERSION, "step": 1, "finding": {"severity": "fatal"}})
    path.write_text(f"{good}\n{bad}\n")
    with pytest.raises(ValueError, match=r"read_findings: .*bad.jsonl, line 2: .*'fatal'"):
        read_findings(path)
    path.write_text(f"{good}\n[1, 2]\n")
    with pytest.raises(ValueError, match=r"read_jsonl: .*line 2: \[1, 2\] is not an object"):
        read_jsonl(path)


def test_the_monitor_writes_each_firing_once_per_logged_step(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2))
    with torch.no_grad():  # two equal rows: symmetric units on every logged step
        model[0].weight[1] = model[0].weight[0]
        model[0].bias[1] = model[0].bias[0]
    path = tmp_path / "run.jsonl"
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = TrainingMonitor(model, opt, preset="full", schedule=every(2), sinks=[JSONLSink(path)])
    with mon:
        for _ in range(6):
            opt.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            mon.step(loss)
    events = [f for f in read_findings(path) if f.rule == "symmetric_units"]
    assert [(e.step, e.last_step, e.count, e.layer) for e in events] == [
        (s, s, 1, "0") for s in (2, 4, 6)
    ]
    (merged,) = [f for f in mon.findings() if f.rule == "symmetric_units"]
    assert (merged.step, merged.last_step, merged.count) == (2, 6, 3)


def test_the_row_encoder_writes_exactly_what_json_dumps_writes() -> None:
    import json
    import math
    import random

    from stabletrain.monitoring.sinks.jsonl import _RowEncoder

    rng = random.Random(0)
    layers = [None, "", "fc", "blocks.0.attn", 'q"uote\\slash', "ünï\u2028code", "\x00ctl"]
    specials = [0.0, -0.0, 1e-320, 1e308, math.nan, math.inf, -math.inf, 1 / 3, 5e-324]
    encoder = _RowEncoder()
    for _ in range(3000):
        value = rng.choice(specials) if rng.random() < 0.2 else rng.uniform(-1e6, 1e6)
        if rng.random() < 0.05:
            value = rng.randint(-5, 5)  # an int value (a count) takes the exact path
        row = Row(rng.randint(1, 10**9), rng.choice(layers), rng.choice(["grad_norm", "x"]), value)
        assert encoder.encode(row) == json.dumps(row.to_json())
