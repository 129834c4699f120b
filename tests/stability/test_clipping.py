"""Clipping by norm (global, per layer), by value and AGC against slow float64 references;
returned values are the pre-clip measurements; non-finite gradients; no host reads."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from stabletrain import _norms
from stabletrain.stability import (
    NonFiniteGradError,
    adaptive_clip_grad_,
    clip_grad_norm_,
    clip_grad_value_,
    grad_norm,
)

RTOL = 1e-5  # float32 kernels against float64 references
EPS = 1e-6  # the clip coefficient's epsilon, max_norm / (norm + EPS)


class Net(nn.Module):
    """Every layer kind the clipping must handle, plus a parameter owned by the root."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.deconv = nn.ConvTranspose2d(4, 6, 3, groups=2)  # weight (4, 3, 3, 3)
        self.attn = nn.MultiheadAttention(6, 2)
        self.norm = nn.LayerNorm(6)
        self.fc = nn.Linear(6, 5)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.deconv(torch.relu(self.conv(x)))  # (B, 6, H, W)
        seq = h.flatten(2).permute(2, 0, 1)  # (L, B, 6)
        seq = self.norm(seq + self.attn(seq, seq, seq, need_weights=False)[0])
        return self.fc(seq.mean(0)) * self.scale


def net_with_grads(seed: int = 0, grad_scale: float = 1.0) -> Net:
    torch.manual_seed(seed)
    net = Net()
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
    (net(x).pow(2).sum() * grad_scale).backward()
    return net


def grads_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def ref_norm(tensors: list[torch.Tensor], p: float) -> float:
    """The p-norm of all values, element by element in float64."""
    values = torch.cat([t.detach().double().flatten() for t in tensors]).tolist()
    if p == math.inf:
        return max(abs(v) for v in values)
    return float(sum(abs(v) ** p for v in values) ** (1.0 / p))


def ref_layers(model: nn.Module) -> dict[str, list[str]]:
    """Parameter names of each module, by a slow walk of the module tree."""
    layers: dict[str, list[str]] = {}
    for mname, module in model.named_modules():
        for pname, _ in module.named_parameters(recurse=False):
            layers.setdefault(mname, []).append(f"{mname}.{pname}" if mname else pname)
    return layers


# --- global norm ----------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, math.inf])
@pytest.mark.parametrize("foreach", [None, False])
def test_returned_norm_is_the_preclip_norm_and_grads_are_scaled_to_max_norm(
    p: float, foreach: bool | None
) -> None:
    net = net_with_grads()
    before = grads_of(net)
    expected = ref_norm(list(before.values()), p)
    max_norm = expected / 4
    norm = clip_grad_norm_(net, max_norm, p, foreach=foreach)
    assert norm.item() == pytest.approx(expected, rel=RTOL)
    coef = max_norm / (expected + EPS)
    for name, g in grads_of(net).items():
        torch.testing.assert_close(g, before[name] * coef, rtol=RTOL, atol=1e-7)
    assert ref_norm(list(grads_of(net).values()), p) == pytest.approx(max_norm, rel=RTOL)


@pytest.mark.parametrize("p", [2.0, math.inf])
def test_global_clipping_matches_torch_on_finite_gradients(p: float) -> None:
    ours, theirs = net_with_grads(), net_with_grads()
    norm = clip_grad_norm_(ours.parameters(), 0.1, p)
    expected = torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.1, p)
    torch.testing.assert_close(norm, expected, rtol=1e-6, atol=0)
    for (name, g), h in zip(grads_of(ours).items(), grads_of(theirs).values(), strict=True):
        torch.testing.assert_close(g, h, rtol=1e-6, atol=1e-9, msg=name)


@pytest.mark.parametrize("sync", [False, True])
def test_gradients_below_max_norm_are_left_bit_for_bit(sync: bool) -> None:
    net = net_with_grads()
    before = grads_of(net)
    norm = clip_grad_norm_(net, 1e6, sync=sync)
    assert norm.item() == pytest.approx(ref_norm(list(before.values()), 2.0), rel=RTOL)
    for name, g in grads_of(net).items():
        assert torch.equal(g, before[name]), name


def test_sync_true_clips_exactly_like_sync_false() -> None:
    a, b = net_with_grads(), net_with_grads()
    torch.testing.assert_close(clip_grad_norm_(a, 0.1, sync=True), clip_grad_norm_(b, 0.1))
    for g, h in zip(grads_of(a).values(), grads_of(b).values(), strict=True):
        assert torch.equal(g, h)


def test_grad_norm_measures_without_changing_anything() -> None:
    net = net_with_grads()
    before = grads_of(net)
    assert grad_norm(net).item() == pytest.approx(ref_norm(list(before.values()), 2.0), rel=RTOL)
    for name, g in grads_of(net).items():
        assert torch.equal(g, before[name])


def test_parameters_without_grad_are_ignored_and_none_gives_zero() -> None:
    net = net_with_grads()
    net.fc.bias.grad = None
    expected = ref_norm([g for n, g in grads_of(net).items()], 2.0)
    assert grad_norm(net).item() == pytest.approx(expected, rel=RTOL)
    empty = nn.Linear(2, 2)
    assert clip_grad_norm_(empty, 1.0).item() == 0.0
    assert clip_grad_norm_(empty, 1.0, per_layer=True) == {}


def test_a_tensor_given_twice_counts_once() -> None:
    w = torch.zeros(3, requires_grad=True)
    w.grad = torch.tensor([3.0, 4.0, 0.0])
    assert clip_grad_norm_([w, w], 1.0).item() == pytest.approx(5.0)
    torch.testing.assert_close(w.grad, torch.tensor([0.6, 0.8, 0.0]), rtol=1e-5, atol=0)


def test_half_precision_gradients_are_measured_in_float32_without_overflow() -> None:
    w = torch.zeros(400, dtype=torch.float16, requires_grad=True)
    w.grad = torch.full((400,), 60000.0, dtype=torch.float16)  # norm 1.2e6 > fp16 max 65504
    norm = clip_grad_norm_([w], 1.0)
    assert norm.dtype == torch.float32
    assert norm.item() == pytest.approx(60000.0 * 20, rel=1e-3)
    assert w.grad.dtype == torch.float16
    assert ref_norm([w.grad], 2.0) == pytest.approx(1.0, rel=1e-2)  # fp16 rounding


def test_bfloat16_and_float64_gradients_mix() -> None:
    a = torch.zeros(3, dtype=torch.bfloat16, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    a.grad = torch.tensor([1.0, 2.0, 2.0], dtype=torch.bfloat16)
    b.grad = torch.tensor([4.0, 0.0], dtype=torch.float64)
    norm = clip_grad_norm_([a, b], 1.0)
    assert norm.dtype == torch.float64
    assert norm.item() == pytest.approx(5.0)
    assert b.grad[0].item() == pytest.approx(0.8, rel=1e-6)


def test_sparse_gradients_are_measured_and_scaled() -> None:
    torch.manual_seed(0)
    sparse, dense = nn.Embedding(10, 4, sparse=True), nn.Embedding(10, 4)
    dense.load_state_dict(sparse.state_dict())
    idx = torch.tensor([1, 3, 3, 7])  # a repeated index: uncoalesced gradient
    sparse(idx).pow(2).sum().backward()
    dense(idx).pow(2).sum().backward()
    expected = ref_norm([dense.weight.grad], 2.0)
    assert clip_grad_norm_(sparse, expected / 2).item() == pytest.approx(expected, rel=RTOL)
    assert sparse.weight.grad is not None
    torch.testing.assert_close(
        sparse.weight.grad.to_dense(), dense.weight.grad * 0.5, rtol=RTOL, atol=1e-7
    )


# --- per layer -------------------------------------------------------------------------------


def test_per_layer_norms_and_clipping_follow_the_owning_modules() -> None:
    net = net_with_grads()
    before = grads_of(net)
    layers = ref_layers(net)
    max_norm = 0.5
    norms = clip_grad_norm_(net, max_norm, per_layer=True)
    assert set(norms) == set(layers)
    assert "" in norms  # the root's own parameter, net.scale
    after = grads_of(net)
    for layer, names in layers.items():
        expected = ref_norm([before[n] for n in names], 2.0)
        assert norms[layer].item() == pytest.approx(expected, rel=RTOL), layer
        coef = min(1.0, max_norm / (expected + EPS))
        for n in names:
            torch.testing.assert_close(after[n], before[n] * coef, rtol=RTOL, atol=1e-7)


def test_per_layer_norms_match_grad_norm_and_named_pairs() -> None:
    net = net_with_grads()
    from_model = grad_norm(net, per_layer=True)
    from_pairs = grad_norm(net.named_parameters(), per_layer=True)
    assert from_model.keys() == from_pairs.keys()
    for layer, norm in from_model.items():
        torch.testing.assert_close(norm, from_pairs[layer])
    inf_norms = grad_norm(net, math.inf, per_layer=True)
    for layer, names in ref_layers(net).items():
        expected = ref_norm([p.grad for n, p in net.named_parameters() if n in names], math.inf)
        assert inf_norms[layer].item() == pytest.approx(expected, rel=RTOL)


def test_per_layer_needs_names() -> None:
    w = torch.zeros(2, requires_grad=True)
    w.grad = torch.ones(2)
    with pytest.raises(ValueError, match="named_parameters"):
        clip_grad_norm_(w, 1.0, per_layer=True)
    with pytest.raises(ValueError, match="named_parameters"):
        grad_norm(net_with_grads().parameters(), per_layer=True)


# --- value ------------------------------------------------------------------------------------


def test_value_clipping_matches_torch_and_returns_the_preclip_max() -> None:
    ours, theirs = net_with_grads(), net_with_grads()
    expected_max = ref_norm(list(grads_of(ours).values()), math.inf)
    largest = clip_grad_value_(ours, 0.01)
    torch.nn.utils.clip_grad_value_(theirs.parameters(), 0.01)
    assert largest.item() == pytest.approx(expected_max, rel=RTOL)
    for g, h in zip(grads_of(ours).values(), grads_of(theirs).values(), strict=True):
        assert torch.equal(g, h)


def test_value_clipping_per_tensor_loop_matches_fused() -> None:
    a, b = net_with_grads(), net_with_grads()
    torch.testing.assert_close(clip_grad_value_(a, 0.01, foreach=False), clip_grad_value_(b, 0.01))
    for g, h in zip(grads_of(a).values(), grads_of(b).values(), strict=True):
        assert torch.equal(g, h)


# --- non-finite gradients ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_nonfinite_gradient_leaves_every_gradient_unchanged(bad: float) -> None:
    net = net_with_grads()
    net.fc.weight.grad[0, 0] = bad
    before = grads_of(net)
    norm = clip_grad_norm_(net, 1e-3)
    assert not torch.isfinite(norm)
    for name, g in grads_of(net).items():
        assert torch.equal(g.nan_to_num(), before[name].nan_to_num()), name


def test_per_layer_nonfinite_layer_is_left_and_the_others_are_clipped() -> None:
    net = net_with_grads()
    net.fc.weight.grad[0, 0] = math.nan
    before = grads_of(net)
    norms = clip_grad_norm_(net, 1e-3, per_layer=True)
    assert math.isnan(norms["fc"].item())
    assert torch.equal(net.fc.bias.grad, before["fc.bias"])
    expected = ref_norm([before["conv.weight"], before["conv.bias"]], 2.0)
    assert norms["conv"].item() == pytest.approx(expected, rel=RTOL)
    assert ref_norm([net.conv.weight.grad, net.conv.bias.grad], 2.0) == pytest.approx(
        1e-3, rel=RTOL
    )


@pytest.mark.parametrize(
    "clip",
    [
        lambda m: clip_grad_norm_(m, 1.0, error_if_nonfinite=True),
        lambda m: clip_grad_norm_(m, 1.0, per_layer=True, error_if_nonfinite=True),
        lambda m: clip_grad_value_(m, 1.0, error_if_nonfinite=True),
        lambda m: adaptive_clip_grad_(m, error_if_nonfinite=True),
    ],
    ids=["norm", "per_layer", "value", "agc"],
)
def test_error_if_nonfinite_names_the_parameter_and_changes_nothing(
    clip: Callable[[nn.Module], Any],
) -> None:
    net = net_with_grads()
    net.attn.in_proj_weight.grad[4, 1] = math.inf
    before = grads_of(net)
    with pytest.raises(NonFiniteGradError, match=r"attn\.in_proj_weight") as info:
        clip(net)
    assert isinstance(info.value, RuntimeError)
    assert "set_detect_anomaly" in str(info.value)
    for name, g in grads_of(net).items():
        assert torch.equal(g, before[name]), name


# --- finite gradients whose norm overflows ---------------------------------------------------


def overflowing_net(value: float = 1e19) -> Net:
    """Finite gradients; fc.weight's entries are ``value``, so its Σg² overflows float32."""
    net = net_with_grads()
    net.fc.weight.grad.fill_(value)
    assert torch.isposinf(torch.linalg.vector_norm(net.fc.weight.grad))  # the test can fail
    return net


@pytest.mark.parametrize(
    "clip",
    [
        lambda m: clip_grad_norm_(m, 1.0, sync=True),
        lambda m: clip_grad_norm_(m, 1.0, error_if_nonfinite=True),
    ],
    ids=["sync", "error_if_nonfinite"],
)
def test_an_overflowing_norm_of_finite_gradients_is_recomputed_returned_and_clipped(
    clip: Callable[[nn.Module], Any],
) -> None:
    net = overflowing_net()
    before = grads_of(net)
    exact = ref_norm(list(before.values()), 2.0)
    norm = clip(net)
    assert norm.item() == pytest.approx(exact, rel=RTOL)
    for name, g in grads_of(net).items():
        torch.testing.assert_close(g, before[name] / exact, rtol=RTOL, atol=0.0, msg=name)


def test_an_overflowing_layer_norm_is_recomputed_per_layer() -> None:
    net = overflowing_net()
    before = grads_of(net)
    norms = clip_grad_norm_(net, 1.0, per_layer=True, error_if_nonfinite=True)
    expected = ref_norm([before["fc.weight"], before["fc.bias"]], 2.0)
    assert norms["fc"].item() == pytest.approx(expected, rel=RTOL)
    assert ref_norm([net.fc.weight.grad, net.fc.bias.grad], 2.0) == pytest.approx(1.0, rel=RTOL)


@pytest.mark.usefixtures("as_on_an_accelerator")
def test_without_a_host_read_an_overflowing_norm_is_inf_and_the_gradients_stay() -> None:
    """The documented limit on an accelerator: telling an overflow from an inf needs a read;
    none by default."""
    net = overflowing_net()
    before = grads_of(net)
    with host_reads() as reads:
        norm = clip_grad_norm_(net, 1.0)
    assert reads.count == 0
    assert torch.isposinf(norm)
    for name, g in grads_of(net).items():
        assert torch.equal(g, before[name]), name


@pytest.mark.parametrize("per_layer", [False, True])
def test_on_the_cpu_an_overflowing_norm_is_recomputed_and_clipped_without_sync(
    per_layer: bool,
) -> None:
    net = overflowing_net(1e20)
    before = grads_of(net)
    exact = ref_norm(list(before.values()), 2.0)
    measured = clip_grad_norm_(net, 1.0, per_layer=per_layer)
    norm = measured["fc"] if per_layer else measured
    assert norm.item() == pytest.approx(
        exact if not per_layer else ref_norm([before["fc.weight"], before["fc.bias"]], 2.0),
        rel=RTOL,
    )
    if not per_layer:
        for name, g in grads_of(net).items():
            torch.testing.assert_close(g, before[name] / exact, rtol=RTOL, atol=0.0, msg=name)
    assert ref_norm([net.fc.weight.grad, net.fc.bias.grad], 2.0) <= 1.0 + 1e-5


@pytest.mark.parametrize("p", [3.0, 20.0, 100.0])
def test_a_high_order_norm_neither_overflows_nor_underflows(p: float) -> None:
    big, small = torch.zeros(4, requires_grad=True), torch.zeros(4, requires_grad=True)
    big.grad = torch.tensor([100.0, -50.0, 3.0, 0.0])  # 100**20 overflows float32
    small.grad = torch.tensor([1e-2, -1e-2, 1e-3, 0.0])  # 0.01**20 underflows it
    for g in (big, small):
        expected = ref_norm([g.grad], p)
        assert grad_norm([g], p).item() == pytest.approx(expected, rel=RTOL)


def test_agc_clips_a_unit_whose_sum_of_squares_overflows_float32() -> None:
    w = torch.ones(2, 3, requires_grad=True)
    w.grad = torch.tensor([[1e20, -1e20, 0.0], [1e-3, 0.0, 0.0]])
    norms = adaptive_clip_grad_([w], 0.5)["0"]
    assert norms[0].item() == pytest.approx(math.sqrt(2) * 1e20, rel=RTOL)
    allowed = 0.5 * math.sqrt(3)  # λ·‖W_0‖
    assert ref_norm([w.grad[0]], 2.0) == pytest.approx(allowed, rel=RTOL)
    assert w.grad[1].tolist() == pytest.approx([1e-3, 0.0, 0.0], rel=1e-7)


@pytest.mark.usefixtures("as_on_an_accelerator")
def test_norms_that_overflow_only_when_combined_stay_finite_without_a_host_read() -> None:
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    a.grad, b.grad = torch.full((2,), 1.3e19), torch.full((2,), 1.3e19)  # each norm 1.8e19
    with host_reads() as reads:
        total = grad_norm([a, b])
        layers = grad_norm([("l.a", a), ("l.b", b)], per_layer=True)
    assert reads.count == 0
    assert total.item() == pytest.approx(2.6e19, rel=RTOL)  # sqrt(4)·1.3e19
    assert layers["l"].item() == pytest.approx(2.6e19, rel=RTOL)
    assert torch.isposinf(torch.nn.utils.get_total_norm([a.grad, b.grad]))  # torch's overflows


def test_an_inf_beside_an_overflowing_gradient_raises_naming_only_the_inf() -> None:
    net = overflowing_net()
    net.conv.bias.grad[0] = math.inf
    with pytest.raises(NonFiniteGradError, match=r"in conv\.bias\. The gradients"):
        clip_grad_norm_(net, 1.0, error_if_nonfinite=True)


def test_value_clipping_keeps_nan_clamps_inf_and_reports_it() -> None:
    w = torch.zeros(3, requires_grad=True)
    w.grad = torch.tensor([math.nan, math.inf, -5.0])
    largest = clip_grad_value_([w], 1.0)
    assert math.isnan(largest.item())
    assert math.isnan(w.grad[0].item())
    assert w.grad[1:].tolist() == [1.0, -1.0]


# --- no host reads ------------------------------------------------------------------------------


class _HostReads(TorchFunctionMode):
    """Counts the tensor methods that copy a value to the host."""

    NAMES = frozenset({"item", "tolist", "__bool__", "__float__", "__int__", "__index__"})

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if getattr(func, "__name__", "") in self.NAMES:
            self.count += 1
        return func(*args, **(kwargs or {}))


@contextmanager
def host_reads() -> Iterator[_HostReads]:
    with _HostReads() as mode:
        yield mode


@pytest.fixture
def as_on_an_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count the host reads as on an accelerator: the CPU's free read-back of an overflowed
    norm (stabletrain._norms.reads_are_free) is not taken."""
    monkeypatch.setattr(_norms, "reads_are_free", lambda tensors: False)


def test_the_host_read_counter_sees_a_read() -> None:
    with host_reads() as reads:
        torch.ones(()).item()
    assert reads.count == 1


@pytest.mark.parametrize(
    "clip",
    [
        lambda m: clip_grad_norm_(m, 0.1),
        lambda m: clip_grad_norm_(m, 0.1, per_layer=True),
        lambda m: clip_grad_value_(m, 0.01),
        lambda m: adaptive_clip_grad_(m),
        lambda m: grad_norm(m, per_layer=True),
    ],
    ids=["norm", "per_layer", "value", "agc", "grad_norm"],
)
@pytest.mark.usefixtures("as_on_an_accelerator")
def test_clipping_reads_nothing_back_to_the_host(clip: Callable[[nn.Module], Any]) -> None:
    net = net_with_grads()
    with host_reads() as reads:
        clip(net)
    assert reads.count == 0


@pytest.mark.usefixtures("as_on_an_accelerator")
def test_sync_true_reads_the_host_once() -> None:
    net = net_with_grads()
    with host_reads() as reads:
        clip_grad_norm_(net, 0.1, sync=True, error_if_nonfinite=True)
    assert reads.count == 1


# --- input errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: clip_grad_norm_(m, 0.0), ValueError, "max_norm must be > 0"),
        (lambda m: clip_grad_norm_(m, 1.0, 0.0), ValueError, "norm_type"),
        (lambda m: clip_grad_norm_(m, 1.0, -2.0), ValueError, "norm_type"),
        (lambda m: clip_grad_norm_(m, 1.0, "fro"), TypeError, "norm_type"),
        (lambda m: clip_grad_norm_(m, 1.0, foreach="yes"), TypeError, "foreach"),
        (lambda m: clip_grad_norm_([1.0], 1.0), TypeError, "element 0"),
        (lambda m: clip_grad_norm_(3, 1.0), TypeError, "model.parameters"),
        (lambda m: clip_grad_value_(m, -1.0), ValueError, "clip_value"),
        (lambda m: adaptive_clip_grad_(m, clipping=0.0), ValueError, "clipping"),
        (lambda m: adaptive_clip_grad_(m, eps=-1.0), ValueError, "eps"),
        (lambda m: adaptive_clip_grad_(m, unit_dims={"fc.weight": 2}), ValueError, r"\[-2, 1\]"),
        (lambda m: adaptive_clip_grad_(m, unit_dims={3: 0}), TypeError, "neither"),
        (lambda m: adaptive_clip_grad_(m, unit_dims=[0]), TypeError, "mapping"),
    ],
)
def test_bad_input_names_the_value_and_the_fix(
    call: Callable[[nn.Module], Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call(net_with_grads())


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
@pytest.mark.parametrize(
    "call",
    [
        lambda ps: grad_norm(ps),
        lambda ps: clip_grad_norm_(ps, 1.0),
        lambda ps: clip_grad_value_(ps, 1.0),
        lambda ps: adaptive_clip_grad_(ps),
    ],
    ids=["grad_norm", "clip_grad_norm_", "clip_grad_value_", "adaptive_clip_grad_"],
)
def test_integer_bool_and_complex_gradients_are_a_type_error_naming_the_parameter(
    dtype: torch.dtype, call: Callable[[Any], Any]
) -> None:
    ok = torch.zeros(2, requires_grad=True)
    ok.grad = torch.ones(2)
    odd = torch.zeros(3, dtype=dtype)
    odd.grad = torch.ones(3, dtype=dtype)
    with pytest.raises(TypeError, match=rf"the gradient of b has dtype {dtype}"):
        call([("a", ok), ("b", odd)])
    assert ok.grad.tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    ("dtype", "clip_value", "bound"),
    [
        (torch.float16, 1e30, math.inf),  # rounds to inf in float16: nothing to clamp
        (torch.float16, 65519.0, 65504.0),  # rounds to float16's largest value
        (torch.float32, 3.5e38, math.inf),
        (torch.bfloat16, 1e300, math.inf),
    ],
)
def test_a_clip_value_beyond_the_dtype_s_range_clamps_to_it_as_rounding_makes_it(
    dtype: torch.dtype, clip_value: float, bound: float
) -> None:
    w = torch.zeros(3, dtype=dtype, requires_grad=True)
    w.grad = torch.tensor([math.inf, -math.inf, 2.0], dtype=dtype)
    largest = clip_grad_value_([w], clip_value)
    assert math.isinf(largest.item())
    assert w.grad.double().tolist() == [bound, -bound, 2.0]


@pytest.mark.parametrize("norm_type", [np.float32(3.0), np.int64(3), torch.tensor(3.0)])
def test_a_numpy_or_tensor_norm_type_is_a_number_like_any_other(norm_type: Any) -> None:
    w = torch.zeros(2, requires_grad=True)
    w.grad = torch.tensor([3.0, 4.0])
    assert grad_norm([w], norm_type).item() == pytest.approx(ref_norm([w.grad], 3.0), rel=RTOL)
