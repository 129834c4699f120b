"""ResNet-18 and ResNet-50 layouts built from ``nn`` modules (He et al. 2016, "Deep Residual
Learning for Image Recognition"), for the benchmarks: torchvision does not import beside the
CPU build of torch used here."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "resnet", "resnet18", "resnet50"]


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    """Identity, or a strided 1x1 projection + BN where the shape changes."""
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(*_conv_bn(cin, cout, 1, stride))


class _Block(nn.Module):
    """``relu(branch(x) + shortcut(x))`` with ``branch`` = conv-BN pairs, ReLU between them."""

    expansion = 1

    def __init__(self, convs: list[tuple[int, int, int, int]], cin: int, stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, (c_in, c_out, kernel, s) in enumerate(convs):
            layers += _conv_bn(c_in, c_out, kernel, s)
            if i < len(convs) - 1:
                layers.append(nn.ReLU(inplace=True))
        self.branch = nn.Sequential(*layers)
        self.shortcut = _shortcut(cin, convs[-1][1], stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.relu(self.branch(x) + self.shortcut(x))
        return out


class BasicBlock(_Block):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, 3x3 convs: ResNet-18/34."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__([(cin, width, 3, stride), (width, width, 3, 1)], cin, stride)


class Bottleneck(_Block):
    """1x1 reduce, 3x3, 1x1 expand to ``4·width``, plus the shortcut: ResNet-50/101/152."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        convs = [(cin, width, 1, 1), (width, width, 3, stride), (width, 4 * width, 1, 1)]
        super().__init__(convs, cin, stride)


def resnet(
    block: type[BasicBlock | Bottleneck],
    widths: tuple[int, ...],
    blocks: tuple[int, ...],
    classes: int,
) -> nn.Sequential:
    """7x7/2 stem + max pool, stages of ``block`` (stride 2 from the second), pool, head."""
    layers: list[nn.Module] = [
        *_conv_bn(3, widths[0], 7, 2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = widths[0]
    for i, (width, count) in enumerate(zip(widths, blocks, strict=True)):
        for j in range(count):
            layers.append(block(cin, width, 2 if i > 0 and j == 0 else 1))
            cin = block.expansion * width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def resnet18(channels: tuple[int, ...] = (64, 128, 256, 512), classes: int = 10) -> nn.Module:
    """ResNet-18's layout: four stages of two basic blocks."""
    return resnet(BasicBlock, channels, (2, 2, 2, 2), classes)


def resnet50(
    widths: tuple[int, ...] = (64, 128, 256, 512),
    blocks: tuple[int, ...] = (3, 4, 6, 3),
    classes: int = 1000,
) -> nn.Module:
    """ResNet-50's layout: bottleneck stages of (3, 4, 6, 3) blocks, 25.6M parameters."""
    return resnet(Bottleneck, widths, blocks, classes)
