"""Wrapped models and optimizers: every entry point works on what the wrapper holds.

torch.compile's ``OptimizedModule`` is unwrapped to its eager module (Dynamo never traces the
recording hooks: a counting backend sees no frame), DDP/DataParallel to ``.module``, and
accelerate's / Lightning's optimizer wrappers to the optimizer whose ``step`` they call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch._dynamo.testing import CompileCounter

import stabletrain as st
from stabletrain._wrappers import unwrap_model, unwrap_optimizer
from stabletrain.diagnostics import lint
from stabletrain.graph import trace
from stabletrain.regularization import (
    decouple_weight_decay,
    max_norm_constraint,
    param_groups,
    proximal_l1,
)


def build() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 3)
    )


def compiled(model: nn.Module) -> tuple[nn.Module, CompileCounter]:
    counter = CompileCounter()
    return torch.compile(model, backend=counter), counter


def test_unwrap_model_goes_through_nested_compile_and_data_parallel() -> None:
    net = build()
    wrapped = nn.DataParallel(torch.compile(nn.DataParallel(net), backend=CompileCounter()))
    assert unwrap_model(wrapped) is net


def test_unwrap_returns_plain_models_and_optimizers_and_other_objects_as_they_are() -> None:
    net = build()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    assert unwrap_model(net) is net
    assert unwrap_optimizer(opt) is opt
    assert unwrap_model("not a model") == "not a model"  # type: ignore[arg-type]


def test_auto_init_on_a_compiled_model_runs_eager_and_equals_the_eager_init() -> None:
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    eager = build()
    net, counter = compiled(build())
    expected = st.auto_init(eager, x, generator=torch.Generator().manual_seed(2))
    report = st.auto_init(net, x, generator=torch.Generator().manual_seed(2))
    assert counter.frame_count == 0  # Dynamo compiled nothing: the hooks ran eagerly
    assert [p.name for p in report.params] == [p.name for p in expected.params]
    assert not any("_orig_mod" in p.name for p in report.params)
    for a, b in zip(eager.parameters(), net.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: st.diagnose(m, x),
        lambda m, x: lint(m, x),
        lambda m, x: trace(m, x),
        lambda m, x: st.init_residual_(m, x, "zero"),
        lambda m, x: param_groups(m, 0.1, example_input=x),
    ],
    ids=["diagnose", "lint", "trace", "init_residual_", "param_groups"],
)
def test_entry_points_never_trace_a_compiled_model_with_dynamo(
    call: Callable[[nn.Module, torch.Tensor], Any],
) -> None:
    net, counter = compiled(build())
    call(net, torch.randn(16, 8, generator=torch.Generator().manual_seed(0)))
    assert counter.frame_count == 0


def test_param_groups_of_a_compiled_model_name_parameters_without_the_prefix() -> None:
    net, _ = compiled(build())
    groups = param_groups(net, 0.1)
    names = [n for g in groups for n in g["param_names"]]
    assert names == ["0.weight", "2.weight", "4.weight", "0.bias", "2.bias", "4.bias"]


def test_lsuv_on_a_compiled_model_after_a_compiled_pass_fits_every_layer() -> None:
    net, _ = compiled(build())
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        net(x)  # the compiled graph exists; hooks on submodules would not fire inside it
    report = st.lsuv_(net, x, generator=torch.Generator().manual_seed(0))
    assert [p.name for p in report.params] == ["0.weight", "2.weight", "4.weight"]
    assert all(abs(p.output_std - 1.0) <= 0.1 for p in report.params)
    assert report.notes == []


def test_step_guard_names_parameters_of_a_compiled_model_without_the_prefix() -> None:
    net, _ = compiled(build())
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    guard = st.StepGuard(opt, model=net)
    net(torch.ones(2, 8)).sum().backward()
    unwrap_model(net).get_parameter("2.weight").grad[0, 0] = float("nan")  # type: ignore[index]
    assert guard.step().nonfinite_params == ("2.weight",)


HOOKS: dict[str, Callable[[Any, nn.Module], Any]] = {
    "decouple_weight_decay": lambda opt, model: decouple_weight_decay(opt),
    "proximal_l1": lambda opt, model: proximal_l1(opt, l1=0.05),
    "max_norm_constraint": lambda opt, model: max_norm_constraint(opt, model, 0.5),
}


def _trajectory(hook: str, wrap: Callable[[torch.optim.Optimizer], Any]) -> list[torch.Tensor]:
    model = build()
    opt = wrap(torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=0.1))
    handle = HOOKS[hook](opt, model)
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        opt.zero_grad()
        model(torch.randn(8, 8, generator=g)).pow(2).mean().backward()
        opt.step()
    handle.remove()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("hook", list(HOOKS))
def test_optimizer_hooks_on_an_accelerated_optimizer_take_the_raw_optimizers_steps(
    hook: str,
) -> None:
    accelerate = pytest.importorskip("accelerate")
    accelerator = accelerate.Accelerator(cpu=True)
    raw = _trajectory(hook, lambda opt: opt)
    wrapped = _trajectory(hook, accelerator.prepare_optimizer)
    for a, b in zip(raw, wrapped, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("hook", list(HOOKS))
def test_optimizer_hooks_on_a_lightning_optimizer_go_on_the_optimizer_it_wraps(hook: str) -> None:
    core = pytest.importorskip("lightning.pytorch.core.optimizer")
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=0.1)
    wrapped = core.LightningOptimizer(opt)
    assert unwrap_optimizer(wrapped) is opt
    with HOOKS[hook](wrapped, model) as handle:
        assert handle.optimizer is opt
        assert opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks


def test_tracing_leaves_no_global_hook_so_torch_compile_does_not_warn_afterwards() -> None:
    trace(build(), torch.randn(4, 8))
    assert not torch.nn.modules.module._has_any_global_hook()


def _guarded_trajectory(wrap: Callable[[torch.optim.Optimizer], Any]) -> list[torch.Tensor]:
    model = build()
    opt = wrap(torch.optim.SGD(model.parameters(), lr=0.1))
    guard = st.StepGuard(opt, max_norm=0.5, model=model)
    g = torch.Generator().manual_seed(4)
    for step in range(4):
        opt.zero_grad()
        model(torch.randn(8, 8, generator=g)).pow(2).mean().backward()
        if step == 2:
            unwrap_model(model).get_parameter("0.weight").grad[0, 0] = float("nan")  # type: ignore[index]
        guard.step()
    assert guard.skipped_steps == 1
    return [p.detach().clone() for p in model.parameters()]


def test_step_guard_through_an_accelerated_optimizer_takes_the_raw_optimizers_steps() -> None:
    accelerate = pytest.importorskip("accelerate")
    accelerator = accelerate.Accelerator(cpu=True)
    raw = _guarded_trajectory(lambda opt: opt)
    wrapped = _guarded_trajectory(accelerator.prepare_optimizer)
    for a, b in zip(raw, wrapped, strict=True):
        assert torch.equal(a, b)
