"""Under torch.distributed only rank 0 writes by default; with "each" every rank writes its own
JSONL file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from stabletrain.monitoring import JSONLSink, MemorySink, TrainingMonitor, every, ranks


def run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rank: int | None, **kwargs: object
) -> tuple[MemorySink, JSONLSink]:
    monkeypatch.setattr(ranks, "global_rank", lambda: rank)
    model = nn.Linear(3, 1)
    memory, jsonl = MemorySink(), JSONLSink(tmp_path / "rows.jsonl")
    with TrainingMonitor(model, schedule=every(1), sinks=[memory, jsonl], **kwargs) as mon:  # type: ignore[arg-type]
        model(torch.ones(2, 3)).sum().backward()
        mon.step(1.0)
    return memory, jsonl


def test_rank_zero_and_a_single_process_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rank in (None, 0):
        memory, jsonl = run(tmp_path, monkeypatch, rank, summary=False)
        assert memory.rows
        assert jsonl.path == tmp_path / "rows.jsonl"


def test_another_rank_writes_nothing_and_prints_no_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    memory, _ = run(tmp_path, monkeypatch, 1)
    assert not memory.rows
    assert not (tmp_path / "rows.jsonl").exists()
    assert capsys.readouterr().err == ""


def test_each_rank_writes_its_own_file_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory, jsonl = run(tmp_path, monkeypatch, 1, write_ranks="each", summary=False)
    assert memory.rows
    assert jsonl.path == tmp_path / "rows.rank1.jsonl"
    assert jsonl.path.exists()


def test_an_unknown_write_ranks_is_refused() -> None:
    with pytest.raises(ValueError, match="write_ranks"):
        TrainingMonitor(nn.Linear(1, 1), write_ranks="all")  # type: ignore[arg-type]
