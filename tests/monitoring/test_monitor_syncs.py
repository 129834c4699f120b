"""No host synchronization on a step the schedule does not log, one on a step it logs: counted
on the CPU through every call that would read a device tensor on the host, and on CUDA (where a
GPU exists) with ``torch.cuda.set_sync_debug_mode``."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from stabletrain.monitoring import PRESETS, TrainingMonitor, every

READS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy", "cpu"}
"""Tensor methods that copy a device tensor to the host, and so wait for the device. (``.to``
is not counted: on the CPU the monitor's ``.to(its device)`` is a no-op, and the CUDA test
below catches a real copy to the host.)"""


class HostReads(TorchFunctionMode):
    """Counts the calls that read a tensor on the host, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in READS:
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def wide_model() -> nn.Module:
    """Parameters above the update-ratio sample size, and more activation rows than sampled."""
    return nn.Sequential(
        nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 4)
    )


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("preset", PRESETS)
def test_an_unlogged_step_reads_nothing_and_a_logged_step_reads_once(
    preset: str, exact: bool
) -> None:
    model = wide_model()
    # SGD: Adam reads its step count with .item() on the CPU, which is not the monitor's doing
    opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    x, y = torch.randn(256, 32), torch.randn(256, 4)
    reads = []
    with TrainingMonitor(
        model,
        opt,
        preset=preset,
        schedule=every(2),
        summary=False,
        exact=exact,  # type: ignore[arg-type]
    ) as mon:
        for _ in range(6):
            with HostReads() as counter:  # the whole step: forward, backward hooks, monitor
                loss = F.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.step(loss)
            reads.append(counter.calls)
    assert reads == [[], ["tolist"], [], ["tolist"], [], ["tolist"]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("preset", PRESETS)
def test_on_cuda_an_unlogged_step_never_synchronizes_and_a_logged_step_once(preset: str) -> None:
    device = torch.device("cuda")
    model = wide_model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(256, 32, device=device), torch.randn(256, 4, device=device)
    syncs = []
    with TrainingMonitor(model, opt, preset=preset, schedule=every(2), summary=False) as mon:  # type: ignore[arg-type]
        for step in range(1, 7):
            logged = step % 2 == 0
            torch.cuda.synchronize()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                # an unlogged step must not synchronize at all: any sync raises
                torch.cuda.set_sync_debug_mode("warn" if logged else "error")
                try:
                    loss = F.mse_loss(model(x), y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    mon.step(loss)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            syncs.append(sum("synchroniz" in str(w.message) for w in caught))
    assert syncs == [0, 1, 0, 1, 0, 1]
