"""Max-norm: each output unit's incoming weights against a slow reference whose units come from
autograd (the weight entries that reach output unit o), for every layer type; the step hook.

Tolerances: float64, rtol 1e-12 against the reference; the constraint ‖w_i‖ <= c·(1 + 1e-12).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from stabletrain.regularization.max_norm import MaxNormConstraint, max_norm_, max_norm_constraint

C = 0.8
EQUAL = {"rtol": 1e-12, "atol": 1e-15}


def _unit_masks(layer: nn.Module) -> list[torch.Tensor]:
    """For each output unit o, the entries of ``layer.weight`` that output o reads: the nonzero
    entries of d(output[..., o, ...].sum())/d weight for an all-ones input (slow, by autograd)."""
    weight = layer.weight
    if isinstance(layer, nn.Embedding):
        units = layer.num_embeddings  # unit i: the vector looked up for token i
        outputs = [layer(torch.tensor([i])).sum() for i in range(units)]
    else:
        if isinstance(layer, nn.Linear) or type(layer).__name__ == "Conv1D":
            x = torch.ones(1, weight.shape[1] if isinstance(layer, nn.Linear) else weight.shape[0])
        elif isinstance(layer, nn.Bilinear):
            x = torch.ones(1, layer.in1_features)
        else:
            x = torch.ones(1, layer.in_channels, *([5] * (weight.dim() - 2)))
        x = x.double()
        out = (
            layer(x, torch.ones(1, layer.in2_features).double())
            if isinstance(layer, nn.Bilinear)
            else layer(x)
        )
        outputs = [out[:, o].sum() for o in range(out.shape[1])]
    masks = []
    for value in outputs:
        (grad,) = torch.autograd.grad(value, weight, retain_graph=True)
        masks.append(grad != 0)
    return masks


def _slow_max_norm_(weight: torch.Tensor, masks: list[torch.Tensor], c: float) -> torch.Tensor:
    """Rescale unit by unit in a Python loop; return the norms before."""
    norms = []
    with torch.no_grad():
        for mask in masks:
            norm = weight[mask].norm()
            norms.append(norm)
            if norm > c:
                weight[mask] = weight[mask] * (c / norm)
    return torch.stack(norms)


LAYERS: dict[str, Callable[[], nn.Module]] = {
    "Linear": lambda: nn.Linear(5, 4),
    "Bilinear": lambda: nn.Bilinear(3, 2, 4),
    "Conv1d": lambda: nn.Conv1d(4, 6, 3),
    "Conv2d-groups": lambda: nn.Conv2d(4, 6, 3, groups=2),
    "Conv3d": lambda: nn.Conv3d(2, 3, 2),
    "ConvTranspose1d": lambda: nn.ConvTranspose1d(3, 5, 3),
    "ConvTranspose2d-groups": lambda: nn.ConvTranspose2d(4, 6, 3, groups=2),
    "ConvTranspose2d-depthwise": lambda: nn.ConvTranspose2d(3, 6, 2, groups=3),
    "Embedding": lambda: nn.Embedding(7, 5),
}


def _layer(name: str) -> nn.Module:
    torch.manual_seed(0)
    return LAYERS[name]().double()


@pytest.mark.parametrize("name", list(LAYERS))
def test_max_norm_rescales_each_output_unit_like_the_slow_reference(name: str) -> None:
    layer, reference = _layer(name), _layer(name)
    masks = _unit_masks(reference)
    initial = torch.stack([reference.weight.detach()[m].norm() for m in masks])
    c = float(initial.min() + initial.max()) / 2  # some units above c, some below
    expected_norms = _slow_max_norm_(reference.weight, masks, c)
    norms = max_norm_(layer, c)
    assert list(norms) == ["weight"]
    torch.testing.assert_close(norms["weight"], expected_norms, **EQUAL)
    torch.testing.assert_close(layer.weight, reference.weight, **EQUAL)
    after = torch.stack([layer.weight[m].norm() for m in masks])
    assert bool((after <= c * (1 + 1e-12)).all())
    assert not torch.equal(after, initial)


def test_gpt2_conv1d_units_are_its_columns() -> None:
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    torch.manual_seed(0)
    layer, reference = pytorch_utils.Conv1D(4, 5).double(), pytorch_utils.Conv1D(4, 5).double()
    with torch.no_grad():
        reference.weight.copy_(layer.weight.normal_(0, 1.0))
    expected = _slow_max_norm_(reference.weight, _unit_masks(reference), C)
    torch.testing.assert_close(max_norm_(layer, C)["weight"], expected, **EQUAL)
    torch.testing.assert_close(layer.weight, reference.weight, **EQUAL)


@pytest.mark.parametrize(("dim", "p"), [(0, 2.0), (1, 2.0), (-1, 1.0), (2, float("inf"))])
def test_max_norm_on_a_tensor_slices_along_dim_like_a_loop(dim: int, p: float) -> None:
    g = torch.Generator().manual_seed(0)
    t = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    reference = t.clone()
    expected = []
    for i in range(t.shape[dim]):
        unit = reference.select(dim, i)
        norm = torch.linalg.vector_norm(unit, p)
        expected.append(norm)
        if norm > 1.5:
            unit.mul_(1.5 / norm)
    norms = max_norm_(t, 1.5, dim=dim, norm_type=p)
    torch.testing.assert_close(norms, torch.stack(expected), **EQUAL)
    torch.testing.assert_close(t, reference, **EQUAL)


def test_units_inside_the_ball_are_left_bit_for_bit_and_vectors_are_one_unit() -> None:
    w = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)
    kept = w[1].clone()
    torch.testing.assert_close(max_norm_(w, 1.0), torch.tensor([5.0, 0.5], dtype=torch.float64))
    assert torch.equal(w[1], kept)
    v = torch.tensor([3.0, 4.0])
    assert max_norm_(v, 1.0).shape == ()  # a vector is one unit by default
    torch.testing.assert_close(v, torch.tensor([0.6, 0.8]))
    e = torch.tensor([3.0, -0.5])
    torch.testing.assert_close(max_norm_(e, 1.0, dim=0), torch.tensor([3.0, 0.5]))
    torch.testing.assert_close(e, torch.tensor([1.0, -0.5]))  # one unit per element


def test_units_with_a_non_finite_norm_are_left_alone() -> None:
    w = torch.tensor([[float("nan"), 1.0], [float("inf"), 1.0], [3.0, 4.0]])
    norms = max_norm_(w, 1.0)
    assert torch.isnan(norms[0])
    assert torch.isinf(norms[1])
    assert w[0, 1] == 1.0
    assert w[1, 1] == 1.0
    assert torch.isinf(w[1, 0])
    torch.testing.assert_close(w[2], torch.tensor([0.6, 0.8]))


class _Net(nn.Module):
    """One of each layer kind; the forward uses them all, so every weight gets a gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.conv = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.up = nn.ConvTranspose2d(6, 4, 2, stride=2, groups=2)
        self.head = nn.Linear(4, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens).permute(0, 3, 1, 2)  # (B, H, W) -> (B, 4, H, W)
        x = self.up(torch.tanh(self.conv(x)))  # (B, 4, 2H, 2W)
        return self.head(x.mean(dim=(2, 3)))


def _net_masks(net: _Net) -> dict[str, list[torch.Tensor]]:
    return {f"{n}.weight": _unit_masks(getattr(net, n)) for n in ("embed", "conv", "up", "head")}


def test_the_hook_keeps_every_unit_inside_the_ball_after_every_step_like_a_slow_loop() -> None:
    torch.manual_seed(0)
    net = _Net().double()
    reference = _Net().double()
    reference.load_state_dict(net.state_dict())
    masks = _net_masks(net)
    opt = torch.optim.SGD(net.parameters(), lr=2.0)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=2.0)
    g = torch.Generator().manual_seed(1)
    tokens, target = torch.randint(0, 10, (8, 3, 3), generator=g), torch.randn(8, 3, generator=g)
    above = 0
    with max_norm_constraint(opt, net, C) as constraint:
        assert constraint.names == ["embed.weight", "conv.weight", "up.weight", "head.weight"]
        for _ in range(10):
            for m, o in ((net, opt), (reference, ref_opt)):
                o.zero_grad()
                nn.functional.mse_loss(m(tokens), target.double()).backward()
                o.step()
            for name, unit_masks in masks.items():
                weight = reference.get_parameter(name)
                expected = _slow_max_norm_(weight, unit_masks, C)
                torch.testing.assert_close(constraint.last_norms[name], expected, **EQUAL)
                above += int((expected > C).sum())
                after = torch.stack([net.get_parameter(name)[m].norm() for m in unit_masks])
                assert bool((after <= C * (1 + 1e-12)).all()), name
    for a, b in zip(net.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, **EQUAL)
    assert above > 10  # the constraint was active, not vacuous


def test_exclude_leaves_a_layer_free_and_biases_are_never_constrained() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(5.0)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    with max_norm_constraint(opt, net, 1.0, exclude=["1"]) as constraint:
        assert constraint.names == ["0.weight"]
        net(torch.ones(1, 3)).sum().backward()
        opt.step()
    torch.testing.assert_close(net[0].weight.norm(dim=1), torch.ones(4))
    assert bool((net[0].bias == 5.0).all())
    assert bool((net[1].weight == 5.0).all())


def test_remove_really_removes_the_hook() -> None:
    layer = nn.Linear(3, 2)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    handle = max_norm_constraint(opt, layer, 1e-3)
    assert isinstance(handle, MaxNormConstraint)
    assert len(opt._optimizer_step_post_hooks) == 1
    handle.remove()
    assert not opt._optimizer_step_post_hooks
    layer(torch.ones(1, 3)).sum().backward()
    opt.step()
    assert float(layer.weight.detach().norm(dim=1).max()) > 1e-3  # no projection any more
    with pytest.raises(RuntimeError, match="boom"), max_norm_constraint(opt, layer, 1.0):
        raise RuntimeError("boom")
    assert not opt._optimizer_step_post_hooks


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: max_norm_(torch.ones(2, 2), 0.0), ValueError, "max_value must be > 0"),
        (lambda: max_norm_(torch.ones(2, 2), -1.0), ValueError, "max_value must be > 0"),
        (lambda: max_norm_(torch.ones(2, 2), 1.0, dim=2), ValueError, r"dim=2 is out of range"),
        (lambda: max_norm_(torch.ones(2, 2), 1.0, norm_type=0.5), ValueError, "norm_type"),
        (lambda: max_norm_([1.0], 1.0), TypeError, "tensor or an nn.Module"),
        (lambda: max_norm_(nn.LayerNorm(3), 1.0), ValueError, "has no Linear"),
        (
            lambda: max_norm_constraint(nn.Linear(2, 2), nn.Linear(2, 2), 1.0),
            TypeError,
            "torch.optim.Optimizer",
        ),
        (
            lambda: max_norm_constraint(
                torch.optim.SGD(nn.Linear(2, 2).parameters(), 0.1), nn.Linear(2, 2), 1.0
            ),
            ValueError,
            "no weight to constrain",
        ),
        (
            lambda: max_norm_constraint(
                torch.optim.SGD(nn.Linear(2, 2).parameters(), 0.1), "model", 1.0
            ),
            TypeError,
            "nn.Module",
        ),
        (
            lambda: max_norm_constraint(
                torch.optim.SGD(nn.Linear(2, 2).parameters(), 0.1),
                nn.Linear(2, 2),
                1.0,
                layers=[int],
            ),
            TypeError,
            "layers must hold",
        ),
    ],
)
def test_bad_arguments_raise_clear_errors(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


def test_half_precision_weights_are_measured_in_float32_and_mixed_dtypes_work() -> None:
    """bf16 keeps 8 bits of mantissa: the rescaled norms are within 2⁻⁷ of c."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4).bfloat16(), nn.Linear(4, 2).double())
    with torch.no_grad():
        for layer in model:
            layer.weight.mul_(10.0)
    norms = max_norm_(model, 1.0)
    assert norms["0.weight"].dtype == torch.float32
    assert norms["1.weight"].dtype == torch.float64
    torch.testing.assert_close(
        model[0].weight.float().norm(dim=1), torch.ones(4), rtol=2**-7, atol=0
    )
    torch.testing.assert_close(
        model[1].weight.norm(dim=1), torch.ones(2, dtype=torch.float64), **EQUAL
    )


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_integer_bool_and_complex_tensors_are_refused_naming_the_dtype(dtype: torch.dtype) -> None:
    w = torch.ones(2, 3, dtype=dtype)
    with pytest.raises(TypeError, match=rf"max_norm_: the tensor has dtype {dtype}"):
        max_norm_(w, 1.0)


@pytest.mark.parametrize("p", [2.0, float("inf")])
def test_an_empty_unit_has_norm_zero_for_every_order(p: float) -> None:
    w = torch.ones(3, 0)
    assert max_norm_(w, 1.0, norm_type=p).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, float("inf")])
def test_a_rescaled_unit_ends_at_most_at_c_and_a_second_projection_changes_nothing(
    dtype: torch.dtype, p: float
) -> None:
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(64, 37, generator=g, dtype=torch.float64) * 3).to(dtype)
    c = 0.7  # not representable in any of the dtypes: the bound is never rounded up
    max_norm_(w, c, norm_type=p)
    exact = torch.linalg.vector_norm(w.double(), p, dim=1)
    eps = torch.finfo(dtype).eps
    assert bool((exact <= c).all()), float(exact.max())
    assert bool((exact >= c * (1 - 8 * eps)).all()), float(exact.min())
    projected = w.clone()
    max_norm_(w, c, norm_type=p)
    assert torch.equal(w, projected)


def test_a_high_order_norm_neither_overflows_nor_underflows_float32() -> None:
    w = torch.tensor([[100.0, -50.0, 3.0], [1e-2, -1e-2, 1e-3]])  # 100**20 and 0.01**20
    norms = max_norm_(w.clone(), 1e9, norm_type=20.0)
    expected = torch.linalg.vector_norm(w.double(), 20.0, dim=1)
    torch.testing.assert_close(norms.double(), expected, rtol=1e-6, atol=0)
