"""The monitor watches the user's module and optimizer inside framework wrappers, and says so
when a compiled graph skips its hooks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain._wrappers import unwrap_model
from stabletrain.monitoring import MemorySink, TrainingMonitor, every
from stabletrain.monitoring._wrappers import is_compiled


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def test_data_parallel_is_unwrapped_and_the_layers_keep_their_names() -> None:
    model = mlp()
    wrapped = nn.DataParallel(model)
    assert unwrap_model(wrapped) is model
    assert not is_compiled(wrapped)
    mon = TrainingMonitor(wrapped, summary=False)
    with mon:
        pass
    assert mon.layers == ("0", "2")


def test_a_module_compiled_in_place_counts_as_compiled() -> None:
    model = mlp()
    model._compiled_call_impl = model._call_impl  # what model.compile() sets, without dynamo
    assert is_compiled(model)
    assert is_compiled(nn.DataParallel(model))


@pytest.mark.slow
def test_a_monitor_attached_after_compiled_steps_warns_that_no_activation_was_seen() -> None:
    torch.manual_seed(0)
    model = mlp()
    compiled = torch.compile(model, backend="eager")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 4), torch.randn(16, 1)

    def train_step() -> torch.Tensor:
        loss = F.mse_loss(compiled(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        train_step()  # the graph is compiled before the monitor exists
    sink = MemorySink()
    mon = TrainingMonitor(compiled, opt, schedule=every(1), sinks=[sink], summary=False)
    with mon:
        loss = train_step()
        with pytest.warns(RuntimeWarning, match="compiled"):
            mon.step(loss)  # a logged step whose forward pass the hooks never saw
        mon.step(train_step())  # warned once
        mon.step(train_step())
    assert mon.layers == ("0", "2")  # the names of the module inside
    assert not [r for r in sink.rows if r.metric == "act_mean"]
    assert len(sink.series("grad_norm", None)) == 3  # gradients are still measured
