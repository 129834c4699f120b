"""Fuzz stabletrain.stability: grad_norm, clip_grad_norm_, clip_grad_value_,
adaptive_clip_grad_ and StepGuard over random parameters and gradients (dtypes, shapes, NaN and
inf, duplicates, names, models), norms, limits and options with typos.

Every returned measurement equals a float64 reference taken before the call; clipping never
makes a finite gradient non-finite, leaves what is inside its limit bit for bit and brings the
rest to the limit; a non-finite gradient is left as it was; the guard steps exactly when the
gradients and the loss are finite."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from stabletrain.stability import (
    SPIKE_METRICS,
    ConsecutiveSkipsError,
    NonFiniteGradError,
    StepGuard,
    adaptive_clip_grad_,
    clip_grad_norm_,
    clip_grad_value_,
    grad_norm,
)
from tests.fuzz._strategies import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    FUZZ,
    RAISED,
    Expect,
    Kind,
    combine,
    finfo,
    make_tensor,
    mostly,
    numbers,
    outcome,
    same_bits,
    shapes,
)

# integer, bool and complex gradients are refused with a TypeError naming the parameter
NOT_FLOAT_DTYPES = tuple(d for d in ALL_DTYPES if d not in FLOAT_DTYPES)
grad_dtypes = mostly(st.sampled_from(FLOAT_DTYPES), st.sampled_from(NOT_FLOAT_DTYPES))
# 1e20: Σg² of finite float32 gradients overflows float32 (float16 ones are inf already)
SCALES = (1e-3, 1.0, 100.0, 1e20)
NAMES = ("a.w", "a.b", "b.w", "w", "c.d.w")


@dataclass
class Grads:
    """What is passed (``arg``), the distinct tensors it holds, their names and layers."""

    arg: Any
    tensors: list[torch.Tensor] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    named: bool = False
    expect: Expect = "ok"

    def with_grads(self) -> list[int]:
        return [i for i, t in enumerate(self.tensors) if t.grad is not None]

    def grads(self) -> list[torch.Tensor]:
        return [self.tensors[i].grad.detach().clone() for i in self.with_grads()]

    def finite(self) -> bool:
        return all(bool(g.isfinite().all()) for g in self.grads())

    def __repr__(self) -> str:
        shapes_ = [(tuple(t.shape), str(t.dtype), t.grad is not None) for t in self.tensors]
        return f"Grads(form={type(self.arg).__name__}, named={self.named}, tensors={shapes_})"


def _param(
    shape: tuple[int, ...], dtype: torch.dtype, seed: int, scale: float, grad: bool, poison: float
) -> torch.Tensor:
    p = make_tensor(shape, dtype, seed)
    if dtype.is_floating_point or dtype.is_complex:  # others cannot require gradients
        p.requires_grad_(True)
    if grad:
        g = make_tensor(shape, dtype, seed + 1, scale=scale)
        if poison and g.numel() and g.dtype in FLOAT_DTYPES:
            g.view(-1)[seed % g.numel()] = poison
        p.grad = g
    return p


params_ = st.builds(
    _param,
    shapes(max_dims=3),
    grad_dtypes,
    st.integers(0, 2**16),
    st.sampled_from(SCALES),
    st.sampled_from([True, True, True, False]),
    st.sampled_from([0.0] * 8 + [math.nan, math.inf, -math.inf]),
)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.norm = nn.LayerNorm(2)
        self.scale = nn.Parameter(torch.ones(()))


def _model(seed: int, scale: float, poison: float) -> Grads:
    torch.manual_seed(seed)
    model = Tiny()
    for i, p in enumerate(model.parameters()):
        p.grad = torch.randn(p.shape) * scale
        if poison and i == seed % 5 and p.numel():
            p.grad.view(-1)[0] = poison
    named = dict(model.named_parameters())
    layers = [n.rpartition(".")[0] for n in named]
    return Grads(model, list(named.values()), list(named), layers, named=True)


def _listed(ps: list[torch.Tensor], form: str, names: list[str]) -> Grads:
    case = _listed_case(ps, form, names)
    if any(t.grad is not None and t.grad.dtype not in FLOAT_DTYPES for t in case.tensors):
        case.expect = "error"  # TypeError: the gradient of <name> has dtype ...
    return case


def _listed_case(ps: list[torch.Tensor], form: str, names: list[str]) -> Grads:
    if form == "duplicated" and ps:
        ps = [*ps, ps[0]]
    if form == "single" and ps:
        return Grads(ps[0], [ps[0]], ["0"], ["0"])
    if form == "pairs":
        chosen = [names[i % len(names)] for i in range(len(ps))]  # ps are distinct tensors
        layers = [name.rpartition(".")[0] for name in chosen]
        # an empty list of pairs has no names to go by: per layer needs at least one pair
        return Grads(list(zip(chosen, ps, strict=True)), ps, chosen, layers, named=bool(ps))
    seen: dict[int, int] = {}
    for i, p in enumerate(ps):
        seen.setdefault(id(p), i)
    order = sorted(seen.values())
    return Grads(ps, [ps[i] for i in order], [str(i) for i in order], [str(i) for i in order])


grad_sets = mostly(
    st.one_of(
        st.builds(
            _listed,
            st.lists(params_, max_size=4),
            st.sampled_from(["list", "list", "duplicated", "single", "pairs"]),
            st.permutations(NAMES),
        ),
        st.builds(
            _model,
            st.integers(0, 100),
            st.sampled_from(SCALES),
            st.sampled_from([0.0, 0.0, math.nan, math.inf]),
        ),
    ),
    st.sampled_from(
        [
            Grads(5, expect="error"),
            Grads([1.0], expect="error"),
            Grads([("a", 3)], expect="error"),
            Grads(None, expect="error"),
        ]
    ),
)


def reference_norm(grads: list[torch.Tensor], p: float) -> float:
    """‖all gradients‖_p in float64 (NaN if any is NaN), scaled by max|g| so that neither
    |g|^p nor its sum leaves float64's range."""
    if not grads:
        return 0.0
    values = torch.cat([magnitude(g).reshape(-1) for g in grads])
    if values.numel() == 0:
        return 0.0
    if bool(values.isnan().any()):
        return math.nan
    peak = float(values.max())
    if p == math.inf or peak == 0 or math.isinf(peak):
        return peak
    return peak * float((values / peak).pow(p).sum().pow(1 / p))


def magnitude(g: torch.Tensor) -> torch.Tensor:
    """|g| in float64, for every dtype (complex and bool included)."""
    return g.detach().to(torch.complex128).abs() if g.is_complex() else g.detach().double().abs()


def assert_norm_close(measured: torch.Tensor, expected: float, *, all_float64: bool) -> None:
    value = float(measured)
    if not math.isfinite(expected):
        assert not math.isfinite(value), (value, expected)
        return
    rtol = 1e-10 if all_float64 else 1e-5
    assert math.isclose(value, expected, rel_tol=rtol, abs_tol=1e-30), (value, expected)


def all_float64(case: Grads) -> bool:
    """Whether every gradient is float64, so the norms are taken in float64."""
    return all(case.tensors[i].grad.dtype == torch.float64 for i in case.with_grads())


NORM_TYPES: list[tuple[Any, Expect]] = [
    (2.0, "ok"),
    (2, "ok"),
    (1.0, "ok"),
    (3.0, "ok"),
    (0.5, "ok"),
    (8.0, "ok"),
    (20.0, "ok"),  # |g|^20 overflows float32 from |g| ~ 100, underflows it from ~ 0.01
    (100.0, "ok"),
    (math.inf, "ok"),
    (np.float32(2.0), "ok"),
    (np.float64(3.0), "ok"),
    (np.int64(2), "ok"),
    (torch.tensor(2.0), "ok"),
    (0.0, "error"),
    (-2.0, "error"),
    (math.nan, "error"),
    ("2", "error"),
    (None, "error"),
    (True, "error"),
    (1 + 0j, "error"),
    (torch.tensor([2.0, 1.0]), "error"),
    (torch.tensor(2.0 + 0j), "error"),
]
FOREACH: list[tuple[Any, Expect]] = [
    (None, "ok"),
    (True, "ok"),
    (False, "ok"),
    ("yes", "error"),
    (1, "error"),
]


norm_types = mostly(
    st.sampled_from([n for n in NORM_TYPES if n[1] == "ok"]),
    st.sampled_from([n for n in NORM_TYPES if n[1] != "ok"]),
)
foreachs = mostly(
    st.sampled_from([f for f in FOREACH if f[1] == "ok"]),
    st.sampled_from([f for f in FOREACH if f[1] != "ok"]),
)


def per_layer_reference(case: Grads, p: float) -> dict[str, float]:
    by_layer: dict[str, list[torch.Tensor]] = {}
    for i in case.with_grads():
        by_layer.setdefault(case.layers[i], []).append(case.tensors[i].grad)
    return {layer: reference_norm(gs, p) for layer, gs in by_layer.items()}


# --- grad_norm ------------------------------------------------------------------------------------


@FUZZ
@given(
    case=grad_sets,
    norm_type=norm_types,
    per_layer=st.sampled_from([False, False, True]),
    foreach=foreachs,
)
def test_grad_norm_equals_a_float64_norm_and_changes_nothing(
    case: Grads, norm_type: tuple[Any, Expect], per_layer: bool, foreach: tuple[Any, Expect]
) -> None:
    expect = combine(case.expect, norm_type[1], foreach[1])
    if expect != "error" and per_layer and not case.named:
        expect = "error"  # per layer needs names
    before = case.grads()
    call = lambda: grad_norm(  # noqa: E731
        case.arg, norm_type[0], per_layer=per_layer, foreach=foreach[0]
    )
    result = outcome(call, expect=expect, names=("grad_norm",))
    if result is RAISED:
        return
    after = case.grads()
    assert all(same_bits(a, b) for a, b in zip(before, after, strict=True))
    p = float(norm_type[0])
    if per_layer:
        expected = per_layer_reference(case, p)
        assert set(result) == set(expected)
        for layer, value in expected.items():
            assert_norm_close(result[layer], value, all_float64=all_float64(case))
    else:
        assert result.dim() == 0
        assert_norm_close(result, reference_norm(before, p), all_float64=all_float64(case))


# --- clip_grad_norm_ ------------------------------------------------------------------------------


def call_clip(call: Any, *, expect: Expect, where: str, finite: bool, error_if: bool) -> Any:
    """outcome(), where NonFiniteGradError is the documented answer to non-finite gradients
    with ``error_if_nonfinite=True``."""
    try:
        return outcome(call, expect=expect, names=(where,))
    except NonFiniteGradError as err:
        message = str(err)
    assert error_if, f"NonFiniteGradError without error_if_nonfinite: {message}"
    assert not finite, f"NonFiniteGradError on finite gradients: {message}"
    assert where in message
    return RAISED


def assert_clipped(before: torch.Tensor, after: torch.Tensor, norm: float, limit: float) -> None:
    """One group clipped by norm: unchanged inside (or non-finite), else scaled to the limit."""
    if not math.isfinite(norm) or norm + 1e-6 <= limit:
        assert same_bits(before, after), "a gradient inside the limit (or non-finite) changed"


@FUZZ
@given(
    case=grad_sets,
    max_norm=numbers(1e-3, 10),
    norm_type=norm_types,
    per_layer=st.sampled_from([False, False, True]),
    error_if=st.booleans(),
    foreach=foreachs,
    sync=st.booleans(),
)
def test_clip_grad_norm_returns_the_norm_before_and_brings_it_to_the_limit(
    case: Grads,
    max_norm: tuple[Any, Kind],
    norm_type: tuple[Any, Expect],
    per_layer: bool,
    error_if: bool,
    foreach: tuple[Any, Expect],
    sync: bool,
) -> None:
    expect = combine(
        case.expect,
        "ok" if max_norm[1] in ("positive", "huge") else "error",
        norm_type[1],
        foreach[1],
    )
    if expect != "error" and per_layer and not case.named:
        expect = "error"
    before = case.grads()
    finite = case.finite()
    p = float(norm_type[0]) if norm_type[1] == "ok" else 2.0
    layer_norms = per_layer_reference(case, p)  # before clipping
    call = lambda: clip_grad_norm_(  # noqa: E731
        case.arg,
        max_norm[0],
        norm_type[0],
        per_layer=per_layer,
        error_if_nonfinite=error_if,
        foreach=foreach[0],
        sync=sync,
    )
    result = call_clip(
        call, expect=expect, where="clip_grad_norm_", finite=finite, error_if=error_if
    )
    after = case.grads()
    if result is RAISED:
        assert all(same_bits(a, b) for a, b in zip(before, after, strict=True))
        return
    assert not (error_if and not finite), "non-finite gradients with error_if_nonfinite=True"
    for a, b in zip(before, after, strict=True):
        assert not (bool(a.isfinite().all()) and not bool(b.isfinite().all())), "NaN/inf created"
    limit, float64 = float(max_norm[0]), all_float64(case)
    if per_layer:
        expected = layer_norms
        assert set(result) == set(expected)
        for layer, value in expected.items():
            assert_norm_close(result[layer], value, all_float64=float64)
        groups = [
            ([k for k, i in enumerate(case.with_grads()) if case.layers[i] == layer], value)
            for layer, value in expected.items()
        ]
    else:
        norm = reference_norm(before, p)
        assert_norm_close(result, norm, all_float64=float64)
        groups = [(list(range(len(before))), norm)]
    for members, norm in groups:
        for k in members:
            assert_clipped(before[k], after[k], norm, limit)
        if math.isfinite(norm) and norm + 1e-6 > limit:
            new = reference_norm([after[k] for k in members], p)
            slack = 1 + 8 * max(finfo(after[k].dtype).eps for k in members)
            assert new <= limit * slack, (new, limit)


# --- clip_grad_value_ -----------------------------------------------------------------------------


# huge values (1e30 to the largest float) lie beyond float16's range, 3.5e38 and up beyond
# float32's: the bound is then what the dtype rounds it to (inf: nothing to clamp)
clip_values = numbers(1e-3, 10)


@FUZZ
@given(
    case=grad_sets,
    clip_value=clip_values,
    error_if=st.booleans(),
    foreach=foreachs,
    sync=st.booleans(),
)
def test_clip_grad_value_returns_max_abs_before_and_clamps_like_torch(
    case: Grads,
    clip_value: tuple[Any, Kind],
    error_if: bool,
    foreach: tuple[Any, Expect],
    sync: bool,
) -> None:
    expect = combine(
        case.expect, "ok" if clip_value[1] in ("positive", "huge") else "error", foreach[1]
    )
    before = case.grads()
    finite = case.finite()
    call = lambda: clip_grad_value_(  # noqa: E731
        case.arg, clip_value[0], error_if_nonfinite=error_if, foreach=foreach[0], sync=sync
    )
    result = call_clip(
        call, expect=expect, where="clip_grad_value_", finite=finite, error_if=error_if
    )
    after = case.grads()
    if result is RAISED:
        assert all(same_bits(a, b) for a, b in zip(before, after, strict=True))
        return
    assert_norm_close(result, reference_norm(before, math.inf), all_float64=True)
    c = float(clip_value[0])
    for a, b in zip(before, after, strict=True):
        bound = torch.tensor(c, dtype=a.dtype).double()  # c as the gradient's dtype holds it
        values, clamped = a.double(), b.double()
        inside = values.abs() <= c
        assert same_bits(a[inside], b[inside]), "a value inside the bound changed"
        assert bool((clamped.isnan() == values.isnan()).all()), "NaN created or removed"
        outside = ~inside & ~values.isnan()
        assert torch.equal(clamped[outside], values[outside].sign() * bound)


# --- adaptive_clip_grad_ --------------------------------------------------------------------------


def unit_view(t: torch.Tensor) -> torch.Tensor:
    """(units, values): rows for >= 2 dims (dim 0 is the output unit), one unit otherwise."""
    t = t.detach().double()
    if t.dim() >= 2:
        return t.reshape(t.shape[0], math.prod(t.shape[1:]))
    return t.reshape(1, -1)


@FUZZ
@given(
    case=grad_sets,
    clipping=numbers(1e-3, 1.0),
    eps=numbers(1e-6, 1e-2),
    unit_dims=st.sampled_from(
        [(None, "ok"), ({}, "ok"), ({3: 0}, "error"), ([("a", 0)], "error"), ({nn.Linear: 0}, "ok")]
    ),
    error_if=st.booleans(),
)
def test_adaptive_clip_grad_bounds_each_unit_by_lambda_times_its_weight_norm(
    case: Grads,
    clipping: tuple[Any, Kind],
    eps: tuple[Any, Kind],
    unit_dims: tuple[Any, Expect],
    error_if: bool,
) -> None:
    positive = ("positive", "huge")
    expect = combine(
        case.expect,
        "ok" if clipping[1] in positive else "error",
        "ok" if eps[1] in positive else "error",
        unit_dims[1],
    )
    before = case.grads()
    finite = case.finite()
    call = lambda: adaptive_clip_grad_(  # noqa: E731
        case.arg, clipping[0], eps[0], unit_dims=unit_dims[0], error_if_nonfinite=error_if
    )
    result = call_clip(
        call, expect=expect, where="adaptive_clip_grad_", finite=finite, error_if=error_if
    )
    after = case.grads()
    if result is RAISED:
        assert all(same_bits(a, b) for a, b in zip(before, after, strict=True))
        return
    lam, floor = float(clipping[0]), float(eps[0])
    for k, i in enumerate(case.with_grads()):
        g_before, g_after = unit_view(before[k]), unit_view(after[k])
        if before[k].numel() == 0:
            assert case.names[i] not in result
            continue
        w_norms = torch.linalg.vector_norm(unit_view(case.tensors[i]), dim=1)
        g_norms = torch.linalg.vector_norm(g_before, dim=1)
        measured = result[case.names[i]].double().reshape(-1)
        torch.testing.assert_close(measured, g_norms, rtol=1e-5, atol=0, equal_nan=True)
        allowed = lam * w_norms.clamp_min(floor)
        slack = 1 + 8 * finfo(before[k].dtype).eps
        for unit in range(g_before.shape[0]):
            if not torch.isfinite(g_norms[unit]) or g_norms[unit] <= allowed[unit]:
                assert same_bits(g_before[unit], g_after[unit])
            else:
                new = float(torch.linalg.vector_norm(g_after[unit]))
                assert new <= float(allowed[unit]) * slack, (new, float(allowed[unit]))


# --- StepGuard ------------------------------------------------------------------------------------


_GUARD_OPTIONS: dict[str, tuple[list[Any], list[Any]]] = {  # name: (valid, invalid) values
    "max_norm": ([None, 1.0, 0.5, 100], [0.0, -1.0, math.nan, "1"]),
    "norm_type": ([2.0, math.inf, 1.0], [0.0, -2.0]),
    "spike_zscore": ([None, None, 3.0], [-1.0, 0]),
    "spike_on": ([SPIKE_METRICS, ("loss",), "grad_norm"], [("los",), "gradnorm"]),
    "window": ([100, 2, 5], [1, 0, 2.0]),
    "min_history": ([None, 2], [1, 500]),
    "max_consecutive_skips": ([None, 1, 2, 25], [0, True]),
    "foreach": ([None, False], ["no", 1]),
}


@st.composite
def constructions(draw: st.DrawFn) -> tuple[dict[str, Any], Expect]:
    """StepGuard options, all valid half of the time, else with one invalid option."""
    kwargs = {name: draw(st.sampled_from(good)) for name, (good, _) in _GUARD_OPTIONS.items()}
    bad = [name for name, (_, invalid) in _GUARD_OPTIONS.items() if invalid]
    corrupt = draw(st.sampled_from([None] * len(bad) + bad))
    expect: Expect = "ok"
    if corrupt is not None:
        kwargs[corrupt] = draw(st.sampled_from(_GUARD_OPTIONS[corrupt][1]))
        expect = "error"
    history = kwargs["min_history"]
    if expect == "ok" and history is not None and history > kwargs["window"]:
        expect = "error"
    return kwargs, expect


LOSSES: list[tuple[Any, Expect, bool]] = [  # (loss, expect, finite)
    (None, "ok", True),
    (None, "ok", True),
    (0.5, "ok", True),
    (3, "ok", True),
    (torch.tensor(2.0), "ok", True),
    (torch.tensor([[1.5]]), "ok", True),
    (torch.tensor(1.0, dtype=torch.float16), "ok", True),
    (math.nan, "ok", False),
    (math.inf, "ok", False),
    (torch.tensor(-math.inf), "ok", False),
    ("1.0", "error", True),
    (True, "error", True),
    (torch.ones(2), "error", True),
    (torch.tensor(1.0 + 2.0j), "error", True),
    (torch.tensor(True), "error", True),
    (-1.5, "ok", True),  # refused (documented) only while the loss spike test is on
]


@dataclass
class Step:
    seed: int
    poison: float
    loss: tuple[Any, Expect, bool]


steps = st.builds(
    Step,
    st.integers(0, 2**16),
    st.sampled_from([0.0, 0.0, 0.0, math.nan, math.inf]),
    st.sampled_from(LOSSES),
)


@FUZZ
@given(
    construction=constructions(),
    shape_list=st.lists(shapes(min_dims=1, max_dims=2), min_size=1, max_size=3),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    named=st.sampled_from(["model", "pairs", None, "int", "tensor", "bad pairs"]),
    plan=st.lists(steps, min_size=1, max_size=3),
)
def test_step_guard_steps_exactly_when_gradients_and_loss_are_finite(
    construction: tuple[dict[str, Any], Expect],
    shape_list: list[tuple[int, ...]],
    dtype: torch.dtype,
    named: str | None,
    plan: list[Step],
) -> None:
    kwargs, expect = construction
    params = [nn.Parameter(make_tensor(s, dtype, i)) for i, s in enumerate(shape_list)]
    opt = torch.optim.SGD(params, lr=0.1)
    model: Any = {
        "model": nn.ParameterList(params),
        "pairs": [(f"p{i}", p) for i, p in enumerate(params)],
        None: None,
        "int": 3,
        "tensor": params[0],
        "bad pairs": [("p0",)],
    }[named]
    if named in ("int", "tensor", "bad pairs"):
        expect = "error"
    guard = outcome(
        lambda: StepGuard(opt, model=model, **kwargs), expect=expect, names=("StepGuard",)
    )
    if guard is RAISED:
        return
    consecutive = 0
    for step in plan:
        for i, p in enumerate(params):
            p.grad = make_tensor(p.shape, dtype, step.seed + i)
            if step.poison and i == 0 and p.grad.numel():
                p.grad.view(-1)[0] = step.poison
        before = [p.detach().clone() for p in params]
        grads = [p.grad.detach().clone() for p in params]
        loss, loss_expect, loss_finite = step.loss
        on_loss = kwargs["spike_zscore"] is not None and "loss" in kwargs["spike_on"]
        if on_loss and loss_expect == "ok" and loss_finite and loss is not None and loss < 0:
            loss_expect = "error"  # documented: a finite negative loss is refused then
        p_norm = float(kwargs["norm_type"])
        norm = reference_norm(grads, p_norm)
        finite = math.isfinite(norm) and loss_finite
        limit = kwargs["max_consecutive_skips"]
        try:
            result = outcome(
                lambda loss=loss: guard.step(loss), expect=loss_expect, names=("StepGuard.step",)
            )
        except ConsecutiveSkipsError:  # documented: the limit of skips in a row
            result = None
        if result is None:
            assert not finite or kwargs["spike_zscore"] is not None
            assert limit is not None
            assert consecutive + 1 >= limit
            return
        if result is RAISED:
            continue
        assert_norm_close(result.total_norm, norm, all_float64=dtype == torch.float64)
        if kwargs["spike_zscore"] is None:
            assert result.stepped == finite, (result, norm, loss)
        elif not finite:  # a NaN/inf gradient or loss (-inf included) is never stepped
            assert not result.stepped, (result, norm, loss)
        if result.stepped:
            consecutive = 0
            coef = 1.0
            if kwargs["max_norm"] is not None:
                coef = min(1.0, float(kwargs["max_norm"]) / (norm + 1e-6))
            for p, b, g in zip(params, before, grads, strict=True):
                expected = b.double() - 0.1 * coef * g.double()
                tol = 1e-12 if dtype == torch.float64 else 1e-5
                torch.testing.assert_close(p.detach().double(), expected, rtol=tol, atol=tol)
        else:
            consecutive += 1
            assert result.reason is not None
            assert all(same_bits(p, b) for p, b in zip(params, before, strict=True))
            assert all(p.grad is None for p in params), "a skipped step leaves gradients"
            if result.reason == "nonfinite_grad" and named in ("pairs", "model"):
                assert result.nonfinite_params == (("p0",) if named == "pairs" else ("0",))
