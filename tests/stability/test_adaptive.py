"""adaptive_clip_grad_: every output unit's gradient clipped against that unit's weight norm."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from stabletrain.stability import adaptive_clip_grad_
from tests.stability.test_clipping import RTOL, net_with_grads


def output_units(module: nn.Module, name: str, x: torch.Tensor) -> list[torch.Tensor]:
    """Boolean masks of the weights feeding each output channel, found by autograd.

    The weights that output channel o depends on are where d(sum of channel o)/dW != 0 for a
    random input: the definition of a unit's fan-in, independent of any layout rule.
    """
    weight = dict(module.named_parameters())[name]
    y = module(x)
    masks = []
    for o in range(y.shape[1]):
        (g,) = torch.autograd.grad(y[:, o].sum(), weight, retain_graph=True)
        masks.append(g != 0)
    return masks


def ref_agc(w: torch.Tensor, g: torch.Tensor, masks: list[torch.Tensor], lam: float, eps: float):
    """AGC one unit at a time in float64; returns (clipped gradient, unit gradient norms)."""
    out, norms = g.double().clone(), []
    for mask in masks:
        w_norm = max(w.double()[mask].norm().item(), eps)
        g_norm = g.double()[mask].norm().item()
        norms.append(g_norm)
        if g_norm / w_norm > lam:
            out[mask] *= lam * w_norm / g_norm
    return out.to(g.dtype), torch.tensor(norms, dtype=torch.float64)


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: nn.Linear(5, 4), (3, 5)),
        (lambda: nn.Conv2d(4, 6, 3, groups=2), (2, 4, 5, 5)),
        (lambda: nn.ConvTranspose2d(4, 6, 3), (2, 4, 5, 5)),
        (lambda: nn.ConvTranspose2d(4, 6, 3, groups=2), (2, 4, 5, 5)),
        (lambda: nn.ConvTranspose1d(6, 9, 2, groups=3), (2, 6, 7)),
    ],
    ids=["linear", "conv_groups", "deconv", "deconv_groups", "deconv1d_groups"],
)
def test_agc_clips_each_output_unit_found_by_autograd(
    make: Callable[[], nn.Module], shape: tuple[int, ...]
) -> None:
    torch.manual_seed(1)
    module, x = make(), torch.randn(shape)
    masks = output_units(module, "weight", x)
    assert all(m.any() for m in masks)
    module.zero_grad()
    (module(x).pow(3).sum() * 50).backward()  # large enough that some units clip
    w, g = module.weight.detach().clone(), module.weight.grad.clone()
    bias_g = module.bias.grad.clone()
    expected, unit_norms = ref_agc(w, g, masks, lam=0.05, eps=1e-3)
    bias_expected, bias_norm = ref_agc(
        module.bias.detach(), bias_g, [torch.ones_like(bias_g, dtype=torch.bool)], 0.05, 1e-3
    )
    returned = adaptive_clip_grad_(module, clipping=0.05)
    torch.testing.assert_close(returned["weight"].double(), unit_norms, rtol=RTOL, atol=1e-9)
    torch.testing.assert_close(module.weight.grad, expected, rtol=RTOL, atol=1e-7)
    assert not torch.equal(module.weight.grad, g)  # something was clipped
    torch.testing.assert_close(returned["bias"].double(), bias_norm[0], rtol=RTOL, atol=1e-9)
    torch.testing.assert_close(module.bias.grad, bias_expected, rtol=RTOL, atol=1e-7)


def test_agc_on_attention_clips_rows_of_the_packed_projection() -> None:
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(6, 2)
    x = torch.randn(4, 2, 6)
    (attn(x, x, x)[0].pow(2).sum() * 100).backward()
    w, g = attn.in_proj_weight.detach().clone(), attn.in_proj_weight.grad.clone()
    rows = [
        torch.zeros_like(w, dtype=torch.bool).index_fill_(0, torch.tensor(i), True)
        for i in range(18)
    ]
    expected, norms = ref_agc(w, g, rows, lam=0.01, eps=1e-3)
    returned = adaptive_clip_grad_(attn, clipping=0.01)
    assert set(returned) == {"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}
    torch.testing.assert_close(attn.in_proj_weight.grad, expected, rtol=RTOL, atol=1e-7)
    torch.testing.assert_close(returned["in_proj_weight"].double(), norms, rtol=RTOL, atol=1e-9)


def test_agc_without_a_model_uses_dim_0_and_unit_dims_override_it() -> None:
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(4, 6, 3)
    deconv.weight.grad = torch.randn_like(deconv.weight)
    masks = output_units(deconv, "weight", torch.randn(1, 4, 5, 5))
    expected, _ = ref_agc(deconv.weight, deconv.weight.grad, masks, 0.01, 1e-3)
    by_name = deconv.weight.grad.clone()
    w = deconv.weight.detach()
    adaptive_clip_grad_([("w", w.requires_grad_())], unit_dims={"w": 1})  # no grad: ignored
    pairs = [("w", nn.Parameter(w.clone()))]
    pairs[0][1].grad = by_name
    adaptive_clip_grad_(pairs, clipping=0.01, unit_dims={"w": 1})
    torch.testing.assert_close(by_name, expected, rtol=RTOL, atol=1e-7)


def test_agc_unit_dims_by_module_class_and_whole_tensor() -> None:
    class Transposed(nn.Module):  # a custom layer whose weight is (in, out)
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(5, 3))

    torch.manual_seed(0)
    layer = Transposed()
    layer.weight.grad = torch.randn(5, 3)
    cols = [
        torch.zeros(5, 3, dtype=torch.bool).index_fill_(1, torch.tensor(j), True) for j in range(3)
    ]
    expected, _ = ref_agc(layer.weight, layer.weight.grad, cols, 0.01, 1e-3)
    out = adaptive_clip_grad_(layer, unit_dims={Transposed: 1})
    assert out["weight"].shape == (3,)
    torch.testing.assert_close(layer.weight.grad, expected, rtol=RTOL, atol=1e-7)
    layer.weight.grad = torch.randn(5, 3)
    whole, _ = ref_agc(
        layer.weight, layer.weight.grad, [torch.ones(5, 3, dtype=torch.bool)], 0.01, 1e-3
    )
    out = adaptive_clip_grad_(layer, unit_dims={"weight": None})
    assert out["weight"].shape == ()
    torch.testing.assert_close(layer.weight.grad, whole, rtol=RTOL, atol=1e-7)


def test_agc_picks_dim_1_for_transformers_conv1d() -> None:
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    torch.manual_seed(0)
    conv = pytorch_utils.Conv1D(6, 4)  # weight (in=4, out=6)
    nn.init.normal_(conv.weight)
    x = torch.randn(3, 4)
    masks = []
    for o in range(6):
        (g,) = torch.autograd.grad(conv(x)[:, o].sum(), conv.weight)
        masks.append(g != 0)
    conv.weight.grad = torch.randn(4, 6)
    expected, _ = ref_agc(conv.weight, conv.weight.grad, masks, 0.01, 1e-3)
    assert adaptive_clip_grad_(conv)["weight"].shape == (6,)
    torch.testing.assert_close(conv.weight.grad, expected, rtol=RTOL, atol=1e-7)


def test_agc_exclude_leaves_the_classifier_and_zero_weights_use_eps() -> None:
    net = net_with_grads(grad_scale=100.0)
    fc_before = net.fc.weight.grad.clone()
    returned = adaptive_clip_grad_(net, clipping=0.01, exclude=("fc",))
    assert "fc.weight" not in returned
    assert torch.equal(net.fc.weight.grad, fc_before)
    zero = nn.Linear(3, 2)
    nn.init.zeros_(zero.weight)
    zero.weight.grad = torch.ones(2, 3)
    adaptive_clip_grad_(zero, clipping=0.01, eps=1e-3)
    # each row: ||G_i|| = sqrt(3) clipped to 0.01 * max(0, 1e-3)
    torch.testing.assert_close(
        zero.weight.grad.norm(dim=1), torch.full((2,), 1e-5), rtol=1e-5, atol=0
    )


def test_agc_leaves_a_nonfinite_unit_and_clips_the_others() -> None:
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    layer.weight.grad = torch.tensor([[math.nan, 1.0, 1.0], [10.0, 0.0, 0.0]])
    norms = adaptive_clip_grad_(layer, clipping=0.01)
    assert math.isnan(norms["weight"][0].item())
    assert layer.weight.grad[0, 1:].tolist() == [1.0, 1.0]
    assert layer.weight.grad[1, 0].item() == pytest.approx(0.01 * math.sqrt(3), rel=1e-6)
