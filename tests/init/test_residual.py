"""Residual-aware init: zero, scaled and Fixup, on branches found in the traced graph."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain import models
from stabletrain.init import auto_init, init_residual_
from stabletrain.models import mlp, transformer


class Block(nn.Module):
    def __init__(self, d: int, m: int = 2, norm: bool = False) -> None:
        super().__init__()
        self.fcs = nn.ModuleList(nn.Linear(d, d) for _ in range(m))
        self.bn = nn.BatchNorm1d(d) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, fc in enumerate(self.fcs):
            h = fc(h) if i == len(self.fcs) - 1 else F.relu(fc(h))
        return x + (self.bn(h) if self.bn is not None else h)


def test_zero_makes_every_block_an_identity_zeroing_the_last_norm_when_there_is_one() -> None:
    model = nn.Sequential(Block(8), Block(8, norm=True)).eval()
    x = torch.randn(5, 8)
    factors = init_residual_(model, x, "zero")
    assert factors == {"0.fcs.1": 0.0, "1.bn": 0.0}
    with torch.no_grad():
        torch.testing.assert_close(model(x), x)
    assert model[1].fcs[1].weight.detach().abs().sum() > 0  # untouched: the BN gain is zero


def test_fixup_scales_inner_layers_by_the_depth_rule_and_zeroes_the_last() -> None:
    model = nn.Sequential(*(Block(8, m=3) for _ in range(4)))
    before = model[0].fcs[0].weight.detach().clone()
    factors = init_residual_(model, torch.randn(5, 8), "fixup")
    scale = 4 ** (-1 / (2 * 3 - 2))  # L^(-1/(2m-2)), L = 4 branches of m = 3 layers
    assert factors["0.fcs.0"] == pytest.approx(scale)
    assert factors["3.fcs.2"] == 0.0
    torch.testing.assert_close(model[0].fcs[0].weight.detach(), before * scale)
    assert model[0].fcs[0].bias.detach().abs().sum() > 0  # biases are not rescaled


def test_scaled_divides_each_branch_end_by_sqrt_of_the_number_of_branches() -> None:
    model = mlp(16, 4, depth=9, width=16, residual=True)
    auto_init(model, torch.randn(32, 16), calibrate_layers=False)
    branch_ends = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    before = {n: model.get_submodule(n).weight.detach().clone() for n in branch_ends}
    factors = init_residual_(model, torch.randn(32, 16), "scaled")
    assert factors
    for name, factor in factors.items():
        assert factor == pytest.approx(1 / math.sqrt(len(factors)))
        torch.testing.assert_close(model.get_submodule(name).weight.detach(), before[name] * factor)


def test_attention_branches_scale_the_output_projection_only() -> None:
    model = transformer(d_model=16, n_heads=2, n_layers=2, in_features=4, norm_position="pre")
    in_proj = model.get_parameter("blocks.0.attn.in_proj_weight").detach().clone()
    factors = init_residual_(model, torch.randn(2, 5, 4), "zero")
    assert "blocks.0.attn.out_proj" in factors
    assert torch.equal(model.get_parameter("blocks.0.attn.in_proj_weight").detach(), in_proj)
    assert model.get_parameter("blocks.0.attn.out_proj.weight").detach().abs().sum() == 0


def test_auto_init_residual_option_reports_what_it_did() -> None:
    model = nn.Sequential(*(Block(8) for _ in range(3)))
    report = auto_init(model, torch.randn(16, 8), residual="fixup")
    assert "+ residual fixup ×0" in report["2.fcs.1.weight"].rule
    assert any("3 residual branch(es)" in n for n in report.notes)


def test_bad_mode_and_missing_input() -> None:
    with pytest.raises(ValueError, match="unknown mode 'half'"):
        init_residual_(nn.Linear(2, 2), torch.randn(1, 2), "half")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pass example_input"):
        init_residual_(nn.Linear(2, 2))


@pytest.mark.parametrize("mode", ["zero", "fixup"])
def test_a_branch_ending_in_relu_is_scaled_not_zeroed_so_it_still_learns(mode: str) -> None:
    torch.manual_seed(0)
    model = mlp(16, 2, depth=8, width=16, residual=True)  # each branch: Linear -> ReLU
    x = torch.randn(32, 16)
    factors = init_residual_(model, x, mode)  # type: ignore[arg-type]
    assert list(factors.values()) == pytest.approx([1 / 8**0.5] * 8)
    model(x).pow(2).mean().backward()
    grad = model.get_submodule("hidden5.block.linear").weight.grad
    assert grad is not None
    assert grad.abs().sum() > 0  # a zeroed layer's gradient would be exactly 0


def test_a_branch_ending_in_tanh_is_zeroed_and_its_gradient_is_alive() -> None:
    torch.manual_seed(0)
    model = mlp(16, 2, depth=4, width=16, activation="tanh", residual=True)
    x = torch.randn(32, 16)
    factors = init_residual_(model, x, "zero")
    assert set(factors.values()) == {0.0}
    model(x).pow(2).mean().backward()
    grad = model.get_submodule("hidden2.block.linear").weight.grad
    assert grad is not None
    assert grad.abs().sum() > 0  # tanh'(0) = 1 lets it through


def _fc1_output_stds(model: nn.Module, x: torch.Tensor, blocks: int) -> list[float]:
    stds: dict[int, float] = {}
    handles = [
        model.get_submodule(f"block{i}.block.fc1").register_forward_hook(
            lambda mod, args, out, i=i: stds.__setitem__(i, float(out.std()))
        )
        for i in range(1, blocks + 1)
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return [stds[i] for i in range(1, blocks + 1)]


def test_auto_init_fixup_calibrates_each_branch_on_the_final_stream() -> None:
    # Fixup zeroes every branch end, so in the final model each block sees the stem's output;
    # calibration must fit fc1 on that signal and then apply Fixup's L^(-1/2): every fc1 output
    # std is exactly L^(-1/2) · target. (Calibrating before zeroing fits block l on a stream
    # grown by l Xavier branches: the measured std then fell ~14x from block 1 to block 200.)
    torch.manual_seed(0)
    blocks = 40
    model = models.resmlp(16, 4, blocks=blocks, width=64)
    x = torch.randn(128, 16)
    report = auto_init(model, x, residual="fixup", generator=torch.Generator().manual_seed(0))
    stds = _fc1_output_stds(model, x, blocks)
    assert stds == pytest.approx([blocks**-0.5] * blocks, rel=1e-4)
    record = report["block7.block.fc1.weight"]
    assert record.output_std == pytest.approx(blocks**-0.5)
    # the calibration factor is reported without Fixup's factor: near 1 for He on this stream
    assert record.calibration == pytest.approx(1.0, rel=0.25)
    assert report["block7.block.fc2.weight"].std_after == 0.0


def test_auto_init_zero_mode_on_relu_ending_branches_keeps_their_1_over_sqrt_l() -> None:
    # the branch's only Linear is followed by ReLU, so it is both calibrated and scaled: the
    # final output std is target / sqrt(L), not the target the calibration alone would give
    torch.manual_seed(0)
    model = mlp(16, 4, depth=9, width=32, residual=True)  # 8 residual blocks
    x = torch.randn(256, 16)
    auto_init(model, x, residual="zero")
    out: list[float] = []
    hook = model.hidden5.block.linear.register_forward_hook(
        lambda mod, args, y: out.append(float(y.std()))
    )
    with torch.no_grad():
        model(x)
    hook.remove()
    assert out[0] == pytest.approx(8**-0.5, rel=1e-4)


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: conv-BN-ReLU-conv-BN, plus the (projected) input."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(h + (x if self.down is None else self.down(x)))


class Bottleneck(nn.Module):
    """torchvision's Bottleneck: 1x1 reduce, 3x3, 1x1 expand, each followed by a BN."""

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = 4 * width
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(h)))))
        return F.relu(h + (x if self.down is None else self.down(x)))


def _resnet(block: str) -> nn.Module:
    stem = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    if block == "basic":
        blocks = [BasicBlock(16, 16), BasicBlock(16, 32, 2), BasicBlock(32, 32)]
        width = 32
    else:
        blocks = [Bottleneck(16, 8), Bottleneck(32, 8), Bottleneck(32, 16, 2)]
        width = 64
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)]
    return nn.Sequential(*stem, *blocks, *head)


def _first_grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return math.sqrt(
        sum(float(p.grad.pow(2).sum()) for p in model.parameters() if p.grad is not None)
    )


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
@pytest.mark.parametrize("mode", ["zero", "fixup", "scaled"])
def test_a_branch_ending_in_batchnorm_scales_the_norm_weight_not_the_conv_before_it(
    block: str, mode: str
) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 16, 16), torch.randint(0, 10, (16,))
    default = _resnet(block)
    model = _resnet(block)
    model.load_state_dict(default.state_dict())
    factors = init_residual_(model, x, mode)  # type: ignore[arg-type]
    last_bn = "bn2" if block == "basic" else "bn3"
    assert sorted(factors) == [f"{i}.{last_bn}" for i in (3, 4, 5)]  # never a conv
    expected = 1 / math.sqrt(3) if mode == "scaled" else 0.0
    assert list(factors.values()) == pytest.approx([expected] * 3)
    for i in (3, 4, 5):
        bn = model[i].get_submodule(last_bn)
        torch.testing.assert_close(bn.weight.detach(), torch.full_like(bn.weight, expected))
    # the first step's gradient stays at the default init's scale or below (a zero gain stops
    # the branch's convs at step 0); zeroing the conv before the BN instead multiplies it by
    # 1/sqrt(eps) through the BN of a zero-variance input
    base = _first_grad_norm(default, x, y)
    assert 0.1 < _first_grad_norm(model, x, y) / base < 2.0
    wrong = _resnet(block)
    wrong.load_state_dict(default.state_dict())
    with torch.no_grad():
        for i in (3, 4, 5):
            wrong[i].get_submodule(last_bn.replace("bn", "conv")).weight.zero_()
    assert _first_grad_norm(wrong, x, y) / base > 10
    auto, plain = _resnet(block), _resnet(block)
    auto_init(auto, x, residual=mode)  # type: ignore[arg-type]
    auto_init(plain, x)
    for i in (3, 4, 5):
        conv = auto[i].get_submodule(last_bn.replace("bn", "conv"))
        assert float(conv.weight.detach().abs().sum()) > 0
    assert 0.1 < _first_grad_norm(auto, x, y) / _first_grad_norm(plain, x, y) < 2.0
