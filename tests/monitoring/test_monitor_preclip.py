"""The monitor logs the gradient norms of backward, before any clipping, whoever clips."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import stabletrain as st
from stabletrain.monitoring import MemorySink, Thresholds, TrainingMonitor, every

RTOL = 1e-5  # float32 norms summed in another order


def mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1)
    )


def data(scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(64, 8, generator=g) * scale, torch.randn(64, 1, generator=g)


def test_with_a_step_guard_the_logged_norm_is_the_guards_pre_clip_norm() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    guard = st.StepGuard(opt, max_norm=1.0)
    x, y = data(scale=2e4)  # the exploding run: norms far above exploding_norm
    sink = MemorySink()
    norms = []
    t = Thresholds(clip_window=4)
    with TrainingMonitor(
        model, opt, schedule=every(1), sinks=[sink], guard=guard, thresholds=t, summary=False
    ) as mon:
        for _ in range(6):
            loss = F.mse_loss(model(x), y)
            loss.backward()
            norms.append(guard.step(loss).total_norm.item())
            opt.zero_grad()
            mon.step(loss)
    logged = [v for _, v in sink.series("grad_norm", None)]
    assert logged == pytest.approx(norms, rel=RTOL)
    assert min(norms) > t.exploding_norm  # pre-clip, not the clipped 1.0
    ratios = [v for _, v in sink.series("clip_ratio", None)]
    assert ratios == pytest.approx([1.0 / n for n in norms], rel=RTOL)
    rules = {f.rule for f in mon.findings()}
    assert {"exploding", "clipping"} <= rules


@pytest.mark.parametrize(
    "clip",
    [
        lambda m: st.clip_grad_norm_(m, max_norm=0.5),
        lambda m: nn.utils.clip_grad_norm_(m.parameters(), 0.5),
    ],
    ids=["stabletrain", "torch"],
)
def test_a_clip_between_backward_and_step_leaves_the_logged_norms_pre_clip(
    clip: Callable[[nn.Module], torch.Tensor],
) -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = data(scale=10.0)
    sink = MemorySink()
    with TrainingMonitor(model, opt, schedule=every(1), sinks=[sink], summary=False) as mon:
        loss = F.mse_loss(model(x), y)
        loss.backward()
        layer = math.sqrt(sum(float(p.grad.double().square().sum()) for p in model[2].parameters()))  # type: ignore[union-attr]
        total = float(clip(model))
        opt.step()
        mon.step(loss)
    assert total > 0.5
    assert sink.last("grad_norm") == pytest.approx(total, rel=RTOL)
    assert sink.last("grad_norm", "2") == pytest.approx(layer, rel=RTOL)
    assert sink.last("clip_ratio") == pytest.approx(0.5 / total, rel=RTOL)


def test_gradients_zeroed_in_place_before_step_keep_their_norms_and_give_no_clip_ratio() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = data()
    sink = MemorySink()
    with TrainingMonitor(model, opt, schedule=every(1), sinks=[sink], summary=False) as mon:
        loss = F.mse_loss(model(x), y)
        loss.backward()
        want = math.sqrt(sum(float(p.grad.double().square().sum()) for p in model.parameters()))  # type: ignore[union-attr]
        opt.step()
        opt.zero_grad(set_to_none=False)
        mon.step(loss)
    assert sink.last("grad_norm") == pytest.approx(want, rel=RTOL)
    assert sink.series("clip_ratio", None) == []


def test_a_grad_scaler_scale_is_taken_out_of_the_measured_norms() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    guard = st.StepGuard(opt, scaler=scaler)
    x, y = data()
    sink = MemorySink()
    with TrainingMonitor(
        model, opt, schedule=every(1), sinks=[sink], guard=guard, summary=False
    ) as mon:
        for _ in range(2):
            loss = F.mse_loss(model(x), y)
            scaler.scale(loss).backward()
            norm = guard.step(loss).total_norm.item()
            opt.zero_grad()
            mon.step(loss)
    assert sink.last("grad_norm") == pytest.approx(norm, rel=RTOL)
    assert sink.last("clip_ratio") == pytest.approx(1.0, rel=RTOL)


def test_an_exploding_run_that_is_clipped_on_most_steps_reports_clipping() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = data(scale=100.0)
    with TrainingMonitor(model, opt, schedule=every(1), summary=False) as mon:
        for _ in range(12):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
            opt.step()
            mon.step(loss)
    (found,) = [f for f in mon.findings() if f.rule == "clipping"]
    assert found.value < 1e-2
    assert "100%" in found.message


def test_an_unclipped_run_has_clip_ratio_one_and_no_clipping_finding() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    x, y = data()
    sink = MemorySink()
    with TrainingMonitor(model, opt, schedule=every(1), sinks=[sink], summary=False) as mon:
        for _ in range(12):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    assert {v for _, v in sink.series("clip_ratio", None)} == {1.0}
    assert [f for f in mon.findings() if f.rule == "clipping"] == []


def test_the_clip_ratio_of_per_layer_clipping_is_exact() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = data(scale=10.0)
    sink = MemorySink()
    with TrainingMonitor(model, opt, schedule=every(1), sinks=[sink], summary=False) as mon:
        loss = F.mse_loss(model(x), y)
        loss.backward()
        before = sum(float(p.grad.double().square().sum()) for p in model.parameters())  # type: ignore[union-attr]
        st.clip_grad_norm_(model, max_norm=0.5, per_layer=True)
        after = sum(float(p.grad.double().square().sum()) for p in model.parameters())  # type: ignore[union-attr]
        opt.step()
        mon.step(loss)
    assert after < before
    assert sink.last("clip_ratio") == pytest.approx(math.sqrt(after / before), rel=RTOL)
