"""The theory's activation moments and convolution coverage against slow references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy import integrate
from torch import nn

from stabletrain.diagnostics._layers import conv_coverage
from stabletrain.diagnostics._theory import activation_moments
from stabletrain.init import gain

FUNCTIONS = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "silu": F.silu,
    "elu": F.elu,
}


def _reference(fn: object, q: float) -> tuple[float, float]:
    """E[f(z)^2] and E[f'(z)^2] for z ~ N(0, q) by adaptive quadrature, float64 autograd."""

    def value_and_slope(z: float) -> tuple[float, float]:
        t = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        y = fn(t)  # type: ignore[operator]
        (d,) = torch.autograd.grad(y, t)
        return float(y.detach()), float(d)

    def density(z: float) -> float:
        return math.exp(-z * z / (2 * q)) / math.sqrt(2 * math.pi * q)

    bound = 12 * math.sqrt(q)
    forward = integrate.quad(lambda z: value_and_slope(z)[0] ** 2 * density(z), -bound, bound)
    backward = integrate.quad(lambda z: value_and_slope(z)[1] ** 2 * density(z), -bound, bound)
    return forward[0], backward[0]


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("q", [0.01, 1.0, 9.0])
def test_moments_match_quadrature_at_every_input_scale(name: str, q: float) -> None:
    forward, backward = activation_moments(name, {}, q)
    ref_forward, ref_backward = _reference(FUNCTIONS[name], q)
    # q is rounded to 4 significant digits for caching: 1e-4 relative
    assert forward == pytest.approx(ref_forward, rel=1e-3)
    assert backward == pytest.approx(ref_backward, rel=1e-3)


def test_at_unit_variance_the_moments_are_the_gains() -> None:
    for name in ("tanh", "gelu", "sigmoid"):
        forward, backward = activation_moments(name, {}, 1.0)
        assert forward == pytest.approx(1 / gain(name) ** 2, rel=1e-6)
        assert backward == pytest.approx(1 / gain(name, "backward") ** 2, rel=1e-6)


def test_homogeneous_activations_scale_with_q_in_closed_form() -> None:
    assert activation_moments("linear", {}, 2.5) == (2.5, 1.0)
    forward, backward = activation_moments("leaky_relu", {"negative_slope": 0.2}, 4.0)
    assert forward == pytest.approx(4.0 * (1 + 0.04) / 2)
    assert backward == pytest.approx((1 + 0.04) / 2)


def test_tanh_is_linear_for_small_inputs_and_saturates_for_large_ones() -> None:
    small, slope = activation_moments("tanh", {}, 1e-6)
    assert small == pytest.approx(1e-6, rel=1e-3)
    assert slope == pytest.approx(1.0, rel=1e-3)
    large, slope = activation_moments("tanh", {}, 1e4)
    assert large == pytest.approx(1.0, abs=0.01)
    assert slope < 0.02


def test_invalid_second_moments_give_nan() -> None:
    assert all(math.isnan(v) for v in activation_moments("tanh", {}, float("nan")))
    assert all(math.isnan(v) for v in activation_moments("relu", {}, -1.0))


def _coverage_reference(length: int, kernel: int, stride: int, pad: int) -> tuple[float, float]:
    """Count in-bounds taps by running the convolution on ones (1-D)."""
    conv = nn.Conv1d(1, 1, kernel, stride, pad, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        taps = conv(torch.ones(1, 1, length)).sum().item()
    out = (length + 2 * pad - kernel) // stride + 1
    return taps / (out * kernel), taps / (length * kernel)


@pytest.mark.parametrize(
    ("length", "kernel", "stride", "pad"),
    [(7, 3, 1, 1), (1, 3, 1, 1), (56, 3, 2, 1), (224, 7, 2, 3), (8, 1, 1, 0), (5, 5, 1, 2)],
)
def test_conv_coverage_counts_the_taps_inside_the_input(
    length: int, kernel: int, stride: int, pad: int
) -> None:
    conv = nn.Conv2d(4, 4, kernel, stride, pad)
    forward, backward = conv_coverage(conv, (2, 4, length, length))
    ref_forward, ref_backward = _coverage_reference(length, kernel, stride, pad)
    assert forward == pytest.approx(ref_forward**2)
    assert backward == pytest.approx(ref_backward**2)


@pytest.mark.parametrize(
    ("length", "kernel", "stride", "pad"), [(8, 4, 2, 1), (5, 3, 1, 1), (4, 3, 2, 0), (1, 3, 1, 1)]
)
def test_transposed_conv_coverage_counts_the_taps_inside_the_output(
    length: int, kernel: int, stride: int, pad: int
) -> None:
    conv = nn.ConvTranspose1d(1, 1, kernel, stride, pad, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        received = conv(torch.ones(1, 1, length))  # taps each output receives
    out = received.shape[-1]
    taps = float(received.sum())
    forward, backward = conv_coverage(conv, (1, 1, length))
    assert forward == pytest.approx(taps / (out * kernel))
    assert backward == pytest.approx(taps / (length * kernel))


def test_conv_coverage_of_the_documented_cases() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=1)
    assert conv_coverage(conv, (1, 4, 7, 7))[0] == pytest.approx((19 / 21) ** 2)  # 82%
    assert conv_coverage(conv, (1, 4, 1, 1))[0] == pytest.approx(1 / 9)
    strided = nn.Conv2d(4, 4, 1, stride=2)
    assert conv_coverage(strided, (1, 4, 8, 8)) == pytest.approx((1.0, 0.25))
    assert conv_coverage(nn.ConvTranspose2d(4, 4, 4, 2, 1), (1, 4, 64, 64))[0] == pytest.approx(
        (127 / 128 / 2) ** 2
    )
    for other in (nn.Linear(3, 3), nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular")):
        assert conv_coverage(other, (1, 4, 7, 7)) == (1.0, 1.0)
