"""Each preset resolves once into what the monitor measures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stabletrain.monitoring import MemorySink, Thresholds, TrainingMonitor, every, measurements
from stabletrain.monitoring.presets import PRESETS, STANDARD_SYMMETRY_ROWS


def test_each_preset_measures_more_than_the_one_before() -> None:
    t = Thresholds(symmetric_rows=100)
    minimal, standard, full = (measurements(p, t) for p in PRESETS)
    assert (minimal.activations, minimal.updates, minimal.symmetry_rows) == (False, False, 0)
    assert (standard.activations, standard.updates) == (True, True)
    assert standard.symmetry_rows == STANDARD_SYMMETRY_ROWS
    assert (full.symmetry_rows, full.symmetry_every, full.histograms) == (100, 1, True)
    assert [full.measures_symmetry(k) for k in (1, 2, 3)] == [True, True, True]
    assert [standard.measures_symmetry(k) for k in (1, 2, 11)] == [True, False, True]


@pytest.mark.parametrize("preset", PRESETS)
def test_the_monitor_measures_what_its_preset_resolves_to(preset: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = MemorySink()
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    with TrainingMonitor(
        model,
        opt,
        preset=preset,
        schedule=every(1),
        sinks=[sink],
        summary=False,  # type: ignore[arg-type]
    ) as mon:
        for _ in range(2):
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    wants = measurements(preset, Thresholds())  # type: ignore[arg-type]
    metrics = {row.metric for row in sink.rows}
    assert ("dead_fraction" in metrics) == wants.activations
    assert ("update_ratio" in metrics) == wants.updates
    assert ("max_row_cosine" in metrics) == (wants.symmetry_rows > 0)
