"""Memory sink: series, last values, and an optional bound on what it keeps."""

from __future__ import annotations

import pytest
from torch import nn

from stabletrain.findings import Finding
from stabletrain.monitoring import MemorySink, Row, TrainingMonitor, every
from stabletrain.monitoring.sinks import Histogram


def test_series_and_last_read_one_metric_of_one_layer() -> None:
    sink = MemorySink()
    for step in (1, 2):
        sink.write(
            step, [Row(step, "fc", "grad_norm", step / 10), Row(step, None, "grad_norm", 9.0)]
        )
    assert sink.series("grad_norm", "fc") == [(1, 0.1), (2, 0.2)]
    assert sink.last("grad_norm") == 9.0
    with pytest.raises(KeyError, match="act_std"):
        sink.last("act_std", "fc")


def test_max_rows_keeps_only_the_most_recent() -> None:
    sink = MemorySink(max_rows=3)
    for step in range(1, 6):
        sink.write(step, [Row(step, "fc", "loss", float(step))])
    assert [r.step for r in sink.rows] == [3, 4, 5]
    sink.clear()
    assert not sink.rows


def test_histograms_follow_their_schedule() -> None:
    sink = MemorySink(histograms=every(3))
    assert [s for s in range(1, 7) if sink.wants_histograms(s)] == [3, 6]
    h = Histogram(3, "fc", "weight", 0.0, 1.0, (1.0,), 1, 0.5, 0.25)
    sink.write_histograms(3, [h])
    assert list(sink.histograms) == [h]


def test_a_bad_bound_raises() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        MemorySink(max_rows=0)


def test_findings_are_kept_and_cleared() -> None:
    sink = MemorySink()
    f = Finding(
        severity="info",
        layer=None,
        metric="loss",
        value=1.0,
        threshold=0.0,
        message="plateau",
        fix="lr",
        rule="loss_plateau",
        step=5,
        last_step=5,
    )
    sink.write_findings(5, [f])
    assert list(sink.findings) == [f]
    sink.clear()
    assert not sink.findings


def test_the_monitor_hands_its_meta_to_every_sink_on_entry() -> None:
    sink = MemorySink()
    model = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1))
    with TrainingMonitor(model, preset="minimal", sinks=[sink], summary=False):
        assert sink.meta is not None
    assert sink.meta["preset"] == "minimal"
    # the norm is no weight layer: depth None, so the depth rules skip it
    assert sink.meta["layers"] == [
        {"name": "0", "depth": 0},
        {"name": "1", "depth": None},
        {"name": "2", "depth": 1},
    ]
