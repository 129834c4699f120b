"""Gains: against 10^7-sample Monte Carlo, closed forms, torch's table, and for any callable."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from stabletrain.init import ACTIVATIONS, activation_name, gain
from stabletrain.init.gain import _REGISTRY

MC_SAMPLES = 10_000_000
MC_RTOL = 1e-3  # the MC standard error of a gain is <= 4e-4 relative for every activation here


def monte_carlo_gain(fn: Callable[[torch.Tensor], torch.Tensor], kind: str) -> float:
    """1/sqrt(E[f(z)^2]) or 1/sqrt(E[f'(z)^2]) from 10^7 seeded N(0, 1) draws, float64."""
    g = torch.Generator().manual_seed(1234)
    total, chunk = 0.0, 1_000_000
    for _ in range(MC_SAMPLES // chunk):
        z = torch.randn(chunk, dtype=torch.float64, generator=g, requires_grad=kind == "backward")
        y = fn(z)
        if kind == "backward":
            (y,) = torch.autograd.grad(y.sum(), z)
        total += float((y.detach() ** 2).sum())
    return 1.0 / math.sqrt(total / MC_SAMPLES)


@pytest.mark.parametrize("kind", ["forward", "backward"])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_gain_matches_a_monte_carlo_estimate(name: str, kind: str) -> None:
    fn = _REGISTRY[name][0](**_REGISTRY[name][1])
    assert gain(name, kind) == pytest.approx(monte_carlo_gain(fn, kind), rel=MC_RTOL)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tanh", 1.5925),
        ("sigmoid", 1.8462),
        ("gelu", 1.5335),
        ("silu", 1.6765),
        ("elu", 1.2452),
        ("mish", 1.4868),
        ("softplus", 1.0419),
    ],
)
def test_forward_gains_have_the_published_values(name: str, expected: float) -> None:
    assert gain(name) == pytest.approx(expected, abs=5e-5)


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.1, 0.2, 1.0, 3.0])
@pytest.mark.parametrize("kind", ["forward", "backward"])
def test_leaky_relu_closed_form_equals_quadrature_and_torch(slope: float, kind: str) -> None:
    closed = gain("leaky_relu", kind, negative_slope=slope)
    quadrature = gain(lambda z: F.leaky_relu(z, slope), kind)
    assert closed == pytest.approx(math.sqrt(2 / (1 + slope**2)), rel=1e-14)
    assert quadrature == pytest.approx(closed, rel=1e-10)
    assert closed == pytest.approx(nn.init.calculate_gain("leaky_relu", slope), rel=1e-12)


def test_relu_and_linear_closed_forms_equal_quadrature() -> None:
    assert gain("relu") == gain("relu", "backward") == math.sqrt(2)
    assert gain(lambda z: torch.clamp(z, min=0)) == pytest.approx(math.sqrt(2), rel=1e-10)
    assert gain(lambda z: 2 * z, "backward") == pytest.approx(0.5, rel=1e-12)
    assert gain("linear") == gain("identity") == gain("conv2d") == 1.0


def test_hardtanh_gains_equal_their_closed_forms() -> None:
    phi, cdf = stats.norm.pdf(1.0), stats.norm.cdf(1.0)
    forward_sq = 2 * (1 - cdf) + (2 * cdf - 1) - 2 * phi  # E[clip(z, -1, 1)^2]
    assert gain("hardtanh") == pytest.approx(1 / math.sqrt(forward_sq), rel=1e-10)
    assert gain("hardtanh", "backward") == pytest.approx(1 / math.sqrt(2 * cdf - 1), rel=1e-10)


def test_softplus_backward_gain_is_sigmoid_forward_gain() -> None:
    # softplus' = sigmoid, so E[softplus'(z)^2] = E[sigmoid(z)^2]
    assert gain("softplus", "backward") == pytest.approx(gain("sigmoid"), rel=1e-10)


def test_selu_is_self_normalizing_with_gain_one() -> None:
    assert gain("selu") == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("name", "param"),
    [
        ("linear", None),
        ("relu", None),
        ("leaky_relu", 0.2),
        ("tanh", None),
        ("sigmoid", None),
        ("selu", None),
    ],
)
def test_torch_convention_reproduces_calculate_gain(name: str, param: float | None) -> None:
    kwargs = {} if param is None else {"negative_slope": param}
    expected = nn.init.calculate_gain(name, param)
    assert gain(name, convention="torch", **kwargs) == pytest.approx(expected, rel=1e-12)


def test_torch_convention_rejects_what_torch_does_not_have() -> None:
    with pytest.raises(ValueError, match=r"'gelu'.*'linear', 'sigmoid'"):
        gain("gelu", convention="torch")
    with pytest.raises(ValueError, match="forward gains only"):
        gain("relu", "backward", convention="torch")


@pytest.mark.parametrize(
    ("module", "name", "params"),
    [
        (nn.GELU(approximate="tanh"), "gelu_tanh", {}),
        (nn.GELU(), "gelu", {}),
        (nn.LeakyReLU(0.1), "leaky_relu", {"negative_slope": 0.1}),
        (nn.PReLU(), "leaky_relu", {"negative_slope": 0.25}),
        (nn.ELU(alpha=0.5), "elu", {"alpha": 0.5}),
        (nn.CELU(alpha=2.0), "celu", {"alpha": 2.0}),
        (nn.Softplus(beta=2.0), "softplus", {"beta": 2.0}),
        (nn.Hardtanh(-2.0, 2.0), "hardtanh", {"min_val": -2.0, "max_val": 2.0}),
        (nn.ReLU6(), "relu6", {}),
        (nn.SiLU(), "silu", {}),
        (nn.Identity(), "linear", {}),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_modules_resolve_to_their_named_gain(
    module: nn.Module, name: str, params: dict[str, float]
) -> None:
    for kind in ("forward", "backward"):
        assert gain(module, kind) == gain(name, kind, **params)
    assert activation_name(module) == name


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


@pytest.mark.parametrize("fn", [Swish(), lambda z: z * torch.sigmoid(z), F.silu])
def test_any_callable_gets_its_gain_with_the_derivative_by_autograd(fn: object) -> None:
    for kind in ("forward", "backward"):
        assert gain(fn, kind) == pytest.approx(gain("silu", kind), rel=1e-10)


def test_aliases_and_functions_have_names() -> None:
    assert activation_name("Swish") == "silu"
    assert activation_name(torch.tanh) == "tanh"
    assert gain("gelu_new") == gain("gelu_tanh")


def test_named_gains_are_cached() -> None:
    from stabletrain.init.gain import _named_gain

    gain("mish", "backward")
    hits = _named_gain.cache_info().hits
    gain("mish", "backward")
    assert _named_gain.cache_info().hits == hits + 1


def _raises(error: type[Exception]) -> Callable[[torch.Tensor], torch.Tensor]:
    def activation(z: torch.Tensor) -> torch.Tensor:
        raise error("always")

    return activation


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: gain("relu2"), ValueError, "unknown activation 'relu2'.*'gelu'"),
        (lambda: gain("relu", "sideways"), ValueError, "unknown kind 'sideways'"),
        (lambda: gain("relu", convention="keras"), ValueError, "unknown convention"),
        (lambda: gain("elu", beta=2.0), ValueError, r"\['beta'\].*alpha"),
        (lambda: gain("leaky_relu", negative_slope=math.nan), ValueError, "finite"),
        (lambda: gain(42), TypeError, "activation name, module or callable"),
        (lambda: gain(lambda z: z.sum()), TypeError, "elementwise"),
        (lambda: gain(nn.Linear(3, 3)), TypeError, "elementwise"),
        (lambda: gain(torch.sign, "backward"), ValueError, "no finite gain"),
        (lambda: gain(lambda z: z * 0), ValueError, "constant"),
        (lambda: gain(lambda z: z, negative_slope=0.1), ValueError, "named activations only"),
        (lambda: gain("hardtanh", min_val=1.0, max_val=-1.0), ValueError, "gain: 'hardtanh'"),
        (lambda: gain(lambda z: z.long()), TypeError, "int64 tensor, not a real floating"),
        (lambda: gain(_raises(ZeroDivisionError)), TypeError, "gain: cannot evaluate.*always"),
        (lambda: gain(_raises(KeyError)), TypeError, "gain: cannot evaluate.*always"),
        (lambda: gain(_raises(ValueError)), ValueError, "gain: .* cannot be evaluated: always"),
    ],
)
def test_bad_input_raises_a_clear_error(call: Callable[[], float], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    "softmax",
    [
        nn.Softmax(dim=-1),
        nn.Softmax(dim=0),
        nn.LogSoftmax(dim=1),
        nn.Softmin(dim=0),
        nn.Softmax2d(),
        torch.softmax,
        F.softmax,
        F.log_softmax,
        torch.Tensor.softmax,
    ],
    ids=repr,
)
@pytest.mark.parametrize("kind", ["forward", "backward"])
def test_softmax_is_refused_as_not_elementwise_with_the_logits_advice(
    softmax: object, kind: str
) -> None:
    """Quadrature of softmax over one vector of nodes gave ~4.8e7: a number with no meaning."""
    with pytest.raises(ValueError, match=r"not an elementwise activation.*logits.*linear"):
        gain(softmax, kind)  # type: ignore[arg-type]


@pytest.mark.parametrize("slope", [1e200, -1e300, 1e308])
def test_a_huge_leaky_slope_has_a_tiny_positive_gain_not_an_overflow(slope: float) -> None:
    """√(2/(1 + a²)) ≈ √2/|a|: a² overflows a float, the gain does not."""
    for kind in ("forward", "backward"):
        value = gain("leaky_relu", kind, negative_slope=slope)  # type: ignore[arg-type]
        assert value == pytest.approx(math.sqrt(2) / abs(slope), rel=1e-12)
