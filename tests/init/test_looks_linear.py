"""Looks-linear init: a ReLU chain that computes an exact linear isometry at init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stabletrain import auto_init, models, trace
from stabletrain.init.looks_linear import looks_linear_, relu_chains


def _linear_reference(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """What a looks-linear chain computes: the product of its un-mirrored halves, no ReLU."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    h = x
    for i, layer in enumerate(linears):
        w = layer.weight
        if i > 0:
            w = w[:, : w.shape[1] // 2]
        if i < len(linears) - 1:
            w = w[: w.shape[0] // 2]
        h = h @ w.T
    return h


def test_a_deep_relu_chain_is_exactly_linear_and_isometric_at_init() -> None:
    torch.manual_seed(0)
    model = models.mlp(32, 8, depth=30, width=64, activation="relu").double()
    report = auto_init(model, torch.randn(16, 32, dtype=torch.float64), looks_linear=True)
    assert {r.scheme for r in report.params if r.name.endswith("weight")} == {"looks_linear"}
    x = torch.randn(50, 32, dtype=torch.float64)
    torch.testing.assert_close(model(x), _linear_reference(model, x), rtol=1e-10, atol=1e-10)
    jacobian = torch.autograd.functional.jacobian(model, x[:1]).reshape(8, 32)
    singular = torch.linalg.svdvals(jacobian)
    torch.testing.assert_close(singular, torch.ones(8, dtype=torch.float64), rtol=1e-8, atol=0)


def test_he_init_shatters_where_looks_linear_keeps_the_gradient() -> None:
    """Per-input gradient norms spread over orders of magnitude at depth 100 with He init."""
    spreads = {}
    for looks_linear in (False, True):
        torch.manual_seed(0)
        model = models.mlp(32, 1, depth=100, width=64, activation="relu").double()
        x = torch.randn(64, 32, dtype=torch.float64)
        auto_init(model, x, looks_linear=looks_linear, calibrate_layers=False)
        xs = x.clone().requires_grad_(True)
        model(xs).sum().backward()
        assert xs.grad is not None
        norms = xs.grad.norm(dim=1).log10()
        spreads[looks_linear] = float(norms.max() - norms.min())
    assert spreads[True] < 1e-6  # an isometry: the same gradient norm for every input
    assert spreads[False] > 0.3  # He: inputs' gradients differ by more than a factor 2


def test_relu_chains_need_a_plain_relu_between_layers_called_once() -> None:
    model = nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.LayerNorm(8), nn.ReLU(),
        nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 2),
    )  # fmt: skip
    chains = relu_chains(trace(model, torch.randn(3, 4)), model)
    assert chains == {"0": (False, True), "2": (True, False)}


def test_an_odd_width_breaks_the_link() -> None:
    model = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 2))
    assert relu_chains(trace(model, torch.randn(3, 4)), model) == {}


def test_conv_chains_are_exactly_linear_too() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    a, b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 2, 3, padding=1)
    looks_linear_(a.weight, mirror_in=False, mirror_out=True, generator=gen)
    looks_linear_(b.weight, mirror_in=True, mirror_out=False, generator=gen)
    nn.init.zeros_(a.bias)
    nn.init.zeros_(b.bias)
    x = torch.randn(2, 3, 6, 6)
    # relu(h) - relu(-h) = h, and zero padding is mirrored too: b(relu(a(x))) = C * (A * x)
    reference = nn.functional.conv2d(
        nn.functional.pad(nn.functional.conv2d(x, a.weight[:4], padding=1), (1, 1, 1, 1)),
        b.weight[:, :4],
    )
    torch.testing.assert_close(b(torch.relu(a(x))), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "kwargs", "match"),
    [
        ((7, 4), {"mirror_in": False, "mirror_out": True}, "even number of output"),
        ((4, 7), {"mirror_in": True, "mirror_out": False}, "even number of input"),
        ((4,), {"mirror_in": False, "mirror_out": True}, ">= 2 dims"),
    ],
)
def test_bad_shapes_raise_clear_errors(
    shape: tuple[int, ...], kwargs: dict[str, bool], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        looks_linear_(torch.empty(shape), **kwargs)


def test_a_generator_that_is_not_one_is_refused_naming_looks_linear() -> None:
    with pytest.raises(TypeError, match=r"looks_linear_: generator must be a torch\.Generator"):
        looks_linear_(torch.empty(4, 4), mirror_in=False, mirror_out=True, generator=0)  # type: ignore[arg-type]
