"""decouple_weight_decay: AdamW's steps from Adam, claims R1 and R2, hooks really removed.

Trajectories are compared in float64 over 60 steps; "equal" means within rtol 1e-12 and atol
1e-14 (identical arithmetic gives bit-equal results; the tolerance only absorbs a different
order of the same floating-point operations).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn

from stabletrain.regularization.decoupled import DecoupledWeightDecay, decouple_weight_decay
from stabletrain.regularization.param_groups import param_groups

STEPS = 60
LAM = 0.1
EQUAL = {"rtol": 1e-12, "atol": 1e-14}

MakeOpt = Callable[[nn.Module], torch.optim.Optimizer]
MakeSched = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler] | None


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 3)).double()


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(32, 6, generator=g, dtype=torch.float64), torch.randn(
        32, 3, generator=g, dtype=torch.float64
    )


def _train(
    make_opt: MakeOpt,
    *,
    decouple: bool = False,
    sched: MakeSched = None,
    steps: int = STEPS,
    model: nn.Module | None = None,
    closure: str | None = None,
) -> list[list[torch.Tensor]]:
    """Parameters after every step of full-batch MSE training. ``closure``: None (backward,
    then ``step()``), ``"positional"`` or ``"keyword"`` (``step(closure)``, then ``zero_grad()``,
    so every gradient is None when ``step`` starts)."""
    model = model or _model()
    opt = make_opt(model)
    scheduler = sched(opt) if sched else None
    handle = decouple_weight_decay(opt) if decouple else None
    x, y = _data()

    def loss_and_grad() -> torch.Tensor:
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    trajectory = []
    for _ in range(steps):
        if closure is None:
            opt.zero_grad()
            loss_and_grad()
            opt.step()
        else:
            if closure == "positional":
                opt.step(loss_and_grad)
            else:
                opt.step(closure=loss_and_grad)
            opt.zero_grad()
        if scheduler is not None:
            scheduler.step()
        trajectory.append([p.detach().clone() for p in model.parameters()])
    if handle is not None:
        handle.remove()
    return trajectory


def _assert_same(a: list[list[torch.Tensor]], b: list[list[torch.Tensor]]) -> None:
    for step, (pa, pb) in enumerate(zip(a, b, strict=True)):
        for i, (x, y) in enumerate(zip(pa, pb, strict=True)):
            torch.testing.assert_close(x, y, **EQUAL, msg=f"step {step}, parameter {i}")


def _distance(a: list[list[torch.Tensor]], b: list[list[torch.Tensor]]) -> float:
    """Largest |Δθ| at the last step, relative to the largest |θ|."""
    diff = max(float((x - y).abs().max()) for x, y in zip(a[-1], b[-1], strict=True))
    return diff / max(float(x.abs().max()) for x in a[-1])


def _cosine(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS, eta_min=1e-4)


@pytest.mark.parametrize("foreach", [False, True])
def test_adam_plus_decoupled_decay_takes_the_steps_of_adamw(foreach: bool) -> None:
    adam = _train(
        lambda m: torch.optim.Adam(m.parameters(), 1e-2, weight_decay=LAM, foreach=foreach),
        decouple=True,
    )
    adamw = _train(
        lambda m: torch.optim.AdamW(m.parameters(), 1e-2, weight_decay=LAM, foreach=foreach)
    )
    _assert_same(adam, adamw)
    moved = _distance(
        adamw, _train(lambda m: torch.optim.AdamW(m.parameters(), 1e-2, weight_decay=0.0))
    )
    assert moved > 1e-3  # the decay did something: the equality is not trivial


@pytest.mark.parametrize("closure", [None, "positional", "keyword"])
def test_adam_plus_decoupled_decay_takes_the_steps_of_adamw_with_or_without_a_closure(
    closure: str | None,
) -> None:
    """``step(closure); zero_grad()``: the gradients exist only once the closure ran, so the
    decay must come after it (it used to run before, on no parameter at all)."""
    adam = _train(
        lambda m: torch.optim.Adam(m.parameters(), 1e-2, weight_decay=LAM),
        decouple=True,
        closure=closure,
    )
    adamw = _train(
        lambda m: torch.optim.AdamW(m.parameters(), 1e-2, weight_decay=LAM), closure=closure
    )
    _assert_same(adam, adamw)
    undecayed = _train(lambda m: torch.optim.Adam(m.parameters(), 1e-2), closure=closure)
    assert _distance(adam, undecayed) > 1e-3  # the decay did something: the test can fail


def test_a_closure_called_several_times_per_step_is_followed_by_one_decay() -> None:
    """An optimizer that evaluates its closure three times per step (as LBFGS may) and
    updates nothing: the only change is one decay, θ·(1 − lr·λ), after the first call."""

    class ThreeCalls(torch.optim.Optimizer):
        def __init__(self, params: list[torch.Tensor]) -> None:
            super().__init__(params, {"lr": 0.5, "weight_decay": 0.1})

        def step(self, closure: Callable[[], object] | None = None) -> None:  # type: ignore[override]
            assert closure is not None
            for _ in range(3):
                closure()

    w = nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = ThreeCalls([w])
    calls = []

    def closure() -> torch.Tensor:
        calls.append(w.detach().clone())
        loss = w.sum()
        loss.backward()
        return loss

    with decouple_weight_decay(opt):
        opt.step(closure)
    assert len(calls) == 3
    assert torch.equal(calls[0], torch.ones(3, dtype=torch.float64))  # before the decay
    torch.testing.assert_close(w.detach(), torch.full((3,), 1 - 0.5 * 0.1, dtype=torch.float64))


def test_adam_on_param_groups_with_a_no_decay_group_and_a_scheduler_equals_adamw() -> None:
    """Two groups (weights λ, biases and norms 0) and a cosine schedule changing lr every step."""

    def groups(m: nn.Module) -> list[dict[str, object]]:
        built = param_groups(m, LAM)
        assert [g["weight_decay"] for g in built] == [LAM, 0.0]
        return built

    adam = _train(lambda m: torch.optim.Adam(groups(m), 1e-2), decouple=True, sched=_cosine)
    adamw = _train(lambda m: torch.optim.AdamW(groups(m), 1e-2), sched=_cosine)
    _assert_same(adam, adamw)


def test_a_tensor_learning_rate_is_used_as_a_tensor_and_matches_adamw() -> None:
    def make(cls: type[torch.optim.Adam]) -> MakeOpt:
        return lambda m: cls(m.parameters(), lr=torch.tensor(1e-2), weight_decay=LAM, foreach=False)

    _assert_same(_train(make(torch.optim.Adam), decouple=True), _train(make(torch.optim.AdamW)))


def test_the_schedule_scaling_decays_by_lr_over_initial_lr_times_lambda() -> None:
    """θ ← θ·(1 − (η_t/η_0)·λ) then Adam without decay: a slow reference loop, λ = 1e-3."""
    lam = 1e-3
    model = _model()
    opt = torch.optim.Adam(model.parameters(), 1e-2, weight_decay=lam)
    sched = _cosine(opt)
    handle = decouple_weight_decay(opt, scaling="schedule")
    reference = _model()
    ref_opt = torch.optim.Adam(reference.parameters(), 1e-2)
    ref_sched = _cosine(ref_opt)
    x, y = _data()
    for _ in range(STEPS):
        for m, o in ((model, opt), (reference, ref_opt)):
            o.zero_grad()
            nn.functional.mse_loss(m(x), y).backward()
        with torch.no_grad():
            for p in reference.parameters():
                p.mul_(1 - ref_opt.param_groups[0]["lr"] / 1e-2 * lam)
        opt.step()
        ref_opt.step()
        sched.step()
        ref_sched.step()
    handle.remove()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, **EQUAL)


def test_adam_with_coupled_l2_differs_measurably_from_adamw_claim_r2() -> None:
    """Same λ, lr and data: the L2 gradient λθ is rescaled by Adam's 1/√v̂, AdamW's decay not."""
    l2 = _train(lambda m: torch.optim.Adam(m.parameters(), 1e-2, weight_decay=LAM))
    adamw = _train(lambda m: torch.optim.AdamW(m.parameters(), 1e-2, weight_decay=LAM))
    decoupled = _train(
        lambda m: torch.optim.Adam(m.parameters(), 1e-2, weight_decay=LAM), decouple=True
    )
    assert _distance(l2, adamw) > 0.05  # measured 1.9 (‖θ‖: 2.4 with L2, 6.5 with AdamW)
    assert _distance(decoupled, adamw) < 1e-12


def test_sgd_without_momentum_decoupled_equals_coupled_weight_decay_claim_r1() -> None:
    """θ − η(g + λθ) = θ(1 − ηλ) − ηg: identical steps up to the order of the operations."""
    coupled = _train(lambda m: torch.optim.SGD(m.parameters(), 0.1, weight_decay=LAM))
    decoupled = _train(
        lambda m: torch.optim.SGD(m.parameters(), 0.1, weight_decay=LAM), decouple=True
    )
    _assert_same(coupled, decoupled)
    assert _distance(coupled, _train(lambda m: torch.optim.SGD(m.parameters(), 0.1))) > 1e-2


def test_sgd_with_momentum_decoupled_differs_from_coupled_weight_decay() -> None:
    """With momentum the coupled λθ accumulates in the buffer (a decay ~ λ/(1 − μ) per step),
    the decoupled one does not: the two are different regularizers."""
    kwargs = {"lr": 0.05, "momentum": 0.9, "weight_decay": LAM}
    coupled = _train(lambda m: torch.optim.SGD(m.parameters(), **kwargs))
    decoupled = _train(lambda m: torch.optim.SGD(m.parameters(), **kwargs), decouple=True)
    assert _distance(coupled, decoupled) > 0.05  # measured 2.4


def test_weight_decay_given_in_the_call_applies_to_every_group_and_is_undone_on_remove() -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    handle = decouple_weight_decay(opt, LAM)
    assert opt.param_groups[0]["weight_decay"] == LAM
    handle.remove()
    assert opt.param_groups[0]["weight_decay"] == 0.0

    def decoupled(m: nn.Module) -> torch.optim.Optimizer:
        opt = torch.optim.Adam(m.parameters(), 1e-2)
        decouple_weight_decay(opt, LAM)
        return opt

    _assert_same(
        _train(decoupled, steps=20),
        _train(lambda m: torch.optim.AdamW(m.parameters(), 1e-2, weight_decay=LAM), steps=20),
    )


def test_parameters_without_a_gradient_are_not_decayed_like_adamw() -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), 1e-2, weight_decay=LAM)
    with decouple_weight_decay(opt):
        before = [p.detach().clone() for p in model.parameters()]
        x, _ = _data()
        model[0](x).sum().backward()  # only the first layer gets gradients
        opt.step()
    after = list(model.parameters())
    assert not torch.equal(before[0], after[0])
    for b, a in zip(before[2:], after[2:], strict=True):
        assert torch.equal(b, a)


def test_state_dict_round_trip_resumes_the_same_trajectory() -> None:
    """20 steps, save, load into a fresh Adam (decoupled again), 20 more == 40 AdamW steps."""
    x, y = _data()
    reference = _train(lambda m: torch.optim.AdamW(param_groups(m, LAM), 1e-2), steps=40)
    model = _model()
    opt = torch.optim.Adam(param_groups(model, LAM), 1e-2)
    with decouple_weight_decay(opt):
        for _ in range(20):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        saved = copy.deepcopy(opt.state_dict())
    assert [g["weight_decay"] for g in saved["param_groups"]] == [LAM, 0.0]  # the true λ
    resumed = copy.deepcopy(model)
    opt2 = torch.optim.Adam(param_groups(resumed, 0.5), 1e-2)  # λ comes from the save
    opt2.load_state_dict(saved)
    with decouple_weight_decay(opt2):
        for _ in range(20):
            opt2.zero_grad()
            nn.functional.mse_loss(resumed(x), y).backward()
            opt2.step()
    for a, b in zip(resumed.parameters(), reference[-1], strict=True):
        torch.testing.assert_close(a.detach(), b, **EQUAL)


def test_remove_really_removes_the_hooks_and_restores_coupled_decay() -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), 1e-2, weight_decay=LAM)
    handle = decouple_weight_decay(opt)
    assert isinstance(handle, DecoupledWeightDecay)
    assert handle.active
    assert len(opt._optimizer_step_pre_hooks) == 1
    assert len(opt._optimizer_step_post_hooks) == 1
    handle.remove()
    handle.remove()  # idempotent
    assert not handle.active
    assert not opt._optimizer_step_pre_hooks
    assert not opt._optimizer_step_post_hooks
    # the same optimizer now takes exactly the steps of Adam with coupled L2
    reference = _train(lambda m: torch.optim.Adam(m.parameters(), 1e-2, weight_decay=LAM), steps=5)
    _assert_same(_train(lambda m: opt, steps=5, model=model), reference)


def test_a_with_block_removes_the_hooks_even_when_it_raises() -> None:
    opt = torch.optim.Adam(_model().parameters(), 1e-2, weight_decay=LAM)
    with pytest.raises(RuntimeError, match="boom"), decouple_weight_decay(opt):
        raise RuntimeError("boom")
    assert not opt._optimizer_step_pre_hooks
    assert not opt._optimizer_step_post_hooks
    assert opt.param_groups[0]["weight_decay"] == LAM


def test_a_step_that_raises_gets_its_lambda_back_at_the_next_step_or_on_remove() -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), 1e-2, weight_decay=LAM)

    def failing_closure() -> torch.Tensor:
        raise RuntimeError("closure failed")

    with decouple_weight_decay(opt):
        with pytest.raises(RuntimeError, match="closure failed"):
            opt.step(failing_closure)
        x, y = _data()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()  # takes λ back first, then sets it aside again
        assert opt.param_groups[0]["weight_decay"] == LAM
        with pytest.raises(RuntimeError, match="closure failed"):
            opt.step(failing_closure)
    assert opt.param_groups[0]["weight_decay"] == LAM


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.AdamW(ps),
        lambda ps: torch.optim.Adam(ps, weight_decay=0.1, decoupled_weight_decay=True),
        lambda ps: torch.optim.NAdam(ps, weight_decay=0.1, decoupled_weight_decay=True),
        lambda ps: torch.optim.Adafactor(ps),
    ],
    ids=["AdamW", "Adam-decoupled", "NAdam-decoupled", "Adafactor"],
)
def test_optimizers_that_already_decouple_are_refused_to_avoid_double_decay(
    make: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
) -> None:
    opt = make(list(_model().parameters()))
    with pytest.raises(ValueError, match="decay twice"):
        decouple_weight_decay(opt)
    assert not opt._optimizer_step_pre_hooks


def test_group_dicts_reused_from_an_adamw_are_named_as_the_cause() -> None:
    groups = [{"params": list(_model().parameters()), "weight_decay": 0.1}]
    torch.optim.AdamW(groups, lr=1e-3)  # writes decoupled_weight_decay=True into the dict
    opt = torch.optim.Adam(groups, lr=1e-3)
    with pytest.raises(ValueError, match=r"same group dicts were passed to torch\.optim\.AdamW"):
        decouple_weight_decay(opt)
    fresh = torch.optim.Adam([{"params": list(_model().parameters()), "weight_decay": 0.1}])
    decouple_weight_decay(fresh).remove()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda opt: decouple_weight_decay(_model(), 0.1), TypeError, "torch.optim.Optimizer"),
        (lambda opt: decouple_weight_decay(opt, -0.1), ValueError, "weight_decay must be >= 0"),
        (lambda opt: decouple_weight_decay(opt, scaling="lr_max"), ValueError, "unknown scaling"),
        (lambda opt: decouple_weight_decay(opt, 0.01), ValueError, "set their own"),
    ],
)
def test_bad_arguments_raise_clear_errors(
    call: Callable[[torch.optim.Optimizer], object], error: type[Exception], match: str
) -> None:
    opt = torch.optim.Adam(param_groups(_model(), LAM), 1e-2)
    with pytest.raises(error, match=match):
        call(opt)
    assert not opt._optimizer_step_pre_hooks


def test_a_negative_group_lambda_is_refused() -> None:
    opt = torch.optim.SGD(_model().parameters(), 0.1)
    opt.param_groups[0]["weight_decay"] = -0.5
    with pytest.raises(ValueError, match=r"'weight_decay'.*must be >= 0"):
        decouple_weight_decay(opt)


def test_a_group_mixing_dtypes_is_decayed_per_dtype_like_adamw() -> None:
    def mixed(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(6, 16).double(), nn.Linear(16, 3).float())

    def train(make: MakeOpt, decouple: bool) -> list[torch.Tensor]:
        model = mixed(0)
        opt = make(model)
        handle = decouple_weight_decay(opt) if decouple else None
        x = torch.randn(8, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        for _ in range(10):
            opt.zero_grad()
            model[1](model[0](x).float()).pow(2).mean().backward()
            opt.step()
        if handle is not None:
            handle.remove()
        return [p.detach() for p in model.parameters()]

    adam = train(lambda m: torch.optim.Adam(m.parameters(), 1e-2, weight_decay=LAM), True)
    adamw = train(lambda m: torch.optim.AdamW(m.parameters(), 1e-2, weight_decay=LAM), False)
    for a, b in zip(adam, adamw, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # the same arithmetic, bit for bit


def test_an_optimizer_without_weight_decay_gets_the_call_lambda_and_loses_it_on_remove() -> None:
    """Rprop has no weight_decay of its own: the call adds the key, remove() takes it away."""
    model = _model()
    opt = torch.optim.Rprop(model.parameters(), lr=1e-2)
    with decouple_weight_decay(opt, LAM):
        assert opt.param_groups[0]["weight_decay"] == LAM
        before = [p.detach().clone() for p in model.parameters()]
        x, y = _data()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    assert "weight_decay" not in opt.param_groups[0]
    for b, p in zip(before, model.parameters(), strict=True):
        step = p.detach() - b * (1 - 1e-2 * LAM)
        torch.testing.assert_close(step.abs(), torch.full_like(b, 1e-2), **EQUAL)  # first: ±lr
