"""The benchmarks' ResNets have the published layouts: parameter counts of the reference
implementations (torchvision's resnet18: 11,689,512; resnet50: 25,557,032) and output shapes."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch

from tests.benchmarks._run import load_benchmark


@pytest.fixture(scope="module")
def resnets() -> ModuleType:
    return load_benchmark("_resnets")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "expected"), [("resnet18", 11_689_512), ("resnet50", 25_557_032)])
def test_parameter_counts_match_the_reference_layouts(
    resnets: ModuleType, name: str, expected: int
) -> None:
    model = getattr(resnets, name)(classes=1000)
    assert n_params(model) == expected


def test_small_variants_map_images_to_logits(resnets: ModuleType) -> None:
    torch.manual_seed(0)
    model = resnets.resnet50((8, 8, 8, 8), (1, 1, 1, 1), 10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    blocks = [m for m in model if isinstance(m, resnets.Bottleneck)]
    assert [type(b.shortcut).__name__ for b in blocks] == ["Sequential"] * 4  # 8 -> 32 channels
