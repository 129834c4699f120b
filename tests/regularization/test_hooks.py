"""The step hooks together: one per kind and optimizer, and the same result with a closure."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from stabletrain.regularization._hooks import OptimizerHook
from stabletrain.regularization.decoupled import decouple_weight_decay
from stabletrain.regularization.max_norm import max_norm_constraint
from stabletrain.regularization.proximal import proximal_l1

Register = Callable[[torch.optim.Optimizer, nn.Module], OptimizerHook]
HOOKS: dict[str, Register] = {
    "decouple_weight_decay": lambda opt, model: decouple_weight_decay(opt),
    "proximal_l1": lambda opt, model: proximal_l1(opt, l1=0.05),
    "max_norm_constraint": lambda opt, model: max_norm_constraint(opt, model, 0.5),
}
EQUAL = {"rtol": 0.0, "atol": 0.0}  # the same arithmetic in the same order: bit for bit


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)).double()


def _opt(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9, weight_decay=0.05)


@pytest.mark.parametrize("name", list(HOOKS))
def test_a_second_hook_of_the_same_kind_is_refused_until_the_first_is_removed(name: str) -> None:
    model = _model()
    opt = _opt(model)
    first = HOOKS[name](opt, model)
    with pytest.raises(ValueError, match=rf"{name}: this SGD already has .*remove"):
        HOOKS[name](opt, model)
    first.remove()
    second = HOOKS[name](opt, model)
    assert second.active
    other = _opt(model)  # another optimizer is another registration
    HOOKS[name](other, model).remove()
    second.remove()


def test_hooks_of_different_kinds_share_an_optimizer() -> None:
    model = _model()
    opt = _opt(model)
    handles = [register(opt, model) for register in HOOKS.values()]
    assert all(h.active for h in handles)
    for h in handles:
        h.remove()


def _trajectory(name: str, closure: bool, steps: int = 20) -> list[torch.Tensor]:
    model = _model()
    opt = _opt(model)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 5, generator=g, dtype=torch.float64)
    y = torch.randn(16, 2, generator=g, dtype=torch.float64)

    def loss_and_grad() -> torch.Tensor:
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    out = []
    with HOOKS[name](opt, model):
        for _ in range(steps):
            if closure:
                opt.step(loss_and_grad)
            else:
                loss_and_grad()
                opt.step()
            opt.zero_grad()
            out.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    return out


@pytest.mark.parametrize("name", list(HOOKS))
def test_step_with_a_closure_takes_the_same_steps_as_backward_then_step(name: str) -> None:
    with_closure, plain = _trajectory(name, closure=True), _trajectory(name, closure=False)
    for step, (a, b) in enumerate(zip(with_closure, plain, strict=True)):
        torch.testing.assert_close(a, b, **EQUAL, msg=f"step {step}")
    model = _model()
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert not torch.equal(plain[0], start)
