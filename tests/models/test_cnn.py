"""cnn: shapes on 8x8 and 28x28 images, stage layout, modes, training, and bad input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from stabletrain.models import cnn

TrainFn = Callable[..., tuple[float, float]]


@pytest.mark.parametrize("size", [8, 28, 32])
@pytest.mark.parametrize("channels", [(16, 32), (8, 16, 32)])
def test_output_shape_is_batch_by_num_classes(size: int, channels: tuple[int, ...]) -> None:
    model = cnn(in_channels=3, num_classes=7, channels=channels, dropout=0.2)
    assert model(torch.randn(4, 3, size, size)).shape == (4, 7)


def test_default_is_two_stages_for_one_channel_ten_classes() -> None:
    model = cnn()
    assert [name for name, _ in model.named_children()] == [
        "stage1",
        "stage2",
        "pool",
        "flatten",
        "head",
    ]
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_a_stage_is_conv_batchnorm_relu_maxpool() -> None:
    model = cnn(channels=(16, 32), dropout=0.5)
    for stage, (c_in, c_out) in zip((model.stage1, model.stage2), ((1, 16), (16, 32)), strict=True):
        assert [type(m) for m in stage] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
        conv = stage.conv
        assert (conv.in_channels, conv.out_channels) == (c_in, c_out)
        assert conv.kernel_size == (3, 3)
        assert conv.padding == (1, 1)
        assert conv.bias is None  # BatchNorm's shift replaces it
        assert stage.pool.kernel_size == 2
    tail = [type(m) for m in list(model)[-4:]]
    assert tail == [nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Linear]


def test_without_batch_norm_the_convs_keep_their_bias() -> None:
    model = cnn(channels=(8, 8), batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert [type(m) for m in model.stage1] == [nn.Conv2d, nn.ReLU, nn.MaxPool2d]
    assert model.stage1.conv.bias is not None


def test_dropout_is_only_added_when_positive() -> None:
    assert not any(isinstance(m, nn.Dropout) for m in cnn(dropout=0.0).modules())
    assert cnn(dropout=0.3).dropout.p == 0.3


@pytest.mark.parametrize("batch_norm", [True, False])
def test_runs_in_train_and_eval_mode(batch_norm: bool) -> None:
    model = cnn(channels=(4, 8), dropout=0.3, batch_norm=batch_norm)
    x = torch.randn(6, 1, 28, 28)
    model.train()
    assert torch.isfinite(model(x)).all()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))


@pytest.mark.parametrize("batch_norm", [True, False])
def test_sgd_decreases_the_loss_on_tiny_synthetic_images(
    batch_norm: bool, sgd_losses: TrainFn
) -> None:
    # Class 0 is bright in the left half, class 1 in the right half, on top of noise.
    labels = torch.arange(32) % 2
    x = 0.5 * torch.randn(32, 1, 8, 8)
    x[labels == 0, :, :, :4] += 1.0
    x[labels == 1, :, :, 4:] += 1.0
    model = cnn(num_classes=2, channels=(8, 16), batch_norm=batch_norm)
    first, last = sgd_losses(model, x, labels, nn.functional.cross_entropy, steps=40, lr=0.05)
    assert last < 0.5 * first


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"channels": ()}, ValueError, r"cnn: channels must hold at least one int"),
        ({"channels": (16, 0)}, ValueError, r"cnn: channels\[1\] must be >= 1, got 0"),
        ({"channels": 16}, TypeError, r"channels must be a sequence of ints"),
        ({"in_channels": 0}, ValueError, r"in_channels must be >= 1"),
        ({"num_classes": 0}, ValueError, r"num_classes must be >= 1"),
        ({"dropout": 1.5}, ValueError, r"dropout must be in \[0, 1\), got 1\.5"),
    ],
)
def test_bad_input_raises_naming_the_value_and_the_options(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        cnn(**kwargs)  # type: ignore[arg-type]
