"""TensorBoard sink: an event file with per-layer scalars and histograms, and a clear error
when tensorboard is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from stabletrain.monitoring import Row, TensorBoardSink, TrainingMonitor, every


def test_the_monitor_writes_an_event_file_with_scalars_and_histograms(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = TensorBoardSink(tmp_path, histograms=every(2))
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    with TrainingMonitor(
        model, opt, preset="full", schedule=every(1), sinks=[sink], summary=False
    ) as mon:
        for _ in range(2):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    assert list(tmp_path.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = events.Tags()
    assert {"grad_norm/0", "grad_norm/(model)", "loss/(model)", "dead_fraction/0"} <= set(
        tags["scalars"]
    )
    assert [e.step for e in events.Scalars("grad_norm/0")] == [1, 2]
    assert set(tags["histograms"]) == {
        "weight_hist/0",
        "grad_hist/0",
        "weight_hist/2",
        "grad_hist/2",
    }
    hist = events.Histograms("weight_hist/0")
    assert [h.step for h in hist] == [2]
    assert hist[0].histogram_value.num == 32


def test_a_missing_tensorboard_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"stabletrain\[tensorboard\]"):
        TensorBoardSink(tmp_path)


def test_histograms_can_be_turned_off(tmp_path: Path) -> None:
    sink = TensorBoardSink(tmp_path, histograms=None)
    assert not sink.wants_histograms(100)
    sink.close()


def test_a_sink_from_an_existing_writer_writes_to_its_file_and_leaves_it_open(
    tmp_path: Path,
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    sink = TensorBoardSink.from_writer(writer)
    sink.write(3, [Row(3, None, "loss", 0.5)])
    sink.close()
    writer.add_scalar("after", 1.0, 4)  # still open: its owner closes it
    writer.close()
    assert len(list(tmp_path.glob("events.out.tfevents*"))) == 1
    with pytest.raises(TypeError, match="SummaryWriter"):
        TensorBoardSink.from_writer(object())
