"""The monitor's sampled measurements against its exact ones (``exact=True``) on a large batch:
activation statistics from 64 rows per pass, weight norms and update ratios from 4096 entries
per parameter."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.monitoring import MemorySink, TrainingMonitor, every
from stabletrain.monitoring._hooks import ACTIVATION_ROWS


def half_dead_model() -> nn.Sequential:
    """A ReLU layer whose first 32 of 64 units can never be positive (weights 0, bias -1), and
    a tanh layer that saturates on about half of its outputs."""
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.Tanh())
    with torch.no_grad():
        model[0].weight[:32].zero_()
        model[0].bias[:32].fill_(-1.0)
        model[2].weight.mul_(40)
    return model


def run(exact: bool, batch: int = 2048) -> dict[tuple[int, str | None, str], float]:
    torch.manual_seed(0)
    model = half_dead_model()
    x = torch.randn(batch, 16, generator=torch.Generator().manual_seed(1))
    sink = MemorySink()
    with TrainingMonitor(
        model, preset="standard", schedule=every(1), sinks=[sink], summary=False, exact=exact
    ) as mon:
        for _ in range(3):
            loss = model(x).square().mean()
            model.zero_grad()
            loss.backward()  # no optimizer: the weights stay put, the batch is the same
            mon.step(loss)
    return {(r.step, r.layer, r.metric): r.value for r in sink.rows}


def test_activation_statistics_from_sampled_rows_are_close_to_the_whole_batch_s() -> None:
    assert ACTIVATION_ROWS < 2048
    got, want = run(exact=False), run(exact=True)
    for step in (1, 2, 3):
        # the dead units are never positive on any row; the live ones on about half of them
        assert got[(step, "0", "dead_fraction")] == want[(step, "0", "dead_fraction")] == 0.5
        # 64 rows x 64 units: standard errors of about 0.5 / sqrt(64) on the fraction, and of
        # std / sqrt(64) on the mean; 4 of them at most
        saturated = want[(step, "2", "saturation_fraction")]
        assert 0.2 < saturated < 0.8
        assert got[(step, "2", "saturation_fraction")] == pytest.approx(saturated, abs=0.25)
        for layer in ("0", "2"):
            std = want[(step, layer, "act_std")]
            mean = want[(step, layer, "act_mean")]
            assert got[(step, layer, "act_mean")] == pytest.approx(mean, abs=4 * std / 8)
            assert got[(step, layer, "act_std")] == pytest.approx(std, rel=0.25)


def test_a_batch_of_no_more_rows_than_the_sample_is_measured_whole() -> None:
    got, want = run(exact=False, batch=ACTIVATION_ROWS), run(exact=True, batch=ACTIVATION_ROWS)
    acts = [k for k in want if k[2].startswith(("act_", "dead_", "saturation_"))]
    assert acts
    for key in acts:
        assert got[key] == pytest.approx(want[key], rel=1e-6), key


def test_the_weight_sample_and_the_row_sample_leave_the_global_generator_alone() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 512), nn.ReLU(), nn.Linear(512, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(512, 16), torch.randn(512, 4)
    with TrainingMonitor(model, opt, schedule=every(1), summary=False) as mon:
        for _ in range(2):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            state = torch.random.get_rng_state()
            mon.step(loss)
            assert torch.equal(torch.random.get_rng_state(), state)
