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

from stabletrain.findings import Finding
from stabletrain.monitoring import Row, TensorBoardSink, TrainingMonitor, every
from stabletrain.monitoring.sinks.tensorboard import NONFINITE, tag


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


def _events(path: Path) -> EventAccumulator:
    events = EventAccumulator(str(path))
    events.Reload()
    return events


def test_tags_group_the_layers_of_a_block() -> None:
    name = "model.layers.3.self_attn.q_proj"
    assert tag("grad_norm", name) == "grad_norm/model.layers.3/self_attn.q_proj"
    assert (
        tag("grad_norm", "encoder.layer.3.attention.q") == "grad_norm/encoder.layer.3/attention.q"
    )
    assert tag("weight_norm", "head") == "weight_norm/head"
    assert tag("loss", None) == "loss/(model)"
    assert tag("grad_norm", "blocks.2") == "grad_norm/blocks.2"  # the block itself


def test_zero_nonfinite_counts_become_one_model_series_and_nonzero_ones_stay(
    tmp_path: Path,
) -> None:
    layers = [f"model.layers.{i}.mlp.down_proj" for i in range(12)]
    sink = TensorBoardSink(tmp_path)
    for step in (1, 2):
        rows = [Row(step, layer, "grad_norm", 1.0) for layer in layers]
        rows += [Row(step, layer, m, 0.0) for layer in layers for m in NONFINITE]
        if step == 2:  # one layer's gradient has 3 NaN entries at step 2
            rows[-1] = Row(step, layers[-1], "weight_nonfinite", 3.0)
        sink.write(step, rows)
    sink.close()
    tags = set(_events(tmp_path).Tags()["scalars"])
    nonfinite = {t for t in tags if "nonfinite" in t}
    assert nonfinite == {
        "grad_nonfinite/(model)",
        "weight_nonfinite/(model)",
        "weight_nonfinite/model.layers.11/mlp.down_proj",
    }
    assert len(tags) == 12 + 3  # was 12 * 3 before: 24 series of zeros are gone
    model = _events(tmp_path).Scalars("weight_nonfinite/(model)")
    assert [(e.step, e.value) for e in model] == [(1, 0.0), (2, 3.0)]


def test_findings_are_written_as_text(tmp_path: Path) -> None:
    sink = TensorBoardSink(tmp_path)
    found = Finding(
        severity="warning",
        layer="model.layers.0.self_attn.q_proj",
        metric="grad_norm",
        value=1e-9,
        threshold=1e-7,
        message="Gradients vanish here.",
        fix="stabletrain.auto_init(model, x)",
        rule="vanishing",
        step=5,
        last_step=5,
    )
    sink.write_findings(5, [found])
    sink.write_findings(6, [])  # nothing fired: nothing written
    sink.close()
    events = _events(tmp_path)
    assert events.Tags()["tensors"] == ["findings/text_summary"]
    (entry,) = events.Tensors("findings/text_summary")
    text = entry.tensor_proto.string_val[0].decode()
    assert entry.step == 5
    assert "`model.layers.0.self_attn.q_proj`" in text
    assert "Gradients vanish here." in text
    assert "stabletrain.auto_init(model, x)" in text


def test_an_existing_writer_can_be_passed_in_place_of_a_folder(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    sink = TensorBoardSink(writer)
    sink.write(1, [Row(1, None, "loss", 0.5)])
    sink.close()
    writer.add_scalar("after", 1.0, 2)  # still open: its owner closes it
    writer.close()
    assert len(list(tmp_path.glob("events.out.tfevents*"))) == 1
    assert {"loss/(model)", "after"} <= set(_events(tmp_path).Tags()["scalars"])
    with pytest.raises(TypeError, match="SummaryWriter"):
        TensorBoardSink(42)  # type: ignore[arg-type]
