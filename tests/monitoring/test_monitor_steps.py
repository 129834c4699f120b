"""The monitor counts optimizer steps, not calls: accumulation, skipped steps, framework steps."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import stabletrain as st
from stabletrain.monitoring import MemorySink, TrainingMonitor, every


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))


def batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 8, generator=g), torch.randn(16, 1, generator=g)) for _ in range(n)]


def barely_learns(mon: TrainingMonitor) -> list[str]:
    return [f"{f.layer}: {f.message}" for f in mon.findings() if "barely learns" in f.message]


def test_accumulated_micro_batches_make_one_step_with_their_mean_loss() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sink = MemorySink()
    losses = []
    with TrainingMonitor(model, opt, schedule=every(1), sinks=[sink], summary=False) as mon:
        for i, (x, y) in enumerate(batches(32), start=1):
            loss = F.mse_loss(model(x), y)
            (loss / 2).backward()
            losses.append(loss.item())
            if i % 2 == 0:
                opt.step()
                opt.zero_grad()
            mon.step(loss)  # every micro-batch, as the loop does
    assert mon.steps == 16
    assert [s for s, _ in sink.series("loss", None)] == list(range(1, 17))
    want = [(a + b) / 2 for a, b in zip(losses[::2], losses[1::2], strict=True)]
    assert [v for _, v in sink.series("loss", None)] == pytest.approx(want, rel=1e-12)
    assert barely_learns(mon) == []
    assert len(sink.series("update_ratio", "0")) == 16  # every step, none between micro-batches


def test_a_framework_step_number_aligns_the_rows_and_merges_micro_batches() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sink = MemorySink()
    global_step = 0
    with TrainingMonitor(model, schedule=every(1), sinks=[sink], summary=False) as mon:
        for i, (x, y) in enumerate(batches(12), start=1):
            loss = F.mse_loss(model(x), y)
            loss.backward()
            if i % 3 == 0:
                opt.step()
                opt.zero_grad()
                global_step += 1
            mon.step(loss, step=global_step)
        with pytest.raises(ValueError, match="goes back"):
            mon.step(loss, step=1)
        with pytest.raises(TypeError, match="step must be an int"):
            mon.step(loss, step=2.0)  # type: ignore[arg-type]
    assert mon.steps == 4
    assert [s for s, _ in sink.series("loss", None)] == [1, 2, 3, 4]
    assert barely_learns(mon) == []


def test_steps_the_guard_skipped_never_read_as_barely_learning() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    guard = st.StepGuard(opt, max_norm=1.0)
    sink = MemorySink()
    with TrainingMonitor(
        model, opt, schedule=every(1), sinks=[sink], guard=guard, summary=False
    ) as mon:
        for i, (x, y) in enumerate(batches(10), start=1):
            loss = F.mse_loss(model(x), y)
            if i in (4, 7):
                loss = loss * math.inf  # a non-finite loss: the guard skips the step
            loss.backward()
            guard.step(loss)
            opt.zero_grad()
            mon.step(loss)
    assert mon.steps == 10
    assert guard.skipped_steps == 2
    assert sink.last("skipped_steps") == 2
    assert {s for s, _ in sink.series("update_ratio", "0")}.isdisjoint({4, 7})
    assert barely_learns(mon) == []


def test_a_step_that_changed_no_weight_reports_no_update_ratio() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sink = MemorySink()
    with TrainingMonitor(model, schedule=every(1), sinks=[sink], summary=False) as mon:
        for i, (x, y) in enumerate(batches(6), start=1):
            loss = F.mse_loss(model(x), y)
            loss.backward()
            if i != 4:  # step 4: skipped without the monitor knowing (a GradScaler's skip)
                opt.step()
            opt.zero_grad()
            mon.step(loss)
    assert [s for s, _ in sink.series("update_ratio", "0")] == [1, 2, 3, 5, 6]
    assert barely_learns(mon) == []


def test_start_and_close_work_like_the_with_block() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mon = TrainingMonitor(model, opt, schedule=every(1), summary=False)
    with pytest.raises(RuntimeError, match="start"):
        mon.step(1.0)
    assert mon.start() is mon
    x, y = batches(1)[0]
    F.mse_loss(model(x), y).backward()
    opt.step()
    mon.step(1.0)
    mon.close()
    mon.close()  # a second close does nothing
    assert mon.steps == 1
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())
    assert not opt._optimizer_step_post_hooks


def _monitor_hooks(model: torch.nn.Module) -> tuple[int, int]:
    """(forward hooks on the model's modules, post-accumulate-grad hooks on its parameters)."""
    forward = sum(len(m._forward_hooks) for m in model.modules())
    grad = sum(
        len(getattr(p, "_post_accumulate_grad_hooks", None) or {}) for p in model.parameters()
    )
    return forward, grad


def test_the_hooks_are_registered_only_for_the_steps_the_schedule_logs() -> None:
    # every(3) logs steps 3 and 6: the forward and backward of those steps run with the hooks,
    # the others with none (torch's fast path), and the rows are measured all the same
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = MemorySink()
    seen = []
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    with TrainingMonitor(model, opt, schedule=every(3), sinks=[sink], summary=False) as mon:
        for _ in range(6):
            seen.append(_monitor_hooks(model))
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    assert [f > 0 and g > 0 for f, g in seen] == [False, False, True, False, False, True]
    assert [f == g == 0 for f, g in seen] == [True, True, False, True, True, False]
    assert _monitor_hooks(model) == (0, 0)  # all removed when the block ends
    assert sink.last("dead_fraction", "0") is not None
    assert {r.step for r in sink.rows if r.metric == "grad_norm"} == {3, 6}


def test_a_compiled_submodule_keeps_the_hooks_registered() -> None:
    # adding and removing hooks around a compiled module would make Dynamo recompile it
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    model[2]._compiled_call_impl = model[2]._call_impl  # what .compile() sets, without dynamo
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with TrainingMonitor(model, opt, schedule=every(3), summary=False):
        assert _monitor_hooks(model)[1] > 0  # step 1 is not logged, the hooks stay
