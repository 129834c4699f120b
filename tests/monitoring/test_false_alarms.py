"""No warnings on healthy runs of architectures that zero-initialize by design (ResNet's last
BatchNorm gain per block, ConvNeXt's layer-scale gammas) or use smooth rectifiers (SiLU)."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.diagnostics import diagnose
from stabletrain.monitoring import MemorySink, Thresholds, TrainingMonitor, every

STEPS = 50


class BasicBlock(nn.Module):
    """ResNet's basic block with its last BatchNorm gain at zero (``zero_init_last``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(out)))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block: depthwise conv, LayerNorm, MLP, scaled by a gamma of 1e-6."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(width, width, 7, padding=3, groups=width)
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * width, width)
        self.gamma = nn.Parameter(torch.full((width,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.fc2(self.act(self.fc1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class MBConvLite(nn.Module):
    """EfficientNet-style conv, BatchNorm, SiLU; its bias starts very negative so that every
    pre-activation is below zero: a ReLU there would be dead, a SiLU still learns."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1)
        self.act = nn.SiLU()
        nn.init.constant_(self.conv.bias, -8.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.conv(x))


def net(block: type[nn.Module], width: int = 8, depth: int = 2) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        *[block(width) for _ in range(depth)],
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, 4),
    )


def healthy_run(model: nn.Module, thresholds: Thresholds | None = None) -> TrainingMonitor:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, 6, 6, generator=g), torch.randint(0, 4, (8,), generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    t = thresholds or Thresholds()
    with TrainingMonitor(
        model, opt, schedule=every(1), sinks=[MemorySink()], thresholds=t, summary=False
    ) as mon:
        for _ in range(STEPS):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    return mon


def warnings_of(mon: TrainingMonitor) -> list[str]:
    return [f"{f.rule} {f.layer}: {f.message}" for f in mon.findings("warning")]


def test_a_resnet_with_zero_initialized_last_batchnorm_gains_raises_no_warning() -> None:
    torch.manual_seed(0)
    assert warnings_of(healthy_run(net(BasicBlock))) == []


def test_a_convnext_with_layer_scale_gammas_of_1e_6_raises_no_warning() -> None:
    torch.manual_seed(0)
    assert warnings_of(healthy_run(net(ConvNeXtBlock))) == []


@pytest.mark.parametrize(
    ("block", "zero_init"), [(ConvNeXtBlock, {"1", "2"}), (BasicBlock, {"1.bn2", "2.bn2"})]
)
def test_judging_zero_initialized_weights_by_their_own_norm_would_warn(
    block: type[nn.Module], zero_init: set[str]
) -> None:
    torch.manual_seed(0)
    mon = healthy_run(net(block), Thresholds(zero_init_rms=0.0))  # the old rule
    flagged = {f.layer for f in mon.findings("warning") if f.rule == "update_ratio"}
    assert flagged == zero_init  # the zero-initialized layers, and only they


def test_silu_units_below_zero_are_not_reported_dead() -> None:
    torch.manual_seed(0)
    mon = healthy_run(net(MBConvLite))
    assert warnings_of(mon) == []
    assert [f for f in mon.findings() if f.rule == "dead_units"] == []


def test_relu_units_below_zero_are_still_reported_dead() -> None:
    torch.manual_seed(0)
    model = net(MBConvLite)
    for block in model[1:3]:
        block.act = nn.ReLU()
    mon = healthy_run(model)
    assert {f.layer for f in mon.findings() if f.rule == "dead_units"} == {"1.conv", "2.conv"}


HEALTHY = ["hf-distilbert", "hf-vit", "nanogpt", "hf-gpt2", "hf-llama", "hf-t5", "hf-mixtral"]
HEALTHY += ["timm-resnet18", "timm-convnext", "timm-vit-tiny", "timm-efficientnet-b0"]


@pytest.mark.parametrize("name", HEALTHY)
def test_a_healthy_real_model_trains_50_steps_with_no_warning(name: str) -> None:
    # the family's own init at its usual rate (AdamW 1e-3); query/key projections get
    # gradients 100x smaller than the MLP's of the same block, at every depth: no depth trend
    from tests.benchmarks._run import load_benchmark

    zoo = load_benchmark("_zoo")
    spec = zoo.ZOO[name]
    if zoo.unavailable(spec) is not None:
        pytest.skip(zoo.unavailable(spec))
    torch.manual_seed(0)
    model = spec.build().train()
    data = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    with TrainingMonitor(model, opt, preset="standard", summary=False) as mon:
        for _ in range(50):
            loss = spec.loss(model, *spec.batch(data, 16))
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    assert not [f for f in mon.findings() if f.severity != "info"], mon.findings()
    torch.manual_seed(0)  # and diagnose, on the model as its family builds it
    inputs, _ = spec.batch(torch.Generator().manual_seed(1), 16)
    diagnosis = diagnose(spec.build(), inputs)
    assert not [f for f in diagnosis.findings if f.severity != "info"], diagnosis.findings


def test_the_depth_fit_sees_a_trend_across_blocks_and_not_a_rise_inside_one() -> None:
    # the like-for-like fit still sees a real trend: each block's layers 0.3x the next one's
    metrics_names = [f"blocks.{b}.{layer}" for b in range(6) for layer in ("q", "mlp")]
    from stabletrain.monitoring.rules import _like_for_like_slopes

    xs = [float(i) for i in range(len(metrics_names))]
    ys = [
        b * math.log10(1 / 0.3) + (0.0 if layer == "mlp" else -2.0)
        for b in range(6)
        for layer in ("q", "mlp")
    ]
    slopes = _like_for_like_slopes(metrics_names, xs, ys)
    assert statistics.median(slopes) == pytest.approx(math.log10(1 / 0.3) / 2)
    # no trend across two blocks, but a rise of 2 decades inside each (DistilBERT at init:
    # q/k 1e-4 ... MLP 2e-2): one pool of every layer reads it as a trend, like for like not
    names = [f"layer.{b}.{k}" for b in range(2) for k in ("q", "k", "v", "o", "fc1", "fc2")]
    rise = [-4.0, -4.0, -2.5, -2.5, -1.7, -1.7]
    xs, ys = [float(i) for i in range(12)], rise + rise
    assert statistics.median(_like_for_like_slopes(names, xs, ys)) == 0.0
    flat = _like_for_like_slopes([f"l{i}" for i in range(12)], xs, ys)
    assert statistics.median(flat) > 0.1
