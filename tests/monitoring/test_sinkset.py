"""A sink that fails warns once and is dropped; training and the other sinks go on."""

from __future__ import annotations

import errno
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.findings import Finding
from stabletrain.monitoring import (
    Histogram,
    JSONLSink,
    MemorySink,
    Row,
    Sink,
    TrainingMonitor,
    every,
    read_jsonl,
)

STEPS = 4
NAN_STEP = 2  # its loss is NaN: the rules fire, so findings are written


class FailingSink(Sink):
    """Raises "disk full" from ``method`` on its ``fail_at``-th call; counts every call."""

    def __init__(self, method: str, fail_at: int = 1) -> None:
        self.method = method
        self.fail_at = fail_at
        self.calls: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"FailingSink({self.method!r})"

    def _called(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        if method == self.method and self.calls[method] == self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")

    def wants_histograms(self, step: int) -> bool:
        self._called("wants_histograms")
        return True

    def write(self, step: int, rows: Sequence[Row]) -> None:
        self._called("write")

    def write_histograms(self, step: int, histograms: Sequence[Histogram]) -> None:
        self._called("write_histograms")

    def write_meta(self, meta: Any) -> None:
        self._called("write_meta")

    def write_findings(self, step: int, findings: Sequence[Finding]) -> None:
        self._called("write_findings")

    def close(self) -> None:
        self._called("close")


def train(sinks: list[Sink]) -> TrainingMonitor:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    with TrainingMonitor(
        model, opt, preset="full", schedule=every(1), sinks=sinks, summary=False
    ) as mon:
        for step in range(1, STEPS + 1):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(math.nan if step == NAN_STEP else loss)
    return mon


def complete(sink: MemorySink) -> None:
    assert sorted({r.step for r in sink.rows}) == list(range(1, STEPS + 1))
    assert sorted({h.step for h in sink.histograms}) == list(range(1, STEPS + 1))
    assert any(f.step == NAN_STEP and f.metric == "loss" for f in sink.findings)
    assert sink.meta is not None


@pytest.mark.parametrize(
    "method",
    ["write_meta", "write", "wants_histograms", "write_histograms", "write_findings", "close"],
)
def test_a_sink_that_raises_warns_once_and_gets_nothing_more(method: str) -> None:
    failing = FailingSink(method)
    good = MemorySink(histograms=every(1))
    with pytest.warns(RuntimeWarning) as caught:
        mon = train([failing, good])
    (warning,) = caught
    message = str(warning.message)
    assert f"FailingSink('{method}')" in message
    assert method in message
    assert "No space left on device" in message
    assert failing.calls[method] == 1  # never called again after it failed
    assert failing.calls["close"] == 1  # closed once at the end, quietly if it had failed
    complete(good)
    assert mon.steps == STEPS


def test_a_sink_that_fails_late_keeps_what_it_got_before() -> None:
    failing = FailingSink("write", fail_at=3)
    with pytest.warns(RuntimeWarning, match="write"):
        train([failing, MemorySink()])
    assert failing.calls["write"] == 3


def test_a_jsonl_sink_under_a_path_that_cannot_be_a_directory_is_dropped(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    sink = JSONLSink(blocker / "rows.jsonl")
    good = MemorySink(histograms=every(1))
    with pytest.warns(RuntimeWarning, match=r"JSONLSink\(.*rows\.jsonl'\) failed in write_meta"):
        train([sink, good])
    complete(good)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a full disk)")
def test_a_jsonl_sink_on_a_full_disk_is_dropped() -> None:
    good = MemorySink(histograms=every(1))
    with pytest.warns(RuntimeWarning, match="No space left on device"):
        train([JSONLSink("/dev/full"), good])
    complete(good)


class RemoveDirectory(Sink):
    """Removes ``directory`` when the monitor writes step ``at``."""

    def __init__(self, directory: Path, at: int) -> None:
        self.directory, self.at = directory, at

    def write(self, step: int, rows: Sequence[Row]) -> None:
        if step == self.at:
            shutil.rmtree(self.directory)


def test_a_jsonl_sink_whose_directory_is_removed_mid_run_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "run" / "rows.jsonl"
    sink = JSONLSink(path)
    good = MemorySink(histograms=every(1))
    with pytest.warns(RuntimeWarning, match="deleted") as caught:
        train([RemoveDirectory(path.parent, at=2), sink, good])
    assert len(caught) == 1
    assert not path.exists()
    complete(good)


def test_a_jsonl_sink_that_works_gets_every_row_and_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    train([JSONLSink(path)])
    assert sorted({r.step for r in read_jsonl(path)}) == list(range(1, STEPS + 1))
