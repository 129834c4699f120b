"""lsuv_: every fitted layer's output std within tol of the target, measured independently."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stabletrain.init import lsuv_


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(x + self.bn2(self.conv2(out)))


def small_resnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
        ResBlock(16),
        ResBlock(16),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def measured_stds(model: nn.Module, x: torch.Tensor) -> dict[str, list[float]]:
    """Std of each Conv/Linear output, per call, taken before any in-place op can touch it."""
    stds: dict[str, list[float]] = {}
    handles = [
        m.register_forward_hook(
            lambda mod, a, out, name=name: stds.setdefault(name, []).append(float(out.std()))
        )
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return stds


def test_train_mode_batchnorm_residual_and_inplace_relu_all_fit_within_tol() -> None:
    torch.manual_seed(0)
    model, x = small_resnet().train(), torch.randn(32, 3, 16, 16) * 4 + 1
    report = lsuv_(model, x, target_std=1.0, tol=0.05)
    assert model.training
    stds = measured_stds(model, x)
    assert len(stds) == 6
    for name, values in stds.items():
        assert abs(values[0] - 1.0) < 0.05, (name, values)
    assert all(abs(p.output_std - 1.0) < 0.05 for p in report.params)  # type: ignore[operator]
    assert report.forward_passes <= len(stds)  # lsuv package: ~2 per layer
    assert not report.notes


def test_a_layer_called_twice_is_fitted_over_both_calls() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp, self.shared, self.out = nn.Linear(8, 32), nn.Linear(32, 32), nn.Linear(32, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.tanh(self.inp(x))
            h = torch.tanh(self.shared(h))
            h = torch.tanh(self.shared(h))
            return self.out(h)

    torch.manual_seed(0)
    model, x = Twice(), torch.randn(256, 8)
    lsuv_(model, x, tol=0.02)
    calls = measured_stds(model, x)["shared"]
    pooled = torch.tensor(calls).pow(2).mean().sqrt()  # equal sizes: pooled std of both calls
    assert float(pooled) == pytest.approx(1.0, abs=0.03)


def test_buffers_are_unchanged_and_the_target_is_respected() -> None:
    model = small_resnet().train()
    before = {k: v.clone() for k, v in model.named_buffers()}
    report = lsuv_(model, torch.randn(8, 3, 8, 8), target_std=0.5, tol=0.05)
    for k, v in model.named_buffers():
        assert torch.equal(v, before[k]), k
    assert all(abs(p.output_std - 0.5) < 0.05 for p in report.params)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target_std": 0.0}, ValueError, "target_std must be > 0"),
        ({"tol": -1.0}, ValueError, "tol must be > 0"),
        ({"max_iter": 0}, ValueError, "max_iter must be >= 1"),
        ({"example_input": "x"}, TypeError, "example_input must be a tensor"),
    ],
)
def test_bad_input(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    args: dict[str, object] = {"example_input": torch.randn(4, 8), **kwargs}
    with pytest.raises(error, match=match):
        lsuv_(nn.Sequential(nn.Linear(8, 4)), **args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no Linear/Conv-like layer"):
        lsuv_(nn.Sequential(nn.ReLU()), torch.randn(2, 3))


class AttentionBlock(nn.Module):
    """torch's attention (which applies out_proj functionally, never calling it), a layer fed
    zeros (called, output 0) and a layer the forward pass never calls."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, 4, batch_first=True)
        self.fc = nn.Linear(dim, dim)
        self.dead = nn.Linear(dim, dim)
        self.unused = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, _ = self.attn(x, x, x)
        return self.fc(torch.relu(a)) + self.dead(torch.zeros_like(x))


def test_multihead_attention_is_fitted_at_its_output_projection() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(AttentionBlock(), AttentionBlock())
    x = torch.randn(8, 10, 32) * 3
    report = lsuv_(model, x, tol=0.05)
    assert report["0.attn.out_proj.weight"].layer == "0.attn"
    stds: dict[str, float] = {}
    handles = [
        model.get_submodule(f"{b}.attn").register_forward_hook(
            lambda mod, a, out, b=b: stds.__setitem__(b, float(out[0].std()))
        )
        for b in ("0", "1")
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    assert stds == pytest.approx({"0": 1.0, "1": 1.0}, abs=0.05)


def test_notes_tell_a_never_called_layer_from_a_called_dead_one() -> None:
    torch.manual_seed(0)
    report = lsuv_(AttentionBlock(), torch.randn(8, 10, 32))
    never = [n for n in report.notes if "never called" in n]
    dead = [n for n in report.notes if "output is 0" in n]
    assert len(never) == len(dead) == 1
    assert "unused" in never[0]
    assert "dead" not in never[0]
    assert "dead" in dead[0]
    assert "unused" not in dead[0]
    assert not any("attn" in n for n in report.notes)


def test_the_input_is_example_input_as_everywhere_and_batch_is_a_deprecated_alias() -> None:
    def fitted(**kwargs: object) -> list[float | None]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
        x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
        g = torch.Generator().manual_seed(2)
        if kwargs.pop("positional", False):
            return [p.calibration for p in lsuv_(model, x, generator=g).params]
        return [p.calibration for p in lsuv_(model, **{k: x for k in kwargs}, generator=g).params]

    expected = fitted(positional=True)
    assert fitted(example_input=True) == expected
    with pytest.warns(DeprecationWarning, match=r"lsuv_: batch= is deprecated.*example_input="):
        assert fitted(batch=True) == expected
    model, x = nn.Linear(2, 2), torch.randn(4, 2)
    with pytest.raises(TypeError, match=r"lsuv_: got both example_input= and batch="):
        lsuv_(model, x, batch=x)
    with pytest.raises(TypeError, match=r"lsuv_: missing the argument example_input"):
        lsuv_(model)
