"""Fuzz stabletrain.init: every scheme, gain(), compute_fans() and layer_fans() over random
shapes, dtypes, numbers, options with typos, activations that misbehave and generators.

A valid call fills the tensor in place (same object, dtype, shape and device), with finite
values whose std is within a loose band of the documented one where the tensor is large
enough; an invalid call raises ValueError/TypeError naming the function and leaves the tensor
untouched."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from stabletrain import init
from stabletrain.init import DISTRIBUTIONS, FAN_MODES, Fans
from tests.fuzz._strategies import (
    FUZZ,
    RAISED,
    Activation,
    Expect,
    Kind,
    activations,
    combine,
    finfo,
    generators,
    is_float,
    known_name,
    mostly,
    numbers,
    options,
    outcome,
    same_bits,
    shapes,
    tensors,
)

MIN_SAMPLES = 100  # below this a sample std says little
STD_BAND = 0.4  # ±40%: more than 5 standard errors of a sample std at 100 values


def expect_number(kind: Kind, *, zero: bool = True, negative: bool = True) -> Expect:
    """What a scheme should do with a number of this kind (huge values may not fit a dtype)."""
    if kind == "positive":
        return "ok"
    if kind == "zero":
        return "ok" if zero else "error"
    if kind == "negative":
        return "ok" if negative else "error"
    return "either" if kind == "huge" else "error"


def expect_tensor(tensor: torch.Tensor) -> Expect:
    return "ok" if is_float(tensor) else "error"


def expect_generator(generator: tuple[Any, bool]) -> Expect:
    return "ok" if generator[1] else "error"


def targets(
    min_dims: int = 0, max_dims: int = 4, even: bool = False
) -> st.SearchStrategy[torch.Tensor]:
    """A tensor to initialize, sometimes a leaf that requires grad; ``even``: dims 0 and 1 even."""
    shape = shapes(min_dims=min_dims, max_dims=max_dims)
    if even:
        shape = shape.map(
            lambda s: tuple(2 * ((d + 1) // 2) if i < 2 else d for i, d in enumerate(s))
        )
    return st.builds(_maybe_requires_grad, tensors(shape=shape), st.booleans())


def _maybe_requires_grad(tensor: torch.Tensor, requires_grad: bool) -> torch.Tensor:
    return tensor.requires_grad_(True) if requires_grad and is_float(tensor) else tensor


_FANS: list[tuple[Any, Expect | None]] = [
    (None, None),
    (None, None),
    (None, None),
    ((1, 1), "ok"),
    ((3, 700), "ok"),
    ((1000, 10), "ok"),
    ((10**6, 10**6), "ok"),
    (Fans(20, 40), "ok"),
    ((10**30, 10**30), "ok"),
    ((10**400, 1), "error"),  # larger than any float: no std
    ((0, 3), "error"),
    ((-1, 2), "error"),
    ((1.5, 2), "error"),
    ((True, 2), "error"),
    ((1,), "error"),
    ("fans", "error"),
    ([3, 4], "error"),
    ((3, 4, 5), "error"),
]


def fans() -> st.SearchStrategy[tuple[Any, Expect | None]]:
    """``(fans, expect)``; expect None means "valid if the tensor has >= 2 dims"."""
    good = [f for f in _FANS if f[1] != "error"]
    return mostly(st.sampled_from(good), st.sampled_from([f for f in _FANS if f[1] == "error"]))


def expect_fans(tensor: torch.Tensor, drawn: tuple[Any, Expect | None]) -> Expect:
    expect = drawn[1]
    if expect is not None:
        return expect
    return "ok" if tensor.dim() >= 2 else "error"


def resolved_fans(tensor: torch.Tensor, drawn: tuple[Any, Expect | None]) -> tuple[int, int]:
    """The fans the scheme should use: the given ones, else torch's generic rule."""
    if drawn[0] is not None:
        return int(drawn[0][0]), int(drawn[0][1])
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def check_filled(tensor: torch.Tensor, before: torch.Tensor, result: Any, *, where: str) -> bool:
    """The in-place contract; True when the call filled the tensor (so values can be checked)."""
    if result is RAISED:
        assert same_bits(tensor, before), f"{where} raised but changed the tensor"
        return False
    assert result is tensor, f"{where} did not return its argument"
    assert tensor.dtype == before.dtype
    assert tensor.shape == before.shape
    assert tensor.device == before.device
    assert tensor.grad_fn is None, f"{where} recorded autograd history"
    assert bool(tensor.isfinite().all()), f"{where} wrote non-finite values"
    return True


def assert_std_near(tensor: torch.Tensor, std: float, mean: float = 0.0) -> None:
    """Sample std within ±40% of ``std`` and sample mean within 6 standard errors of ``mean``,
    where the tensor has enough values and the dtype resolves ``std`` around ``mean``."""
    info = finfo(tensor.dtype)
    n = tensor.numel()
    if n < MIN_SAMPLES or std < info.tiny or std < 100 * info.eps * abs(mean):
        return
    values = tensor.detach().double()
    sample = values.std().item()
    assert (1 - STD_BAND) * std <= sample <= (1 + STD_BAND) * std, (sample, std)
    assert abs(values.mean().item() - mean) <= 6 * std / math.sqrt(n) + 2 * info.eps * abs(mean)


def call_scheme(tensor: torch.Tensor, fn: Any, *, where: str, expect: Expect) -> bool:
    """Run a scheme on ``tensor`` under the contract; True when it filled the tensor."""
    before = tensor.detach().clone()
    result = outcome(lambda: fn(tensor), expect=expect, names=(where, "gain"))
    return check_filled(tensor, before, result, where=where)


# --- constants ------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["zeros_", "ones_"])
@FUZZ
@given(
    tensor=targets(),
)
def test_zeros_and_ones_fill_exactly(tensor: torch.Tensor, which: str) -> None:
    fn = getattr(init, which)
    if call_scheme(tensor, fn, where=which, expect=expect_tensor(tensor)):
        assert bool((tensor == (0 if which == "zeros_" else 1)).all())


@FUZZ
@given(tensor=targets(), val=numbers(1e-3, 1e3))
def test_constant_fills_the_value_rounded_to_the_dtype(
    tensor: torch.Tensor, val: tuple[Any, Kind]
) -> None:
    expect = combine(expect_tensor(tensor), expect_number(val[1]))
    fill = lambda t: init.constant_(t, val[0])  # noqa: E731
    if call_scheme(tensor, fill, where="constant_", expect=expect):
        assert bool((tensor == torch.tensor(float(val[0]), dtype=tensor.dtype)).all())


# --- plain random -----------------------------------------------------------------------------


@FUZZ
@given(tensor=targets(), mean=numbers(1e-3, 10), std=numbers(1e-3, 1e3), gen=generators())
def test_normal_has_the_requested_mean_and_std(
    tensor: torch.Tensor, mean: tuple[Any, Kind], std: tuple[Any, Kind], gen: tuple[Any, bool]
) -> None:
    expect = combine(
        expect_tensor(tensor),
        expect_number(mean[1]),
        expect_number(std[1], negative=False),
        expect_generator(gen),
    )
    fill = lambda t: init.normal_(t, mean[0], std[0], generator=gen[0])  # noqa: E731
    if call_scheme(tensor, fill, where="normal_", expect=expect):
        assert_std_near(tensor, float(std[0]), float(mean[0]))


@FUZZ
@given(tensor=targets(), a=numbers(1e-3, 10), b=numbers(1e-3, 10), gen=generators())
def test_uniform_stays_inside_its_bounds(
    tensor: torch.Tensor, a: tuple[Any, Kind], b: tuple[Any, Kind], gen: tuple[Any, bool]
) -> None:
    expect = combine(
        expect_tensor(tensor), expect_number(a[1]), expect_number(b[1]), expect_generator(gen)
    )
    if expect == "ok" and float(a[0]) > float(b[0]):
        expect = "error"
    fill = lambda t: init.uniform_(t, a[0], b[0], generator=gen[0])  # noqa: E731
    if call_scheme(tensor, fill, where="uniform_", expect=expect):
        lo, hi = float(a[0]), float(b[0])
        slack = 2 * finfo(tensor.dtype).eps * max(abs(lo), abs(hi))
        values = tensor.detach().double()
        assert bool((values >= lo - slack).all() and (values <= hi + slack).all())
        assert_std_near(tensor, (hi - lo) / math.sqrt(12), (lo + hi) / 2)


@FUZZ
@given(tensor=targets(), std=numbers(1e-3, 1e3), gen=generators())
def test_small_random_has_the_requested_std(
    tensor: torch.Tensor, std: tuple[Any, Kind], gen: tuple[Any, bool]
) -> None:
    expect = combine(
        expect_tensor(tensor), expect_number(std[1], negative=False), expect_generator(gen)
    )
    fill = lambda t: init.small_random_(t, std[0], generator=gen[0])  # noqa: E731
    if call_scheme(tensor, fill, where="small_random_", expect=expect):
        assert_std_near(tensor, float(std[0]))


# --- variance scaling and its presets ----------------------------------------------------------


def _fan(fan_in: int, fan_out: int, mode: str) -> float:
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]


def check_variance_scaling(
    tensor: torch.Tensor, std_scale: float, mode: str, fan_drawn: Any, distribution: str
) -> None:
    """The std ``sqrt(scale / fan)`` and, for uniform, the bound ``√3·std``."""
    if tensor.numel() == 0:
        return
    fan_in, fan_out = resolved_fans(tensor, fan_drawn)
    std = math.sqrt(std_scale) / math.sqrt(_fan(fan_in, fan_out, mode))
    assert_std_near(tensor, std)
    if distribution == "uniform":
        bound = math.sqrt(3) * std * (1 + 4 * finfo(tensor.dtype).eps)
        assert tensor.detach().double().abs().max().item() <= bound


@FUZZ
@given(
    tensor=targets(),
    scale=numbers(1e-3, 1e3),
    mode=options(FAN_MODES),
    distribution=options(DISTRIBUTIONS),
    fan=fans(),
    gen=generators(),
)
def test_variance_scaling_has_variance_scale_over_fan(
    tensor: torch.Tensor,
    scale: tuple[Any, Kind],
    mode: Any,
    distribution: Any,
    fan: tuple[Any, Expect | None],
    gen: tuple[Any, bool],
) -> None:
    expect = combine(
        expect_tensor(tensor),
        expect_number(scale[1], zero=False, negative=False),
        "ok" if mode in FAN_MODES else "error",
        "ok" if distribution in DISTRIBUTIONS else "error",
        expect_fans(tensor, fan),
        expect_generator(gen),
    )

    def fill(t: torch.Tensor) -> torch.Tensor:
        return init.variance_scaling_(
            t, scale[0], mode, distribution, fans=fan[0], generator=gen[0]
        )

    if call_scheme(tensor, fill, where="variance_scaling_", expect=expect):
        check_variance_scaling(tensor, float(scale[0]), mode, fan, distribution)


@pytest.mark.parametrize("which", ["standard_", "lecun_uniform_", "lecun_normal_"])
@FUZZ
@given(
    tensor=targets(),
    fan=fans(),
    gen=generators(),
)
def test_standard_and_lecun_use_fan_in(
    tensor: torch.Tensor, which: str, fan: tuple[Any, Expect | None], gen: tuple[Any, bool]
) -> None:
    expect = combine(expect_tensor(tensor), expect_fans(tensor, fan), expect_generator(gen))
    fill = lambda t: getattr(init, which)(t, fans=fan[0], generator=gen[0])  # noqa: E731
    if call_scheme(tensor, fill, where=which, expect=expect):
        scale = 1 / 3 if which == "standard_" else 1.0
        distribution = "normal" if which == "lecun_normal_" else "uniform"
        check_variance_scaling(tensor, scale, "fan_in", fan, distribution)


def gain_or_number() -> st.SearchStrategy[tuple[Any, Expect, float | None]]:
    """Xavier's ``gain``: ``(value, expect, gain value when a positive number)``."""
    return st.one_of(
        numbers(1e-3, 10).map(
            lambda n: (
                n[0],
                expect_number(n[1], zero=False, negative=False),
                float(n[0]) if n[1] == "positive" else None,
            )
        ),
        st.just((1.0, "ok", 1.0)),  # the default
        activations().map(lambda a: (a.value, a.forward, None)),
    )


@pytest.mark.parametrize("which", ["xavier_uniform_", "xavier_normal_"])
@FUZZ
@given(
    tensor=targets(),
    gain=gain_or_number(),
    fan=fans(),
    gen=generators(),
)
def test_xavier_has_variance_gain_squared_over_fan_avg(
    tensor: torch.Tensor,
    which: str,
    gain: tuple[Any, Expect, float | None],
    fan: tuple[Any, Expect | None],
    gen: tuple[Any, bool],
) -> None:
    expect = combine(
        expect_tensor(tensor), gain[1], expect_fans(tensor, fan), expect_generator(gen)
    )
    fill = lambda t: getattr(init, which)(t, gain[0], fans=fan[0], generator=gen[0])  # noqa: E731
    if call_scheme(tensor, fill, where=which, expect=expect) and gain[2] is not None:
        distribution = "uniform" if which == "xavier_uniform_" else "normal"
        check_variance_scaling(tensor, gain[2] ** 2, "fan_avg", fan, distribution)


def expect_slope(a: tuple[Any, Kind], nonlinearity: Any) -> Expect:
    leaky = isinstance(nonlinearity, str) and nonlinearity.lower() == "leaky_relu"
    if a[1] in ("nonfinite", "notreal"):
        return "error"
    if a[1] == "zero":
        return "ok"
    if not leaky:
        return "error"
    return "either" if a[1] == "huge" else "ok"


@pytest.mark.parametrize("which", ["he_uniform_", "he_normal_"])
@FUZZ
@given(
    tensor=targets(),
    a=mostly(st.just((0.0, "zero")), numbers(1e-3, 10)),
    mode=options(FAN_MODES),
    nonlinearity=st.one_of(st.just(Activation("leaky_relu", "ok", "ok", "default")), activations()),
    fan=fans(),
    gen=generators(),
)
def test_he_has_variance_gain_squared_over_fan(
    tensor: torch.Tensor,
    which: str,
    a: tuple[Any, Kind],
    mode: Any,
    nonlinearity: Activation,
    fan: tuple[Any, Expect | None],
    gen: tuple[Any, bool],
) -> None:
    kind = "backward" if mode == "fan_out" else "forward"
    expect = combine(
        expect_tensor(tensor),
        expect_slope(a, nonlinearity.value),
        "ok" if mode in FAN_MODES else "error",
        nonlinearity.expect(kind),
        expect_fans(tensor, fan),
        expect_generator(gen),
    )

    def fill(t: torch.Tensor) -> torch.Tensor:
        fn = getattr(init, which)
        return fn(t, a[0], mode, nonlinearity.value, fans=fan[0], generator=gen[0])

    filled = call_scheme(tensor, fill, where=which, expect=expect)
    if filled and nonlinearity.value in ("relu", "leaky_relu") and a[1] == "zero":
        distribution = "uniform" if which == "he_uniform_" else "normal"
        check_variance_scaling(tensor, 2.0, mode, fan, distribution)


# --- truncated normal ----------------------------------------------------------------------------


@FUZZ
@given(
    tensor=targets(),
    mean=numbers(1e-3, 3),
    std=numbers(1e-2, 10),
    bounds=mostly(
        st.tuples(st.floats(-10, 2), st.floats(0.1, 10)).map(
            lambda ab: ((ab[0], "negative"), (ab[0] + ab[1], "positive"))
        ),
        st.tuples(numbers(1e-3, 10), numbers(1e-3, 10)),
    ),
    correct_std=st.booleans(),
    gen=generators(),
)
def test_trunc_normal_stays_in_bounds_with_the_truncated_std(
    tensor: torch.Tensor,
    mean: tuple[Any, Kind],
    std: tuple[Any, Kind],
    bounds: tuple[tuple[Any, Kind], tuple[Any, Kind]],
    correct_std: bool,
    gen: tuple[Any, bool],
) -> None:
    a, b = bounds
    expect = combine(
        expect_tensor(tensor),
        "ok" if mean[1] not in ("nonfinite", "notreal") else "error",
        expect_number(std[1], zero=False, negative=False),
        expect_number(a[1]),
        expect_number(b[1]),
        expect_generator(gen),
    )
    lo = float(a[0]) if a[1] in ("positive", "zero", "negative") else math.nan
    hi = float(b[0]) if b[1] in ("positive", "zero", "negative") else math.nan
    if expect == "ok" and not lo < hi:
        expect = "error"
    if expect == "ok" and correct_std and float(std[0]) >= (hi - lo) / math.sqrt(12):
        expect = "error"
    valid = expect == "ok"  # then a call that returns has the truncated std
    if valid:  # an interval far in one tail may hold less mass than float64 resolves
        alpha, beta = (lo - float(mean[0])) / float(std[0]), (hi - float(mean[0])) / float(std[0])
        if min(abs(alpha), abs(beta)) > 8 and alpha * beta > 0:
            expect = "either"
    kwargs = {"correct_std": correct_std, "generator": gen[0]}
    fill = lambda t: init.trunc_normal_(t, mean[0], std[0], a[0], b[0], **kwargs)  # noqa: E731
    if not call_scheme(tensor, fill, where="trunc_normal_", expect=expect):
        return
    slack = 2 * finfo(tensor.dtype).eps * max(abs(lo), abs(hi))
    values = tensor.detach().double()
    assert bool((values >= lo - slack).all() and (values <= hi + slack).all())
    if valid:
        mu, sigma = float(mean[0]), float(std[0])
        if correct_std:
            target = sigma
        else:
            target = float(stats.truncnorm((lo - mu) / sigma, (hi - mu) / sigma, mu, sigma).std())
        if math.isfinite(target) and target > 1e-3 * (hi - lo):
            assert_std_near(tensor, target, float(values.mean()))


# --- structured ----------------------------------------------------------------------------------


def assert_orthonormal(block: torch.Tensor, dtype: torch.dtype) -> None:
    """Rows (or columns, when taller than wide) orthonormal, to the dtype's precision."""
    rows, cols = block.shape
    gram = block @ block.T if rows <= cols else block.T @ block
    eye = torch.eye(min(rows, cols), dtype=torch.float64)
    tol = 8 * finfo(dtype).eps + 1e-12
    assert torch.allclose(gram, eye, atol=tol, rtol=0), (gram - eye).abs().max()


def expect_count(value: Any) -> Expect:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return "ok" if ok else "error"


counts = mostly(st.sampled_from([1, 1, 1, 2, 3, 4]), st.sampled_from([-1, 0, True, 2.0, None, "2"]))


@FUZZ
@given(tensor=targets(), gain=numbers(1e-3, 1e3), blocks=counts, gen=generators())
def test_orthogonal_blocks_are_orthonormal_times_gain(
    tensor: torch.Tensor, gain: tuple[Any, Kind], blocks: Any, gen: tuple[Any, bool]
) -> None:
    expect = combine(
        expect_tensor(tensor), expect_number(gain[1]), expect_count(blocks), expect_generator(gen)
    )
    if expect == "ok" and (tensor.dim() < 2 or tensor.shape[0] % blocks):
        expect = "error"
    fill = lambda t: init.orthogonal_(t, gain[0], blocks=blocks, generator=gen[0])  # noqa: E731
    if not call_scheme(tensor, fill, where="orthogonal_", expect=expect) or expect != "ok":
        return
    g = float(gain[0])
    if tensor.numel() == 0:
        return
    flat = tensor.detach().double().reshape(blocks, tensor.shape[0] // blocks, -1)
    if g == 0:
        assert bool((flat == 0).all())
        return
    for block in flat / g:
        assert_orthonormal(block, tensor.dtype)


@FUZZ
@given(tensor=st.one_of(targets(min_dims=2, max_dims=2), targets()), gain=numbers(1e-3, 1e3))
def test_identity_is_gain_times_the_identity(tensor: torch.Tensor, gain: tuple[Any, Kind]) -> None:
    expect = combine(expect_tensor(tensor), expect_number(gain[1]))
    if expect == "ok" and tensor.dim() != 2:
        expect = "error"
    fill = lambda t: init.identity_(t, gain[0])  # noqa: E731
    if call_scheme(tensor, fill, where="identity_", expect=expect) and expect == "ok":
        reference = torch.eye(*tensor.shape, dtype=torch.float64) * float(gain[0])
        assert torch.equal(tensor.detach().double(), reference.to(tensor.dtype).double())


@FUZZ
@given(tensor=st.one_of(targets(min_dims=3), targets()), groups=counts, gain=numbers(1e-3, 1e3))
def test_dirac_copies_each_input_channel_at_the_kernel_centre(
    tensor: torch.Tensor, groups: Any, gain: tuple[Any, Kind]
) -> None:
    expect = combine(expect_tensor(tensor), expect_count(groups), expect_number(gain[1]))
    if expect == "ok" and (tensor.dim() not in (3, 4, 5) or tensor.shape[0] % groups):
        expect = "error"
    fill = lambda t: init.dirac_(t, groups, gain[0])  # noqa: E731
    if not call_scheme(tensor, fill, where="dirac_", expect=expect) or expect != "ok":
        return
    reference = torch.zeros(tensor.shape, dtype=torch.float64)
    if tensor.numel() == 0:
        return
    per_group = tensor.shape[0] // groups
    centre = tuple(k // 2 for k in tensor.shape[2:])
    for g in range(groups):
        for d in range(min(per_group, tensor.shape[1])):
            reference[(g * per_group + d, d, *centre)] = float(gain[0])
    assert torch.equal(tensor.detach().double(), reference.to(tensor.dtype).double())


@FUZZ
@given(
    tensor=st.one_of(targets(min_dims=2, even=True), targets()),
    mirror_in=st.booleans(),
    mirror_out=st.booleans(),
    gain=numbers(1e-3, 1e3),
    gen=generators(),
)
def test_looks_linear_mirrors_an_orthogonal_block(
    tensor: torch.Tensor,
    mirror_in: bool,
    mirror_out: bool,
    gain: tuple[Any, Kind],
    gen: tuple[Any, bool],
) -> None:
    expect = combine(expect_tensor(tensor), expect_number(gain[1]), expect_generator(gen))
    if expect == "ok" and (
        tensor.dim() < 2
        or (mirror_out and tensor.shape[0] % 2)
        or (mirror_in and tensor.shape[1] % 2)
    ):
        expect = "error"

    def fill(t: torch.Tensor) -> torch.Tensor:
        return init.looks_linear_(
            t, mirror_in=mirror_in, mirror_out=mirror_out, gain=gain[0], generator=gen[0]
        )

    if not call_scheme(tensor, fill, where="looks_linear_", expect=expect) or expect != "ok":
        return
    w = tensor.detach().double()
    rows, cols = w.shape[0] // (2 if mirror_out else 1), w.shape[1] // (2 if mirror_in else 1)
    if mirror_out:
        assert torch.equal(w[rows:], -w[:rows])
    if mirror_in:
        assert torch.equal(w[:, cols:], -w[:, :cols])
    g = float(gain[0])
    if tensor.numel() and g:
        assert_orthonormal(w[:rows, :cols].reshape(rows, -1) / g, tensor.dtype)


# --- gain -----------------------------------------------------------------------------------------

PARAMS = ("negative_slope", "alpha", "beta", "threshold", "min_val", "max_val", "slope")
_TAKES = {
    "leaky_relu": {"negative_slope"},
    "elu": {"alpha"},
    "celu": {"alpha"},
    "softplus": {"beta", "threshold"},
    "hardtanh": {"min_val", "max_val"},
}
_TORCH_NAMES = {"linear", "identity", "none", "sigmoid", "tanh", "relu", "leaky_relu", "selu"}
_NODES = torch.linspace(-12, 12, 480_001, dtype=torch.float64)


def reference_gain(fn: Any, kind: str) -> float:
    """1/sqrt(E[f(z)²]) or 1/sqrt(E[f'(z)²]) by the trapezoid rule on a 5e-5 grid (central
    differences for f'): independent of gain()'s quadrature and autograd."""
    z = _NODES
    if isinstance(fn, nn.Module):
        fn = copy.deepcopy(fn).double()  # PReLU's weight must match the float64 nodes
    with torch.no_grad():
        if kind == "forward":
            y = fn(z)
        else:
            h = 1e-6
            y = (fn(z + h) - fn(z - h)) / (2 * h)
    density = torch.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
    return 1.0 / math.sqrt(float(torch.trapezoid(y.double() ** 2 * density, z)))


@FUZZ
@given(
    activation=activations(),
    kind=options(("forward", "backward")),
    convention=st.one_of(st.just("exact"), st.just("exact"), options(("exact", "torch"))),
    params=mostly(
        st.just({}), st.dictionaries(st.sampled_from(PARAMS), numbers(1e-3, 3), max_size=2)
    ),
)
def test_gain_is_positive_finite_and_matches_a_trapezoid_reference(
    activation: Activation, kind: Any, convention: Any, params: dict[str, tuple[Any, Kind]]
) -> None:
    values = {k: v[0] for k, v in params.items()}
    expect: Expect = activation.expect(kind)
    if kind not in ("forward", "backward") or convention not in ("exact", "torch"):
        expect = "error"
    elif params or convention == "torch":
        if not known_name(activation.value) and not isinstance(activation.value, nn.Module):
            expect = "error"
        elif isinstance(activation.value, str):
            name = activation.value.lower()
            takes = _TAKES.get(name, set())
            if set(params) - takes or any(
                k in ("nonfinite", "notreal") for _, k in params.values()
            ):
                expect = "error"
            elif params:
                expect = "either"  # softplus beta=0, hardtanh min > max: no finite gain
            if convention == "torch" and (name not in _TORCH_NAMES or kind != "forward"):
                expect = "error"
        else:
            expect = "either"  # modules: parameters only for those that map to a name
    result = outcome(
        lambda: init.gain(activation.value, kind, convention=convention, **values),
        expect=expect,
        names=("gain",),
    )
    if result is RAISED:
        return
    assert isinstance(result, float)
    assert math.isfinite(result)
    assert result > 0
    if convention == "exact" and callable(activation.value) and not params:
        fn = activation.value
        if expect == "ok":  # not for softmax: not elementwise, its "gain" depends on the grid
            assert math.isclose(result, reference_gain(fn, kind), rel_tol=2e-3), activation


# --- fans ----------------------------------------------------------------------------------


@FUZZ
@given(
    tensor=mostly(
        st.one_of(tensors(shape=shapes(min_dims=2)), tensors()),
        st.sampled_from([[3, 4], None, 2.0, "w"]),
    ),
    groups=counts,
    blocks=counts,
    transposed=st.booleans(),
)
def test_compute_fans_follow_the_documented_layouts(
    tensor: Any, groups: Any, blocks: Any, transposed: bool
) -> None:
    expect = combine(expect_count(groups), expect_count(blocks))
    if not isinstance(tensor, torch.Tensor) or tensor.dim() < 2:
        expect = "error"
    elif expect == "ok":
        rows = tensor.shape[0]
        if rows % blocks or (rows // blocks) % groups:
            expect = "error"
    call = lambda: init.compute_fans(  # noqa: E731
        tensor, groups=groups, blocks=blocks, transposed=transposed
    )
    result = outcome(call, expect=expect, names=("compute_fans",))
    if result is RAISED:
        return
    receptive = math.prod(tensor.shape[2:])
    rows, cols = tensor.shape[0] // blocks, tensor.shape[1]
    if transposed:  # (in, out/groups, *k)
        assert result == (rows // groups * receptive, cols * receptive)
    else:  # (out, in/groups, *k)
        assert result == (cols * receptive, rows // groups * receptive)
    assert all(isinstance(f, int) and f >= 0 for f in result)


def _layers() -> st.SearchStrategy[tuple[nn.Module, dict[str, tuple[int, int]]]]:
    """A layer of small, sometimes zero, sizes and the fans of each of its weights."""
    size = st.integers(0, 4)
    group = st.integers(1, 3)

    def build(kind: str, i: int, o: int, k: int, g: int) -> tuple[nn.Module, dict[str, Any]]:
        with warnings.catch_warnings():  # torch warns about zero-element parameters
            warnings.simplefilter("ignore")
            if kind == "linear":
                return nn.Linear(i, o), {"weight": (i, o)}
            if kind in ("conv", "deconv"):
                i, o, k = g * max(i, 1), g * max(o, 1), max(k, 1)
                cls = nn.Conv2d if kind == "conv" else nn.ConvTranspose2d
                fans = (i // g * k * k, o // g * k * k)
                return cls(i, o, k, groups=g), {"weight": fans}
            if kind == "embedding":
                return nn.Embedding(i, o), {"weight": (1, o)}
            i, k, hidden = max(i, 1), max(k, 1), max(o, 1)  # torch refuses zero sizes here
            if kind == "bilinear":
                return nn.Bilinear(i, k, o), {"weight": (i * k, o * k)}
            if kind == "attention":
                return nn.MultiheadAttention(hidden, 1), {"in_proj_weight": (hidden, hidden)}
            cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind]
            fans = {"weight_ih_l0": (i, hidden), "weight_hh_l0": (hidden, hidden)}
            return cls(i, hidden), fans

    kinds = ["linear", "conv", "deconv", "embedding", "bilinear", "attention", "lstm", "gru", "rnn"]
    return st.builds(build, st.sampled_from(kinds), size, size, size, group)


@FUZZ
@given(layer=st.one_of(_layers(), _layers(), st.just((None, {}))), name=st.data())
def test_layer_fans_are_per_unit_for_every_layer_type(
    layer: tuple[nn.Module | None, dict[str, tuple[int, int]]], name: st.DataObject
) -> None:
    module, fans_of = layer
    params = [] if module is None else [n for n, _ in module.named_parameters(recurse=False)]
    chosen = name.draw(st.one_of(options([*params, "weight"]), st.just(3)))
    expect: Expect = "ok" if chosen in fans_of else "error"
    if module is not None and chosen in fans_of and module.get_parameter(chosen).numel() == 0:
        expect = "either"  # a zero-size layer: fans of 0 are computed, or refused
    result = outcome(
        lambda: init.layer_fans(module, chosen), expect=expect, names=("layer_fans", "fans")
    )
    if result is not RAISED and chosen in fans_of:
        assert tuple(result) == fans_of[chosen]
