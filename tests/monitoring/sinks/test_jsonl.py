"""JSONL sink: rows parse, match the documented schema, and the file is written as promised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.monitoring import JSONLSink, TrainingMonitor, every, read_jsonl
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
    lines = path.read_text().splitlines()
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


def test_reading_a_bad_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(ROWS[0].to_json()) + "\n{not json\n")
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(path)


def test_a_path_of_another_type_is_rejected() -> None:
    with pytest.raises(TypeError, match="path"):
        JSONLSink(3)  # type: ignore[arg-type]
