"""StepGuard: skipped steps change nothing and name the culprit, taken steps equal the plain
clip-and-step, spikes by a slow z-score reference, consecutive-skip error, GradScaler (float16)
and bfloat16 autocast on CPU, checkpoint round trip, one host read per step."""

from __future__ import annotations

import io
import math
import statistics
from typing import Any

import pytest
import torch
from torch import nn

from stabletrain.stability import ConsecutiveSkipsError, StepGuard, StepResult
from tests.stability.test_clipping import as_on_an_accelerator, host_reads  # noqa: F401

LR = 0.1


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(16, 4, generator=g), torch.randn(16, 2, generator=g)


def backward(model: nn.Module, step: int, autocast: torch.dtype | None = None) -> torch.Tensor:
    x, y = batch(step)
    with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        loss = (model(x).float() - y).pow(2).mean()
    loss.backward()
    return loss


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# --- skipping -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_nonfinite_gradient_skips_the_step_names_the_parameter_and_counts(bad: float) -> None:
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    guard = StepGuard(opt, max_norm=1.0, model=model)
    backward(model, 0)
    guard.step()  # a good step first, so Adam has state to keep
    opt.zero_grad()
    params, state = snapshot(model), {k: v.clone() for k, v in opt.state[model[2].weight].items()}
    backward(model, 1)
    model[2].weight.grad[1, 3] = bad
    result = guard.step()
    assert result == StepResult(False, result.total_norm, "nonfinite_grad", ("2.weight",))
    assert not torch.isfinite(result.total_norm)
    assert_same(snapshot(model), params)
    for key, value in opt.state[model[2].weight].items():
        assert torch.equal(value, state[key]), key
    assert all(p.grad is None for p in model.parameters())
    assert (guard.skipped_steps, guard.consecutive_skips, guard.steps) == (1, 1, 2)
    assert guard.last_skip_reason == "nonfinite_grad"
    last = guard.last_total_norm
    assert last is not None
    assert not torch.isfinite(last)


def test_without_a_model_parameters_are_named_by_position() -> None:
    model = mlp()
    guard = StepGuard(torch.optim.SGD(model.parameters(), lr=LR))
    backward(model, 0)
    model[2].bias.grad[0] = math.nan
    assert guard.step().nonfinite_params == ("param_groups[0][3]",)


def test_a_nonfinite_loss_skips_even_with_finite_gradients() -> None:
    model = mlp()
    guard = StepGuard(torch.optim.SGD(model.parameters(), lr=LR))
    params = snapshot(model)
    backward(model, 0)
    result = guard.step(loss=math.inf)
    assert (result.stepped, result.reason, result.nonfinite_params) == (
        False,
        "nonfinite_loss",
        (),
    )
    assert_same(snapshot(model), params)


@pytest.mark.parametrize("max_norm", [None, 0.05])
def test_a_taken_step_equals_torch_clip_then_step(max_norm: float | None) -> None:
    ours, ref = mlp(), mlp()
    opt = torch.optim.AdamW(ours.parameters(), lr=LR)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=LR)
    guard = StepGuard(opt, max_norm=max_norm)
    for step in range(3):
        opt.zero_grad()
        ref_opt.zero_grad()
        backward(ours, step)
        backward(ref, step)
        result = guard.step()
        norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm or math.inf)
        ref_opt.step()
        assert result.stepped
        assert result.reason is None
        torch.testing.assert_close(result.total_norm, norm, rtol=1e-6, atol=0)
        for (name, p), q in zip(ours.named_parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7, msg=name)
    assert guard.skipped_steps == 0
    assert guard.last_skip_reason is None


def test_the_scheduler_steps_with_the_optimizer_and_never_on_a_skip() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    guard = StepGuard(opt, scheduler=scheduler)
    backward(model, 0)
    guard.step()
    assert scheduler.last_epoch == 1
    assert opt.param_groups[0]["lr"] == pytest.approx(LR / 2)
    backward(model, 1)
    model[0].weight.grad[0, 0] = math.nan
    guard.step()
    assert scheduler.last_epoch == 1
    assert opt.param_groups[0]["lr"] == pytest.approx(LR / 2)


def test_consecutive_skips_raise_a_runtime_error_that_says_what_to_do() -> None:
    model = mlp()
    guard = StepGuard(
        torch.optim.SGD(model.parameters(), lr=LR), max_consecutive_skips=3, model=model
    )
    for step in range(2):
        backward(model, step)
        model[0].bias.grad[2] = math.nan
        assert not guard.step().stepped
    backward(model, 2)
    assert guard.step().stepped  # a good step resets the run of skips
    assert guard.consecutive_skips == 0
    for step in range(2):
        backward(model, step)
        model[0].bias.grad[2] = math.nan
        guard.step()
    backward(model, 5)
    model[0].bias.grad[2] = math.nan
    with pytest.raises(ConsecutiveSkipsError, match=r"3 optimizer steps skipped in a row") as info:
        guard.step()
    error = info.value
    assert isinstance(error, RuntimeError)
    assert (error.consecutive_skips, error.reason, error.nonfinite_params) == (
        3,
        "nonfinite_grad",
        ("0.bias",),
    )
    assert "0.bias" in str(error)
    assert "set_detect_anomaly" in str(error)
    assert guard.skipped_steps == 5


def overflowing(model: nn.Sequential, value: float = 1e19) -> float:
    """Give model[0].weight finite gradient entries of ``value`` (their squares sum past
    float32's largest number) and small ones elsewhere; return the exact norm (float64)."""
    backward(model, 0)
    model[0].weight.grad.fill_(value)
    grads = [p.grad.double().flatten() for p in model.parameters()]
    exact = float(torch.linalg.vector_norm(torch.cat(grads)))
    fast = torch.linalg.vector_norm(model[0].weight.grad)
    assert not torch.isfinite(fast)  # the plain float32 norm overflows: the test can fail
    return exact


def test_finite_gradients_whose_norm_overflows_are_clipped_with_the_exact_norm_and_stepped() -> (
    None
):
    model = mlp()
    before = snapshot(model)
    guard = StepGuard(torch.optim.SGD(model.parameters(), lr=1.0), max_norm=1.0, model=model)
    exact = overflowing(model)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    result = guard.step()
    assert (result.stepped, result.reason, result.nonfinite_params) == (True, None, ())
    torch.testing.assert_close(result.total_norm.double(), torch.tensor(exact, dtype=torch.float64))
    for name, p in model.named_parameters():  # one SGD step with the gradients scaled to norm 1
        expected = before[name] - grads[name] / exact
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-7, msg=name)
    assert guard.skipped_steps == 0


def test_finite_gradients_whose_norm_overflows_are_skipped_as_norm_overflow_without_max_norm() -> (
    None
):
    model = mlp()
    before = snapshot(model)
    guard = StepGuard(torch.optim.SGD(model.parameters(), lr=1.0), model=model)
    exact = overflowing(model)
    result = guard.step()
    assert (result.stepped, result.reason, result.nonfinite_params) == (False, "norm_overflow", ())
    assert float(result.total_norm) == pytest.approx(exact, rel=1e-6)
    assert_same(snapshot(model), before)


def test_a_norm_beyond_float32_even_when_computed_exactly_is_skipped_as_norm_overflow() -> None:
    model = mlp()
    guard = StepGuard(torch.optim.SGD(model.parameters(), lr=1.0), max_norm=1.0, model=model)
    overflowing(model, 3e38)  # 32 entries of 3e38: the norm is 1.7e39
    result = guard.step()
    assert (result.stepped, result.reason, result.nonfinite_params) == (False, "norm_overflow", ())
    assert torch.isposinf(result.total_norm)


def test_a_nan_beside_an_overflowing_gradient_names_only_the_nonfinite_parameter() -> None:
    model = mlp()
    guard = StepGuard(torch.optim.SGD(model.parameters(), lr=1.0), max_norm=1.0, model=model)
    overflowing(model)
    model[2].weight.grad[0, 0] = math.inf
    result = guard.step()
    assert (result.stepped, result.reason, result.nonfinite_params) == (
        False,
        "nonfinite_grad",
        ("2.weight",),
    )


def test_no_gradients_is_a_step_with_norm_zero() -> None:
    model = mlp()
    result = StepGuard(torch.optim.SGD(model.parameters(), lr=LR)).step()
    assert result.stepped
    assert result.total_norm.item() == 0.0


# --- spikes -------------------------------------------------------------------------------------


def ref_is_spike(history: list[float], x: float, threshold: float, min_history: int) -> bool:
    """The robust rule in plain Python: z of log x against the median and 1.4826·MAD of the
    logs, the scale at least 0.01, one-sided."""
    if len(history) < min_history:
        return False
    logs = [math.log(v) for v in history]
    center = statistics.median(logs)
    mad = statistics.median([abs(v - center) for v in logs])
    return (math.log(x) - center) / max(1.4826 * mad, 0.01) > threshold


def test_spike_decisions_follow_the_reference_zscore_over_the_window() -> None:
    model = mlp()
    window, threshold, min_history = 5, 3.0, 3
    guard = StepGuard(
        torch.optim.SGD(model.parameters(), lr=0.0),  # lr 0: the gradients repeat
        spike_zscore=threshold,
        spike_on=("loss",),
        window=window,
        min_history=min_history,
    )
    g = torch.Generator().manual_seed(0)
    losses = (1.0 + 0.05 * torch.randn(40, generator=g)).tolist()
    losses[12] = losses[25] = 2.0
    losses[30:33] = [1.3, 1.3, 1.3]
    accepted: list[float] = []
    decisions = []
    for loss in losses:
        backward(model, 0)
        spike = ref_is_spike(accepted[-window:], loss, threshold, min_history)
        decisions.append(spike)
        result = guard.step(torch.tensor(loss))
        assert result.stepped == (not spike)
        assert result.reason == ("loss_spike" if spike else None)
        if not spike:
            accepted.append(loss)
    assert decisions[12]  # the test can fail
    assert decisions[25]
    assert sum(decisions) >= 3
    assert not any(decisions[:min_history])


def test_a_gradient_norm_spike_is_skipped_and_kept_out_of_the_window() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    guard = StepGuard(opt, spike_zscore=6.0, min_history=3)
    for step in range(6):
        backward(model, step)
        assert guard.step().stepped
    backward(model, 6)
    for p in model.parameters():
        p.grad *= 100.0
    result = guard.step()
    assert (result.stepped, result.reason) == (False, "grad_norm_spike")
    history = guard.state_dict()["windows"]["grad_norm"]
    assert history.numel() == 6
    assert history.max() < result.total_norm


def test_spike_test_on_loss_only_ignores_the_gradient_norm() -> None:
    model = mlp()
    guard = StepGuard(
        torch.optim.SGD(model.parameters(), lr=0.0),
        spike_zscore=6.0,
        spike_on="loss",
        min_history=3,
    )
    for step in range(4):
        backward(model, step)
        guard.step(1.0 + 0.01 * step)
    backward(model, 4)
    for p in model.parameters():
        p.grad *= 100.0
    assert guard.step(1.04).stepped


def test_report_mode_records_a_spike_takes_the_step_and_counts_it() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    guard = StepGuard(opt, spike_zscore=6.0, spike_action="report", min_history=3)
    for step in range(6):
        backward(model, step)
        assert guard.step(1.0 + 0.01 * step).spike is None
    backward(model, 6)
    result = guard.step(100.0)
    assert (result.stepped, result.reason, result.spike) == (True, None, "loss_spike")
    assert (guard.spikes_detected, guard.skipped_steps) == (1, 0)
    assert guard.state_dict()["windows"]["loss"][-1] == 100.0  # a step taken is recorded


def test_a_negative_loss_with_the_loss_spike_test_is_an_error_and_changes_nothing() -> None:
    model = mlp()
    params = snapshot(model)
    guard = StepGuard(torch.optim.SGD(model.parameters(), lr=LR), spike_zscore=6.0)
    backward(model, 0)
    with pytest.raises(ValueError, match=r"loss is negative \(-0\.5\).*spike_on=\('grad_norm',\)"):
        guard.step(-0.5)
    assert_same(snapshot(model), params)
    assert guard.steps == 0
    norm_only = StepGuard(
        torch.optim.SGD(model.parameters(), lr=LR), spike_zscore=6.0, spike_on="grad_norm"
    )
    assert norm_only.step(-0.5).stepped


def test_a_minus_inf_loss_with_the_loss_spike_test_is_skipped_as_non_finite() -> None:
    model = mlp()
    params = snapshot(model)
    guard = StepGuard(torch.optim.SGD(model.parameters(), lr=LR), spike_zscore=6.0)
    backward(model, 0)
    result = guard.step(torch.tensor(-math.inf))
    assert (result.stepped, result.reason) == (False, "nonfinite_loss")
    assert_same(snapshot(model), params)


def test_a_complex_loss_is_refused_before_anything_is_done() -> None:
    model = mlp()
    params = snapshot(model)
    guard = StepGuard(torch.optim.SGD(model.parameters(), lr=LR))
    backward(model, 0)
    with pytest.raises(TypeError, match=r"StepGuard\.step: loss must be a real tensor.*complex"):
        guard.step(torch.tensor(1.0 + 2.0j))
    assert_same(snapshot(model), params)
    assert guard.steps == 0
    assert all(p.grad is not None for p in model.parameters())


def test_a_zero_loss_is_no_spike_and_is_not_recorded() -> None:
    model = mlp()
    guard = StepGuard(
        torch.optim.SGD(model.parameters(), lr=0.0), spike_zscore=6.0, spike_on="loss", window=4
    )
    for loss in [1.0, 0.0, 1.1, 0.0]:
        backward(model, 0)
        assert guard.step(loss).stepped
    assert guard.state_dict()["windows"]["loss"].tolist() == pytest.approx([1.0, 1.1])


# --- mixed precision ----------------------------------------------------------------------------


def scaler_run(
    style: str, inject: float | None = None
) -> tuple[list[dict[str, torch.Tensor]], torch.amp.GradScaler, StepResult | None]:
    """Two float16-autocast steps with a GradScaler on CPU, guarded or by hand: the parameters
    after each step, the scaler, the guard's last result. ``inject`` poisons step 2."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    guard = StepGuard(opt, max_norm=0.05, scaler=scaler, model=model)
    result, snapshots = None, []
    for step in range(2):
        opt.zero_grad()
        x, y = batch(step)
        with torch.autocast("cpu", dtype=torch.float16):
            out = model(x)
            assert out.dtype == torch.float16
            loss = (out.float() - y).pow(2).mean()
        scaler.scale(loss).backward()
        if inject is not None and step == 1:
            model[2].weight.grad[0, 0] = inject
        if style == "guard":
            result = guard.step(loss)
        elif style == "unscaled_first":
            scaler.unscale_(opt)
            result = guard.step(loss)
        else:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
            scaler.step(opt)
            scaler.update()
        snapshots.append(snapshot(model))
    return snapshots, scaler, result


@pytest.mark.parametrize("style", ["guard", "unscaled_first"])
def test_float16_gradscaler_step_equals_the_manual_recipe_without_double_unscaling(
    style: str,
) -> None:
    ours, scaler, result = scaler_run(style)
    ref, ref_scaler, _ = scaler_run("manual")
    assert result is not None
    assert result.stepped
    assert scaler.get_scale() == ref_scaler.get_scale()
    for name, p in ours[-1].items():
        torch.testing.assert_close(p, ref[-1][name], rtol=1e-6, atol=1e-7, msg=name)


def test_float16_gradscaler_overflow_is_skipped_and_the_scale_backs_off() -> None:
    poisoned, scaler, result = scaler_run("guard", inject=math.inf)
    clean, clean_scaler, _ = scaler_run("guard")
    assert result is not None
    assert result.reason == "nonfinite_grad"
    assert result.nonfinite_params == ("2.weight",)
    assert scaler.get_scale() == 2.0**9  # backed off once
    assert clean_scaler.get_scale() == 2.0**10
    assert_same(poisoned[1], poisoned[0])  # the poisoned step changed nothing
    assert not torch.equal(clean[1]["0.weight"], clean[0]["0.weight"])


def test_a_scaler_already_stepped_is_an_error() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    scaler = torch.amp.GradScaler("cpu")
    guard = StepGuard(opt, scaler=scaler)
    scaler.scale(model(batch(0)[0]).sum()).backward()
    scaler.step(opt)
    with pytest.raises(RuntimeError, match=r"instead of scaler\.step"):
        guard.step()


def test_bfloat16_autocast_steps_and_skips() -> None:
    model = mlp()
    guard = StepGuard(torch.optim.SGD(model.parameters(), lr=LR), max_norm=1.0, model=model)
    loss = backward(model, 0, autocast=torch.bfloat16)
    assert guard.step(loss).stepped
    loss = backward(model, 1, autocast=torch.bfloat16)
    model[2].weight.grad[0, 0] = math.nan
    assert guard.step(loss).nonfinite_params == ("2.weight",)


# --- checkpointing ------------------------------------------------------------------------------


def test_state_dict_round_trip_resumes_counters_and_spike_windows() -> None:
    model = mlp()

    def guard_step(guard: StepGuard, loss: float) -> StepResult:
        model.zero_grad()
        backward(model, 0)
        return guard.step(loss)

    def new_guard() -> StepGuard:
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        return StepGuard(opt, spike_zscore=3.0, spike_on="loss", window=4, min_history=2)

    original = new_guard()
    for loss in [1.0, 1.1, 0.9, 1.05, 1.0, 5.0]:
        guard_step(original, loss)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    resumed, fresh = new_guard(), new_guard()
    resumed.load_state_dict(torch.load(buffer))
    assert (resumed.steps, resumed.skipped_steps, resumed.consecutive_skips) == (6, 1, 1)
    assert torch.equal(
        resumed.state_dict()["windows"]["loss"], original.state_dict()["windows"]["loss"]
    )
    assert guard_step(fresh, 3.0).stepped  # without the history, 3.0 cannot be a spike
    for loss, spike in [(0.95, False), (3.0, True), (1.0, False)]:
        a, b = guard_step(original, loss), guard_step(resumed, loss)
        assert a.stepped == b.stepped == (not spike)
        assert a.reason == b.reason
    assert torch.equal(
        resumed.state_dict()["windows"]["loss"], original.state_dict()["windows"]["loss"]
    )


GOOD_STATE: dict[str, Any] = {
    "steps": 5,
    "skipped_steps": 2,
    "consecutive_skips": 1,
    "spikes_detected": 1,
    "windows": {"loss": torch.tensor([1.0, 2.0]), "grad_norm": torch.zeros(0)},
}


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"steps": None}, ValueError, r"missing keys \['steps'\]"),
        ({"windows": None}, ValueError, r"missing keys \['windows'\]"),
        ({"epoch": 3}, ValueError, r"unknown keys \['epoch'\]"),
        ({"steps": "5"}, TypeError, r"state\['steps'\] must be an int, got str"),
        ({"skipped_steps": 2.0}, TypeError, r"state\['skipped_steps'\] must be an int"),
        ({"consecutive_skips": True}, TypeError, r"state\['consecutive_skips'\] must be an int"),
        ({"spikes_detected": -1}, ValueError, r"state\['spikes_detected'\] must be >= 0"),
        ({"skipped_steps": 9}, ValueError, "inconsistent counters.*skipped_steps=9"),
        ({"windows": [1.0]}, TypeError, r"state\['windows'\] must be a dict"),
        ({"windows": {"accuracy": torch.ones(2)}}, ValueError, "unknown window metric 'accuracy'"),
        ({"windows": {"loss": [1.0, 2.0]}}, TypeError, r"\['loss'\] must be a tensor, got list"),
        ({"windows": {"loss": torch.ones(2, 2)}}, ValueError, r"\['loss'\] must be a 1-D"),
        ({"windows": {"loss": torch.ones(2, dtype=torch.long)}}, ValueError, "torch.int64"),
        ({"windows": {"grad_norm": torch.tensor([1.0, math.nan])}}, ValueError, "NaN or inf"),
    ],
)
def test_load_state_dict_checks_every_key_and_changes_nothing_on_an_error(
    change: dict[str, Any], error: type[Exception], match: str
) -> None:
    state = {**GOOD_STATE, **change}
    state = {k: v for k, v in state.items() if v is not None}
    model = mlp()
    guard = StepGuard(torch.optim.SGD(model.parameters(), lr=0.0), spike_zscore=3.0)
    before = guard.state_dict()
    with pytest.raises(error, match=match):
        guard.load_state_dict(state)
    after = guard.state_dict()
    assert after.keys() == before.keys()
    assert all(after[k] == before[k] for k in _COUNTERS)
    guard.load_state_dict(GOOD_STATE)  # the unchanged state loads
    assert (guard.steps, guard.skipped_steps, guard.spikes_detected) == (5, 2, 1)


_COUNTERS = ("steps", "skipped_steps", "consecutive_skips", "spikes_detected")


def test_load_state_dict_refuses_what_is_not_a_mapping() -> None:
    guard = StepGuard(torch.optim.SGD(mlp().parameters(), lr=0.0))
    with pytest.raises(TypeError, match=r"state_dict.*got list"):
        guard.load_state_dict([1, 2])  # type: ignore[arg-type]


def test_a_state_saved_before_spikes_were_counted_still_loads() -> None:
    guard = StepGuard(torch.optim.SGD(mlp().parameters(), lr=0.0))
    old = {k: v for k, v in GOOD_STATE.items() if k != "spikes_detected"}
    guard.load_state_dict(old)
    assert (guard.steps, guard.spikes_detected) == (5, 0)


def test_a_longer_saved_window_keeps_the_most_recent_values() -> None:
    model = mlp()
    guard = StepGuard(torch.optim.SGD(model.parameters(), lr=0.0), window=3)
    guard.load_state_dict(
        {
            "steps": 5,
            "skipped_steps": 0,
            "consecutive_skips": 0,
            "windows": {"loss": torch.arange(5.0), "grad_norm": torch.zeros(0)},
        }
    )
    assert guard.state_dict()["windows"]["loss"].tolist() == [2.0, 3.0, 4.0]


# --- cost ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("as_on_an_accelerator")
@pytest.mark.parametrize("spike", [None, 6.0])
def test_a_taken_step_reads_the_host_exactly_once(spike: float | None) -> None:
    model = mlp()
    guard = StepGuard(
        torch.optim.SGD(model.parameters(), lr=LR),
        max_norm=0.1,
        spike_zscore=spike,
        spike_action="report",  # the same statistics as "skip", and every step is taken
        min_history=2,
    )
    for step in range(4):
        loss = backward(model, step)
        with host_reads() as reads:
            assert guard.step(loss).stepped
        assert reads.count == 1


# --- input errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_norm": -1.0}, ValueError, "max_norm"),
        ({"norm_type": 0}, ValueError, "norm_type"),
        ({"spike_zscore": 0.0}, ValueError, "spike_zscore"),
        ({"spike_on": ("accuracy",)}, ValueError, "'loss', 'grad_norm'"),
        ({"spike_action": "warn"}, ValueError, "'skip', 'report'"),
        ({"window": 0}, ValueError, "window"),
        ({"window": 5, "min_history": 6}, ValueError, "min_history"),
        ({"min_history": 1}, ValueError, "min_history"),
        ({"max_consecutive_skips": 0}, ValueError, "max_consecutive_skips"),
        ({"scaler": object()}, TypeError, "GradScaler"),
        ({"scheduler": object()}, TypeError, "step"),
        ({"model": [1, 2]}, TypeError, "named_parameters"),
        ({"model": 3}, TypeError, r"StepGuard: model must be .* got int"),
        ({"foreach": "no"}, TypeError, r"StepGuard: foreach must be True, False or None"),
    ],
)
def test_bad_arguments_name_the_value_and_the_fix(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    model = mlp()
    with pytest.raises(error, match=match):
        StepGuard(torch.optim.SGD(model.parameters(), lr=LR), **kwargs)


def test_bad_optimizer_loss_and_state_are_errors() -> None:
    model = mlp()
    with pytest.raises(TypeError, match=r"torch\.optim\.Optimizer"):
        StepGuard(model)  # type: ignore[arg-type]
    guard = StepGuard(torch.optim.SGD(model.parameters(), lr=LR))
    backward(model, 0)
    with pytest.raises(ValueError, match="scalar"):
        guard.step(torch.ones(3))
    with pytest.raises(TypeError, match="tensor or a number"):
        guard.step("1.0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="missing keys"):
        guard.load_state_dict({"steps": 1})
