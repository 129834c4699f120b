"""TrainingMonitor end to end: its rows against a slow float64 reference, and its contracts:
it changes nothing, leaves no hook, holds bounded memory and reads the device once per step."""

from __future__ import annotations

import io
import math
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn
from torch.overrides import TorchFunctionMode

from stabletrain.monitoring import MemorySink, Thresholds, TrainingMonitor, every, metrics

RTOL = 1e-5  # float32 device sums against float64 loops
WINDOW = 2  # dead-unit window of the reference test


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tanh_relu_mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    )


def batch(rows: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(rows, 6, generator=g) * 2, torch.randn(rows, 3, generator=g)


# --------------------------------------------------------------------------- reference


def layer_norm(tensors: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float((t.double() ** 2).sum()) for t in tensors))


def max_cosine(w: torch.Tensor) -> float:
    rows = w.detach().double().reshape(w.shape[0], -1)
    unit = rows / rows.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    return max(float(cos[i, j]) for i in range(len(rows)) for j in range(len(rows)) if i != j)


def reference_run(steps: int) -> list[dict[tuple[str | None, str], float]]:
    """The rows the monitor should write, computed by hand in float64, step by step."""
    torch.manual_seed(0)
    model = tanh_relu_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = batch()
    layers = {"0": model[0], "2": model[2], "4": model[4]}
    seen: dict[str, torch.Tensor] = {}
    model[1].register_forward_hook(lambda m, a, out: seen.__setitem__("0", out.detach().double()))
    model[3].register_forward_hook(lambda m, a, out: seen.__setitem__("2", out.detach().double()))
    model[4].register_forward_hook(lambda m, a, out: seen.__setitem__("4", out.detach().double()))
    alive: deque[torch.Tensor] = deque(maxlen=WINDOW)
    expected = []
    for _ in range(steps):
        before = {
            n: [p.detach().double().clone() for p in m.parameters()] for n, m in layers.items()
        }
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        grads = {n: [p.grad.detach().clone() for p in m.parameters()] for n, m in layers.items()}  # type: ignore[union-attr]
        opt.step()
        rows: dict[tuple[str | None, str], float] = {(None, "loss"): loss.item()}
        total = 0.0
        for n, m in layers.items():
            params = [p.detach() for p in m.parameters()]
            rows[(n, "grad_norm")] = layer_norm(grads[n])
            total += rows[(n, "grad_norm")] ** 2
            rows[(n, "weight_norm")] = layer_norm(params)
            delta = [p.double() - b for p, b in zip(params, before[n], strict=True)]
            rows[(n, "update_ratio")] = layer_norm(delta) / rows[(n, "weight_norm")]
            rows[(n, "grad_nonfinite")] = rows[(n, "weight_nonfinite")] = 0.0
            rows[(n, "max_row_cosine")] = max_cosine(m.weight)
            out = seen[n]
            rows[(n, "act_mean")] = float(out.mean())
            rows[(n, "act_std")] = float(out.std(unbiased=False))
        rows[(None, "grad_norm")] = math.sqrt(total)
        rows[(None, "clip_ratio")] = 1.0  # not clipped
        rows[("0", "saturation_fraction")] = float((seen["0"].abs() > 0.99).double().mean())
        alive.append((seen["2"] > 0).any(dim=0))
        rows[("2", "dead_fraction")] = float((~torch.stack(list(alive)).any(dim=0)).double().mean())
        expected.append(rows)
    return expected


def monitored_run(steps: int, **kwargs: Any) -> tuple[TrainingMonitor, MemorySink, nn.Module]:
    torch.manual_seed(0)
    model = tanh_relu_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = batch()
    sink = MemorySink()
    options: dict[str, Any] = {
        "preset": "full",
        "schedule": every(1),
        "sinks": [sink],
        "summary": False,
        "thresholds": Thresholds(dead_window=WINDOW),
    }
    options.update(kwargs)
    with TrainingMonitor(model, opt, **options) as mon:
        for _ in range(steps):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    return mon, sink, model


def test_every_row_matches_the_float64_reference_at_every_step() -> None:
    steps = 4
    expected = reference_run(steps)
    _, sink, _ = monitored_run(steps)
    for step, want in enumerate(expected, start=1):
        got = {(r.layer, r.metric): r.value for r in sink.rows if r.step == step}
        assert set(got) == set(want), f"step {step}: rows {set(got) ^ set(want)}"
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=RTOL, abs=1e-7), f"step {step} {key}"


@pytest.mark.parametrize("n", [1, 3])
def test_large_layers_and_frozen_ones_get_exact_weight_norms_and_update_ratios(n: int) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 256), nn.ReLU(), nn.Linear(256, 256), nn.Linear(256, 3))
    assert model[2].weight.numel() >= metrics.CPU_DOT_MIN  # the per-parameter path
    opt = torch.optim.Adam([*model[2].parameters(), *model[3].parameters()], lr=1e-3)
    x, y = torch.randn(32, 6), torch.randn(32, 3)
    sink = MemorySink()
    want: dict[tuple[int, str, str], float] = {}
    with TrainingMonitor(
        model, opt, schedule=every(n), sinks=[sink], summary=False, exact=True
    ) as mon:
        for step in range(1, 7):
            before = {
                k: [p.detach().double().clone() for p in model[k].parameters()] for k in (0, 2, 3)
            }
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
            for k in (0, 2, 3):
                now = [p.detach().double() for p in model[k].parameters()]
                want[(step, str(k), "weight_norm")] = layer_norm(now)
                if k != 0:
                    delta = [a - b for a, b in zip(now, before[k], strict=True)]
                    want[(step, str(k), "update_ratio")] = layer_norm(delta) / layer_norm(now)
    got = {(r.step, r.layer, r.metric): r.value for r in sink.rows}
    logged = [s for s in range(1, 7) if s % n == 0]
    checked = {key: value for key, value in want.items() if key[0] in logged}
    for key, value in checked.items():
        assert got[key] == pytest.approx(value, rel=RTOL), key
    assert not any(layer == "0" for _, layer, metric in got if metric == "update_ratio")


def test_the_rows_do_not_depend_on_when_zero_grad_runs() -> None:
    series = []
    for zero_grad_last in (False, True):
        torch.manual_seed(0)
        model = tanh_relu_mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        x, y = batch()
        sink = MemorySink()
        with TrainingMonitor(model, opt, schedule=every(1), sinks=[sink], summary=False) as mon:
            for _ in range(3):
                if not zero_grad_last:
                    opt.zero_grad()
                loss = F.mse_loss(model(x), y)
                loss.backward()
                opt.step()
                if zero_grad_last:
                    opt.zero_grad()  # .grad is None when mon.step runs
                mon.step(loss)
        series.append([sink.series("grad_norm", n) for n in ("0", "2", "4", None)])
    assert series[0] == series[1]
    assert len(series[0][0]) == 3


def evaluation_pass(model: nn.Module, x: torch.Tensor, how: str) -> None:
    if how == "no_grad":
        with torch.no_grad():
            model(x)
    elif how == "inference_mode":
        with torch.inference_mode():
            model(x)
    else:  # eval mode, gradients enabled
        model.eval()
        model(x)
        model.train()


def activation_rows(evaluate: str | None) -> dict[tuple[int, str | None, str], float]:
    torch.manual_seed(0)
    model = tanh_relu_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = batch()
    other = torch.randn(64, 6, generator=torch.Generator().manual_seed(2)) * 20 - 5
    sink = MemorySink()
    thresholds = Thresholds(dead_window=1)
    with TrainingMonitor(
        model, opt, schedule=every(1), sinks=[sink], thresholds=thresholds, summary=False
    ) as mon:
        for _ in range(2):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if evaluate is not None:
                evaluation_pass(model, other, evaluate)
            mon.step(loss)
    kept = ("act_mean", "act_std", "dead_fraction", "saturation_fraction")
    return {(r.step, r.layer, r.metric): r.value for r in sink.rows if r.metric in kept}


@pytest.mark.parametrize("evaluate", ["no_grad", "inference_mode", "eval_mode"])
def test_an_evaluation_pass_inside_the_block_is_not_measured_as_training(evaluate: str) -> None:
    plain = activation_rows(None)
    assert {metric for _, _, metric in plain} == {
        "act_mean",
        "act_std",
        "dead_fraction",
        "saturation_fraction",
    }
    assert activation_rows(evaluate) == plain


# --------------------------------------------------------------------------- contracts


class DropNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 32)
        self.bn = nn.BatchNorm1d(32)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.relu(self.bn(self.fc1(x)))))


def train_20(mode: str, monitor: bool) -> tuple[list[float], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = DropNormNet()
    model.train(mode == "train")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = batch()
    losses: list[float] = []

    def loop(after: Callable[[torch.Tensor], None]) -> None:
        for _ in range(20):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            after(loss)
            losses.append(loss.item())

    if monitor:
        sink = MemorySink(histograms=every(1))
        with TrainingMonitor(
            model,
            opt,
            preset="full",
            schedule=every(1),
            sinks=[sink],
            example_input=x,
            summary=False,
        ) as mon:
            loop(mon.step)
        assert sink.rows
        assert sink.histograms
    else:
        loop(lambda loss: None)
    return losses, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_monitor_changes_no_parameter_buffer_or_loss_bit(mode: str) -> None:
    plain_losses, plain_state = train_20(mode, monitor=False)
    losses, state = train_20(mode, monitor=True)
    assert losses == plain_losses
    assert state.keys() == plain_state.keys()
    for key, value in plain_state.items():
        assert torch.equal(state[key], value), key


def test_entering_with_an_example_input_draws_no_random_number() -> None:
    model = DropNormNet()  # train mode: the traced pass runs dropout
    before = torch.get_rng_state()
    with TrainingMonitor(model, example_input=batch()[0], summary=False):
        assert torch.equal(torch.get_rng_state(), before)


def hooks_left(model: nn.Module) -> list[str]:
    left = []
    for name, m in model.named_modules():
        for kind in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
        ):
            if getattr(m, kind):
                left.append(f"{name}.{kind}")
    for name, p in model.named_parameters():
        if p._post_accumulate_grad_hooks or p._backward_hooks:
            left.append(f"{name} grad hook")
    return left


def test_no_hook_survives_an_exception_inside_the_block() -> None:
    model = DropNormNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = batch()
    out = io.StringIO()
    during: list[str] = []

    def train_then_fail() -> None:
        monitor = TrainingMonitor(
            model,
            opt,
            preset="full",
            schedule=every(1),
            example_input=x,
            console=Console(file=out),
        )
        with monitor as mon:
            during.extend(hooks_left(model))
            for _ in range(2):
                loss = F.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.step(loss)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        train_then_fail()
    assert during
    assert hooks_left(model) == []
    assert "stabletrain monitor" in out.getvalue()  # the summary still printed


def tensors_held(obj: Any, exclude: set[int], seen: set[int] | None = None) -> int:
    """Bytes of the tensors reachable from the monitor's own objects (not the model's)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return 0 if id(obj) in exclude else obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensors_held(v, exclude, seen) for v in obj.values())
    if isinstance(obj, list | tuple | deque | set):
        return sum(tensors_held(v, exclude, seen) for v in obj)
    if type(obj).__module__.startswith("stabletrain.monitoring"):
        return sum(
            tensors_held(v, exclude, seen)
            for v in vars(obj).values()
            if not isinstance(v, nn.Module)
        )
    return 0


def test_memory_does_not_grow_with_the_number_of_steps() -> None:
    model = tanh_relu_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = batch()
    exclude = {id(p) for p in model.parameters()}
    held = []
    with TrainingMonitor(model, opt, preset="full", schedule=every(1), summary=False) as mon:
        for step in range(1, 161):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
            if step in (20, 160):
                held.append(tensors_held(mon, exclude | {id(p.grad) for p in model.parameters()}))
                held.append(len(mon.findings()))
    assert held[0] > 0
    assert held[0] == held[2]
    assert held[1] == held[3]


def test_the_weight_copy_is_freed_between_logged_steps() -> None:
    model = tanh_relu_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = batch()
    with TrainingMonitor(model, opt, schedule=every(5), summary=False) as mon:
        for step in range(1, 10):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
            assert (mon._snapshot is not None) == (step == 4 or step == 9), step


SYNCS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy"}


class SyncCounter(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if getattr(func, "__name__", "") in SYNCS:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("preset", ["minimal", "standard", "full"])
def test_a_logged_step_reads_the_device_once_and_another_step_never(preset: str) -> None:
    model = tanh_relu_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = batch()
    counts = []
    with TrainingMonitor(model, opt, preset=preset, schedule=every(2), summary=False) as mon:  # type: ignore[arg-type]
        for _ in range(4):
            with SyncCounter() as counter:
                loss = F.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
            opt.step()
            with counter:
                mon.step(loss)
            counts.append(counter.count)
    assert counts == [0, 1, 0, 1]


def test_non_finite_entries_are_counted_exactly_in_the_layer_that_has_them() -> None:
    model = tanh_relu_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = batch()
    sink = MemorySink()
    with TrainingMonitor(
        model, opt, preset="minimal", schedule=every(1), sinks=[sink], summary=False
    ) as mon:
        bad = torch.zeros_like(model[2].weight)
        bad[0, :3] = math.nan
        model[2].weight.register_hook(lambda g: g + bad)  # NaN born in backward
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(loss)
    assert sink.last("grad_nonfinite", "2") == 3
    assert sink.last("weight_nonfinite", "2") == 3
    assert sink.last("grad_nonfinite", "0") == 0
    assert sink.last("weight_nonfinite", "4") == 0
    assert math.isnan(sink.last("grad_norm", "2"))
    assert math.isnan(sink.last("grad_norm"))


def nan_run(
    bad: dict[int, float], steps: int, schedule: int, window: int = 100, number: bool = False
) -> tuple[TrainingMonitor, MemorySink, dict[int, list[int]]]:
    """Train ``steps`` steps; the loss passed at step ``s`` is ``bad[s]`` where given. Returns
    also, after each step, the steps whose loss rows the sink held by then."""
    model = tanh_relu_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = batch()
    sink = MemorySink()
    seen: dict[int, list[int]] = {}
    thresholds = Thresholds(loss_window=window)
    with TrainingMonitor(
        model, opt, schedule=schedule, sinks=[sink], thresholds=thresholds, summary=False
    ) as mon:
        for step in range(1, steps + 1):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step in bad:
                value = bad[step] if number else torch.tensor(bad[step])
                mon.step(value)
            else:
                mon.step(loss)
            seen[step] = [s for s, _ in sink.series("loss")]
    return mon, sink, seen


def test_a_non_finite_loss_on_an_unlogged_step_is_reported_at_its_own_step() -> None:
    bad = {3: math.nan, 7: math.inf, 12: math.nan}  # 12: after the last logged step
    mon, sink, seen = nan_run(bad, steps=12, schedule=5)
    assert seen[4] == []  # no read of the device on unlogged steps
    assert seen[5] == [3, 5]  # found in the ring at the next logged step, before its rows
    assert [s for s, _ in sink.series("loss")] == [3, 5, 7, 10, 12]  # 12: at exit
    assert [r.step for r in sink.rows] == sorted(r.step for r in sink.rows)
    assert math.isnan(sink.series("loss")[0][1])
    fired = [(f.step, f.metric, f.rule) for f in sink.findings]
    assert fired == [(3, "loss", "nonfinite"), (7, "loss", "nonfinite"), (12, "loss", "nonfinite")]
    (finding,) = [f for f in mon.findings() if f.metric == "loss"]
    assert (finding.step, finding.last_step, finding.count) == (3, 12, 3)


def test_a_non_finite_number_loss_on_an_unlogged_step_is_reported_at_once() -> None:
    _, sink, seen = nan_run({3: -math.inf}, steps=5, schedule=5, number=True)
    assert seen[3] == [3]
    assert sink.series("loss") == [(3, -math.inf), (5, pytest.approx(sink.last("loss")))]
    assert [f.step for f in sink.findings] == [3]


def test_a_non_finite_loss_is_still_reported_when_the_ring_wraps_before_a_logged_step() -> None:
    _, sink, seen = nan_run({2: math.nan}, steps=12, schedule=100, window=4)
    assert seen[8] == []
    assert seen[9] == [2]  # copied out at the wrap of step 5, read at the next wrap
    assert [s for s, _ in sink.series("loss")] == [2]
    assert [f.step for f in sink.findings] == [2]


class ReadRecorder(TorchFunctionMode):
    """Every read of a tensor's values to the host (``.tolist()``, ``.item()``...)."""

    def __init__(self) -> None:
        super().__init__()
        self.read: list[torch.Tensor] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if getattr(func, "__name__", "") in SYNCS and args and isinstance(args[0], torch.Tensor):
            self.read.append(args[0])
        return func(*args, **(kwargs or {}))


def test_unlogged_steps_never_read_the_loss_ring_even_when_it_wraps() -> None:
    model = tanh_relu_mlp()
    x, y = batch()
    reads = []
    thresholds = Thresholds(loss_window=2)
    with TrainingMonitor(model, schedule=every(7), thresholds=thresholds, summary=False) as mon:
        ring = mon._ring.values
        for step in range(1, 15):
            loss = F.mse_loss(model(x), y)
            loss.backward()
            with ReadRecorder() as recorder:
                mon.step(loss)
            if step % 7:
                reads += recorder.read
    assert reads  # the host copies made at each wrap are read on unlogged steps
    where = ring.untyped_storage().data_ptr()
    assert all(t.untyped_storage().data_ptr() != where for t in reads)


class FakeGuard:
    skipped_steps = 0


def test_a_guard_s_skipped_steps_are_reported_and_a_skipped_step_has_no_update_ratio() -> None:
    model = tanh_relu_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = batch()
    sink = MemorySink()
    guard = FakeGuard()
    with TrainingMonitor(
        model, opt, schedule=every(1), sinks=[sink], guard=guard, summary=False
    ) as mon:
        for step in range(1, 4):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            if step == 2:
                guard.skipped_steps += 1  # the guard skipped opt.step()
            else:
                opt.step()
            mon.step(loss)
    assert sink.series("skipped_steps") == [(1, 0.0), (2, 1.0), (3, 1.0)]
    assert [s for s, _ in sink.series("update_ratio", "0")] == [1, 3]


def test_the_optimizer_decides_which_layers_have_an_update_ratio() -> None:
    model = tanh_relu_mlp()
    opt = torch.optim.SGD(model[4].parameters(), lr=0.01)  # only the head trains
    x, y = batch()
    sink = MemorySink()
    with TrainingMonitor(model, opt, schedule=every(1), sinks=[sink], summary=False) as mon:
        for _ in range(2):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    assert {r.layer for r in sink.rows if r.metric == "update_ratio"} == {"4"}
    assert mon.findings() == []


def test_histograms_go_to_the_sinks_that_ask_and_match_numpy() -> None:
    sink = MemorySink(histograms=every(2))
    mon, _, model = monitored_run(2, sinks=[sink])
    assert {h.step for h in sink.histograms} == {2}
    assert {(h.layer, h.metric) for h in sink.histograms} == {
        (n, m) for n in mon.layers for m in ("weight", "grad")
    }
    h = next(h for h in sink.histograms if h.layer == "0" and h.metric == "weight")
    weight = model[0].weight.detach().double().numpy()
    want, _ = np.histogram(weight, bins=len(h.counts), range=(h.low, h.high))
    assert list(h.counts) == want.astype(float).tolist()
    assert h.num == weight.size
    assert (h.low, h.high) == (weight.min(), weight.max())
    assert h.total == pytest.approx(weight.sum(), rel=RTOL)
    assert h.sum_squares == pytest.approx((weight**2).sum(), rel=RTOL)


def test_the_summary_prints_at_exit_unless_disabled() -> None:
    out = io.StringIO()
    model = tanh_relu_mlp()
    with TrainingMonitor(model, console=Console(file=out, width=120)) as mon:
        mon.step(1.0)
    assert "no findings" in out.getvalue()
    quiet = io.StringIO()
    with TrainingMonitor(model, summary=False, console=Console(file=quiet)) as mon:
        mon.step(1.0)
    assert quiet.getvalue() == ""
    assert "1 steps, 0 logged" in mon.summary_text()


def test_findings_can_be_filtered_by_severity() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1))
    for p in model.parameters():
        nn.init.constant_(p, 0.1)
    with TrainingMonitor(model, preset="full", schedule=every(1), summary=False) as mon:
        loss = model(torch.randn(5, 4)).sum()
        loss.backward()
        mon.step(loss)
    assert mon.findings("error")
    assert all(f.severity == "error" for f in mon.findings("error"))
    with pytest.raises(ValueError, match="min_severity"):
        mon.findings("fatal")  # type: ignore[arg-type]


def test_a_repeated_finding_carries_the_fix_of_its_latest_message() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=10.0)
    x = torch.randn(16, 4)
    with TrainingMonitor(model, opt, schedule=every(1), summary=False) as mon:
        for lr in (10.0, 1e-12):  # too high, then too low: one finding per layer, two fixes
            opt.param_groups[0]["lr"] = lr
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    (ratio,) = [f for f in mon.findings() if f.rule == "update_ratio" and f.layer == "0"]
    assert ratio.count == 2
    assert "barely learns" in ratio.message
    assert ratio.fix.startswith("raise the learning rate")


# --------------------------------------------------------------------------- errors


def _bad_options() -> Iterator[tuple[dict[str, Any], type[Exception], str]]:
    yield {"preset": "cheap"}, ValueError, "'minimal', 'standard', 'full'"
    yield {"schedule": "often"}, TypeError, "every"
    yield {"sinks": [object()]}, TypeError, "Sink"
    yield {"thresholds": {"dead_fraction": 0.1}}, TypeError, "Thresholds"
    yield {"guard": object()}, TypeError, "skipped_steps"
    yield {"optimizer": "adam"}, TypeError, "torch.optim.Optimizer"
    yield {"exact": "yes"}, TypeError, "exact must be a bool"


@pytest.mark.parametrize(("options", "error", "match"), list(_bad_options()))
def test_bad_options_raise_and_name_the_fix(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        TrainingMonitor(tanh_relu_mlp(), **options)


def test_a_model_must_be_a_module_with_parameters() -> None:
    with pytest.raises(TypeError, match=r"nn\.Module"):
        TrainingMonitor("model")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no parameters"):
        TrainingMonitor(nn.ReLU())


@pytest.mark.parametrize(
    ("loss", "error", "match"),
    [
        (torch.ones(2), ValueError, "scalar"),
        (torch.tensor(1), TypeError, "floating"),
        ("1", TypeError, "number"),
    ],
)
def test_step_rejects_a_bad_loss(loss: Any, error: type[Exception], match: str) -> None:
    with TrainingMonitor(tanh_relu_mlp(), summary=False) as mon, pytest.raises(error, match=match):
        mon.step(loss)


def test_step_outside_the_block_and_entering_twice_raise() -> None:
    mon = TrainingMonitor(tanh_relu_mlp(), summary=False)
    with pytest.raises(RuntimeError, match="with TrainingMonitor"):
        mon.step(1.0)
    with mon:
        pass
    with pytest.raises(RuntimeError, match="new one"), mon:
        pass


def test_a_model_that_fails_on_the_example_input_leaves_no_hook() -> None:
    model = tanh_relu_mlp()
    with pytest.raises(ValueError, match="example_input"):
        TrainingMonitor(model, example_input=torch.randn(2, 5), summary=False).__enter__()
    assert hooks_left(model) == []


class ComplexFilter(nn.Module):
    """A small and a large (per-parameter path) complex parameter with negative real parts."""

    def __init__(self) -> None:
        super().__init__()
        big = metrics.CPU_DOT_MIN
        self.small = nn.Parameter(torch.complex(torch.randn(8) - 2, torch.randn(8)))
        self.large = nn.Parameter(torch.complex(torch.randn(big) - 2, torch.randn(big)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :8] * self.small).abs().mean() + (x * self.large).abs().mean()


def test_complex_parameters_small_and_large_get_the_norms_of_vector_norm() -> None:
    torch.manual_seed(0)
    model = ComplexFilter()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x = torch.randn(4, metrics.CPU_DOT_MIN)
    sink = MemorySink(histograms=every(1))
    want: dict[tuple[int, str], float] = {}
    with TrainingMonitor(
        model, opt, preset="full", schedule=every(1), sinks=[sink], summary=False, exact=True
    ) as mon:
        for step in (1, 2):
            before = [p.detach().clone() for p in model.parameters()]
            loss = model(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
            params = [p.detach().cdouble() for p in model.parameters()]
            grads = [p.grad.cdouble() for p in model.parameters() if p.grad is not None]
            delta = [p - b.cdouble() for p, b in zip(params, before, strict=True)]

            def norm(ts: list[torch.Tensor]) -> float:
                return float(torch.linalg.vector_norm(torch.cat([t.reshape(-1) for t in ts])))

            want[(step, "weight_norm")] = norm(params)
            want[(step, "grad_norm")] = norm(grads)
            want[(step, "update_ratio")] = norm(delta) / norm(params)
    got = {(r.step, r.metric): r.value for r in sink.rows if r.layer == ""}
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=RTOL), key
    assert got[(2, "weight_nonfinite")] == got[(2, "grad_nonfinite")] == 0


class SharedTwice(nn.Module):
    """One Linear registered under two names and called twice, each call followed by a
    functional tanh that only the trace can see."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.shared = nn.Linear(8, 8)
        self.out = nn.Linear(8, 3)
        self.again = self.shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.shared(F.relu(self.inp(x))))
        return self.out(torch.tanh(self.again(h)))


def test_a_linear_called_twice_is_reported_in_the_trace_s_order_with_its_activation() -> None:
    torch.manual_seed(0)
    model = SharedTwice()
    with torch.no_grad():
        model.shared.weight.mul_(4)  # some tanh outputs saturate
    x = batch()[0]
    outputs: list[torch.Tensor] = []
    model.shared.register_forward_hook(lambda m, a, out: outputs.append(out.detach().double()))
    sink = MemorySink()
    with TrainingMonitor(
        model, schedule=every(1), sinks=[sink], example_input=x, summary=False
    ) as mon:
        outputs.clear()  # the traced pass
        loss = model(x).pow(2).mean()
        loss.backward()
        mon.step(loss)
    assert mon.layers == ("inp", "shared", "out")  # the order of stabletrain.graph.trace
    assert sink.meta is not None
    assert [layer["depth"] for layer in sink.meta["layers"]] == [0, 1, 2]
    z = torch.cat([o.reshape(-1) for o in outputs])  # both calls, in the tanh's input space
    want = float((z.abs() > math.atanh(0.99)).double().mean())
    assert 0 < want < 1
    assert sink.last("saturation_fraction", "shared") == pytest.approx(want, abs=1e-12)
