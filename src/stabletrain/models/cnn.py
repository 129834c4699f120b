"""A small convolutional classifier: conv stages, global average pooling and a Linear head."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from stabletrain._checks import check_positive_int
from stabletrain.models._validate import check_dropout, check_positive_ints

__all__ = ["cnn"]


def _stage(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    """Conv2d(3x3, padding 1) -> BatchNorm2d (if any) -> ReLU -> MaxPool2d(2)."""
    # BatchNorm subtracts the batch mean, which cancels a conv bias: drop it then.
    layers: list[tuple[str, nn.Module]] = [
        ("conv", nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm))
    ]
    if batch_norm:
        layers.append(("norm", nn.BatchNorm2d(out_channels)))
    layers += [("act", nn.ReLU()), ("pool", nn.MaxPool2d(2))]
    return nn.Sequential(OrderedDict(layers))


def cnn(
    in_channels: int = 1,
    num_classes: int = 10,
    channels: Sequence[int] = (16, 32),
    dropout: float = 0.0,
    batch_norm: bool = True,
) -> nn.Sequential:
    """A VGG-style image classifier for small images (8x8 digits, 28x28 MNIST, 32x32 CIFAR).

    Each stage is ``Conv2d(3x3, padding 1) -> BatchNorm2d -> ReLU -> MaxPool2d(2)`` and halves
    the height and width; then ``AdaptiveAvgPool2d(1) -> Flatten -> Dropout -> Linear``. Global
    average pooling (Lin et al. 2014, "Network In Network") makes the head independent of the
    image size. The tutorials' recipe for CNN classification is He init with Dropout and
    BatchNorm (claim C4).

    Children are named ``stage1, ..., stage{n}, pool, flatten, dropout, head``; inside a stage
    ``conv, norm, act, pool``.

    Args:
        in_channels: channels of the input images, ``(batch, in_channels, H, W)``.
        num_classes: number of logits out.
        channels: output channels of each stage; ``H`` and ``W`` must be at least
            ``2 ** len(channels)`` (two stages for 8x8 digits leave 2x2 maps).
        dropout: drop probability in ``[0, 1)`` before the head; no module when 0.
        batch_norm: add ``BatchNorm2d`` after each conv (whose bias is then dropped).

    Returns:
        an ``nn.Sequential`` mapping ``(batch, in_channels, H, W)`` to ``(batch, num_classes)``.

    Raises:
        ValueError: for a non-positive size, an empty ``channels`` or a dropout outside
            ``[0, 1)``.

    Example:
        >>> import torch
        >>> model = cnn(in_channels=1, num_classes=10, channels=(16, 32))
        >>> model(torch.randn(4, 1, 8, 8)).shape
        torch.Size([4, 10])
        >>> [name for name, _ in model.named_children()]
        ['stage1', 'stage2', 'pool', 'flatten', 'head']
        >>> [type(m).__name__ for m in model.stage1]
        ['Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d']
    """
    where = "cnn"
    in_channels = check_positive_int("in_channels", in_channels, where=where)
    num_classes = check_positive_int("num_classes", num_classes, where=where)
    widths = check_positive_ints("channels", channels, where=where)
    dropout = check_dropout(dropout, where=where)

    children: list[tuple[str, nn.Module]] = []
    previous = in_channels
    for i, width in enumerate(widths, start=1):
        children.append((f"stage{i}", _stage(previous, width, batch_norm)))
        previous = width
    children += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
    if dropout > 0:
        children.append(("dropout", nn.Dropout(dropout)))
    children.append(("head", nn.Linear(previous, num_classes)))
    return nn.Sequential(OrderedDict(children))
