"""Symmetric units are caught by the default preset: sampled rows in ``standard``, on the first
logged step and every ``STANDARD_SYMMETRY_EVERY`` logged steps after it."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from stabletrain import models
from stabletrain.monitoring import MemorySink, TrainingMonitor, every, metrics
from stabletrain.monitoring.presets import STANDARD_SYMMETRY_EVERY


def constant_tanh_mlp() -> nn.Module:
    """The tutorials' first lesson (claim I1): every weight 0.1, every bias 0."""
    model = models.mlp(16, 4, depth=3, width=64, activation="tanh")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.1 if p.dim() > 1 else 0.0)
    return model


def train(
    model: nn.Module,
    steps: int,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.mse_loss,
    **options: object,
) -> tuple[TrainingMonitor, MemorySink]:
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = data if data is not None else (torch.randn(128, 16), torch.randn(128, 4))
    sink = MemorySink()
    with TrainingMonitor(model, opt, sinks=[sink], summary=False, **options) as mon:  # type: ignore[arg-type]
        for _ in range(steps):
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    return mon, sink


def test_the_standard_preset_reports_constant_units_on_the_first_logged_step() -> None:
    mon, _ = train(constant_tanh_mlp(), 30)  # preset standard, every(10): first logged is 10
    found = [f for f in mon.findings() if f.rule == "symmetric_units"]
    # every layer, the head too: its inputs are identical units, so its rows stay parallel
    assert {f.layer for f in found} == {"linear1", "linear2", "linear3", "head"}
    assert all(f.step == 10 and f.value >= 0.999 for f in found)


def test_a_randomly_initialized_mlp_has_no_symmetric_units_in_standard() -> None:
    mon, sink = train(models.mlp(16, 4, depth=3, width=64, activation="tanh"), 30)
    assert not [f for f in mon.findings() if f.rule == "symmetric_units"]
    cosines = [r.value for r in sink.rows if r.metric == "max_row_cosine"]
    assert cosines
    assert max(cosines) < 0.9


def test_standard_compares_rows_on_the_first_and_every_nth_logged_step_only() -> None:
    steps = 2 * STANDARD_SYMMETRY_EVERY + 1
    _, sink = train(constant_tanh_mlp(), steps, schedule=every(1))
    measured = sorted({r.step for r in sink.rows if r.metric == "max_row_cosine"})
    assert measured == [1, 1 + STANDARD_SYMMETRY_EVERY, 1 + 2 * STANDARD_SYMMETRY_EVERY]


def test_full_compares_rows_on_every_logged_step_and_minimal_never() -> None:
    _, full = train(constant_tanh_mlp(), 4, schedule=every(1), preset="full")
    _, minimal = train(constant_tanh_mlp(), 4, schedule=every(1), preset="minimal")
    assert sorted({r.step for r in full.rows if r.metric == "max_row_cosine"}) == [1, 2, 3, 4]
    assert not [r for r in minimal.rows if r.metric == "max_row_cosine"]


def _train_2d_inputs(model: nn.Module, steps: int) -> TrainingMonitor:
    """Two input features (the tutorials' 2-D toy sets): the first layer's rows have 2 entries."""
    g = torch.Generator().manual_seed(0)
    data = torch.randn(128, 2, generator=g), torch.randint(0, 2, (128,), generator=g)
    return train(model, steps, data, F.cross_entropy, schedule=every(1), preset="full")[0]


def test_short_random_rows_parallel_by_chance_are_not_symmetric_units() -> None:
    # 64 random rows of 2 entries: some pair always points the same way to 0.999 or closer,
    # which is chance, not symmetry (timm EfficientNet-B0's SE expand conv, 48 rows of 2)
    torch.manual_seed(0)
    model = models.mlp(2, 2, depth=2, width=64, activation="relu")
    first = model.get_submodule("linear1").weight
    assert float(metrics.max_row_cosine(first)) > 0.999
    mon = _train_2d_inputs(model, 5)
    assert not [f for f in mon.findings() if f.rule == "symmetric_units"]


def test_short_identical_rows_are_still_symmetric_units() -> None:
    torch.manual_seed(0)
    model = models.mlp(2, 2, depth=2, width=64, activation="relu")
    with torch.no_grad():
        model.get_submodule("linear1").weight.fill_(0.3)  # 64 copies of one unit
    mon = _train_2d_inputs(model, 5)
    found = {f.layer for f in mon.findings() if f.rule == "symmetric_units"}
    assert "linear1" in found
