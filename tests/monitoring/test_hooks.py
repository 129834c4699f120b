"""Activation hooks: which tensor each layer's statistics come from, and hooks that leave."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.monitoring._hooks import ActivationProbe, GradCapture
from stabletrain.monitoring._layers import discover
from stabletrain.monitoring._params import ParamSet


def probe_stats(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[float, int, str | None]]:
    """One collected forward pass: (mean, n, activation name) per layer that saw activations."""
    layers = discover(model, None, level=0.99)
    probe = ActivationProbe(model, layers, level=0.99)
    with contextlib.ExitStack() as stack:
        probe.install(stack)
        probe.collect = True
        model(x)
        kinds = [site.kind.name if site.kind else None for site in probe.sites]
        out = {}
        stats, observed = probe.finish(window=4)
        for k, (i, n, _) in enumerate(observed):
            assert stats is not None
            out[layers[i].name] = (float(stats[k, 0]) / n, n, kinds[i])
    return out


def test_an_activation_module_after_a_layer_gives_the_layers_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(16, 4)
    stats = probe_stats(model, x)
    with torch.no_grad():
        relu_out, out = F.relu(model[0](x)), model(x)
    assert stats["0"][0] == pytest.approx(float(relu_out.mean()), rel=1e-6)
    assert stats["0"][2] == "relu"
    assert stats["2"] == (pytest.approx(float(out.mean()), rel=1e-6), 32, None)


def test_an_in_place_activation_pairs_with_its_layer() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 2))
    x = torch.randn(16, 4)
    with torch.no_grad():
        want = float(F.relu(model[0](x)).mean())
    assert probe_stats(model, x)["0"][0] == pytest.approx(want, rel=1e-6)


class Block(nn.Module):
    """A residual block whose one ReLU module runs twice: after bn1, and after the addition."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3)
        self.bn2 = nn.BatchNorm2d(3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv(x)))
        return self.relu(x + self.bn2(y))


def test_a_reused_activation_module_pairs_call_by_call() -> None:
    torch.manual_seed(0)
    model = Block()
    x = torch.randn(2, 3, 5, 5)
    stats = probe_stats(model, x)
    with torch.no_grad():
        y = F.relu(model.bn1(model.conv(x)))
        bn2 = model.bn2(y)
    assert stats["bn1"][2] == "relu"
    assert stats["bn1"][0] == pytest.approx(float(y.mean()), rel=1e-5)
    # bn2 feeds the addition, not the ReLU: its own output, no activation
    assert stats["bn2"][2] is None
    assert stats["bn2"][0] == pytest.approx(float(bn2.mean()), abs=1e-6)


def test_a_prelu_is_both_the_activation_of_the_layer_before_and_a_layer() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.PReLU(), nn.Linear(8, 2))
    stats = probe_stats(model, torch.randn(16, 4))
    assert stats["0"][2] == "leaky_relu"
    assert stats["1"][2] is None


def test_hooks_do_nothing_unless_collecting() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
    layers = discover(model, None, level=0.99)
    probe = ActivationProbe(model, layers, level=0.99)
    with contextlib.ExitStack() as stack:
        probe.install(stack)
        model(torch.randn(3, 4))
        assert probe.finish(window=4) == (None, [])
        assert probe.batches == 0


def test_closing_the_stack_removes_every_hook() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    layers = discover(model, None, level=0.99)
    with contextlib.ExitStack() as stack:
        ActivationProbe(model, layers, level=0.99).install(stack)
        GradCapture(_param_set(model)).install(stack)
        assert model[0]._forward_hooks
        assert model[1]._forward_hooks
    assert all(not m._forward_hooks for m in model.modules())
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters())


def _param_set(model: nn.Module) -> ParamSet:
    params = list(model.parameters())
    return ParamSet(params, list(range(len(params))), len(params), torch.device("cpu"))


def test_grad_capture_keeps_the_gradient_that_zero_grad_dropped() -> None:
    layer = nn.Linear(3, 1)
    capture = GradCapture(_param_set(layer))
    with contextlib.ExitStack() as stack:
        capture.install(stack)
        capture.collect = True
        layer(torch.ones(2, 3)).sum().backward()
        want = layer.weight.grad.clone()  # type: ignore[union-attr]
        layer.zero_grad(set_to_none=True)
        sums, _, present, grads = capture.read()
    assert grads[0] is not None
    assert torch.equal(grads[0], want)
    assert present == [True, True]
    assert sums is not None
    assert sums[0].item() == pytest.approx(want.double().square().sum().item(), rel=1e-6)
    assert capture.read()[0] is None  # read once, then dropped


def test_grad_capture_measures_the_norms_before_clipping() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    capture = GradCapture(_param_set(model))
    with contextlib.ExitStack() as stack:
        capture.install(stack)
        capture.collect = True
        (model(torch.randn(16, 4)) * 1e3).sum().backward()
        before = [p.grad.double().square().sum().item() for p in model.parameters()]  # type: ignore[union-attr]
        total = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        sums, probes, _, grads = capture.read()
    assert sums is not None
    assert sums.tolist() == pytest.approx(before, rel=1e-6)
    assert math.sqrt(sum(before)) == pytest.approx(total.item(), rel=1e-6)
    after = sum(g.double().square().sum().item() for g in grads if g is not None)
    assert math.sqrt(after) == pytest.approx(1.0, rel=1e-5)  # the gradients as clipped
    assert probes is not None  # one probe per layer (here one parameter each): scaled alike
    now = capture.probe_now(grads)
    assert (now / probes).tolist() == pytest.approx([1.0 / total.item() ** 2] * 4, rel=1e-5)


def test_grad_capture_divides_the_norms_by_a_loss_scale() -> None:
    layer = nn.Linear(3, 1)
    scale = torch.tensor(1024.0)
    capture = GradCapture(_param_set(layer), lambda: scale)
    with contextlib.ExitStack() as stack:
        capture.install(stack)
        capture.collect = True
        (layer(torch.ones(2, 3)).sum() * scale).backward()
        sums, _, _, grads = capture.read()
    assert sums is not None
    assert grads[1] is not None
    assert sums[1].item() == pytest.approx((grads[1] / 1024).double().square().sum().item())
    assert sums[1].item() == pytest.approx(4.0)  # d(sum over 2 rows)/d(bias) = 2
