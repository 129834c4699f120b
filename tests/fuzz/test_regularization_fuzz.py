"""Fuzz stabletrain.regularization: penalties, param_groups, sparsity, max_norm_ and the
dropout variants over random tensors, dtypes, numbers, options with typos and small models.

Values are checked against float64 references: a penalty is Σ|θ|^p, a gradient λθ or λ·sign(θ),
a count the number of (near) zeros, a max-norm projection leaves every unit inside the ball and
the units already inside bit for bit, a dropped sample is 0 and a kept one x/(1−p)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from stabletrain.regularization import (
    CATEGORIES,
    ClassicDropout,
    DropPath,
    classic_dropout,
    drop_path,
    drop_path_rates,
    elastic_net_penalty,
    l1_penalty,
    l2_penalty,
    max_norm_,
    param_groups,
    sparsity,
)
from tests.fuzz._strategies import (
    ALL_DTYPES,
    FUZZ,
    RAISED,
    Expect,
    Kind,
    combine,
    finfo,
    generators,
    is_float,
    mostly,
    numbers,
    options,
    outcome,
    probabilities,
    same_bits,
    tensors,
)


def expect_number(kind: Kind, *, zero: bool = True, negative: bool = False) -> Expect:
    if kind in ("positive", "huge"):
        return "ok"
    if kind == "zero":
        return "ok" if zero else "error"
    if kind == "negative":
        return "ok" if negative else "error"
    return "error"


def rtol_of(dtype: torch.dtype) -> float:
    """Relative tolerance of a sum accumulated in ``dtype`` against float64."""
    return 1e-10 if dtype == torch.float64 else 1e-5


# --- models ---------------------------------------------------------------------------------------


class Gated(nn.Module):
    """A custom module: a weight matrix and an elementwise gain, classified by shape."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = nn.Parameter(torch.randn(width, width))
        self.scale = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.proj) * self.scale


def _model(kind: str, width: int, frozen: bool, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # zero-width layers warn that their init is a no-op
        warnings.simplefilter("ignore")
        if kind == "mlp":
            model: nn.Module = nn.Sequential(
                nn.Linear(3, width), nn.LayerNorm(width), nn.ReLU(), nn.Linear(width, 2)
            )
        elif kind == "conv":
            model = nn.Sequential(
                nn.Conv1d(2, width, 3), nn.BatchNorm1d(width), nn.Conv1d(width, 1, 1)
            )
        elif kind == "tied":
            embedding = nn.Embedding(7, width)
            head = nn.Linear(width, 7, bias=False)
            head.weight = embedding.weight
            model = nn.Sequential(embedding, nn.Linear(width, width), head)
        else:
            model = nn.Sequential(nn.Linear(3, width), Gated(width))
    if frozen:
        next(model.parameters()).requires_grad_(False)
    return model


models = st.builds(
    _model,
    st.sampled_from(["mlp", "conv", "tied", "custom"]),
    st.integers(0, 4),
    st.booleans(),
    st.integers(0, 3),
)


def categories(model: nn.Module) -> dict[int, tuple[torch.Tensor, str]]:
    """Each distinct parameter and its category, by the documented rule: Linear, Conv and
    custom weight matrices are weights; biases, norm parameters, embedding tables (a head
    tied to one is a table) and elementwise gains are what their names say."""
    found: dict[int, tuple[torch.Tensor, str]] = {}
    for module in model.modules():
        own = dict(module.named_parameters(recurse=False))
        for name, param in own.items():
            if isinstance(module, nn.LayerNorm | nn.BatchNorm1d):
                category = "norm"
            elif name == "bias":
                category = "bias"
            elif isinstance(module, nn.Embedding):
                category = "embedding"
            elif isinstance(module, Gated) and name == "scale":
                category = "gain"
            elif isinstance(module, Gated) and param.shape[0] == 1:
                category = "positional"  # a custom (1, n) parameter: broadcast over the batch
            else:
                category = "weight"
            found.setdefault(id(param), (param, category))
    return found


def decayed(model: nn.Module, no_decay: Any = ("bias", "norm", "gain", "embedding")) -> list[Any]:
    """The trainable parameters a penalty on ``model`` covers, by category."""
    return [p for p, c in categories(model).values() if c not in no_decay and p.requires_grad]


# --- penalties ------------------------------------------------------------------------------------


def penalty_targets() -> st.SearchStrategy[tuple[Any, list[torch.Tensor] | None, Expect]]:
    """``(target, tensors it penalizes, expect)``: lists and single tensors of any dtype,
    models, and things that are neither."""

    def listed(ts: list[torch.Tensor], requires_grad: bool) -> tuple[Any, Any, Expect]:
        for t in ts:
            if requires_grad and is_float(t):
                t.requires_grad_(True)
        ok = all(t.is_floating_point() or t.is_complex() for t in ts)
        return ts, ts, "ok" if ok else "error"

    weights = tensors(scales=(1.0, 100.0))  # 625 float16 values of 100: Σθ² is beyond 65504
    some = st.lists(weights, max_size=3)
    return st.one_of(
        st.builds(listed, some, st.booleans()),
        st.builds(listed, some, st.booleans()),
        st.builds(listed, weights.map(lambda t: [t]), st.booleans()).map(
            lambda x: (x[0][0], x[1], x[2])
        ),
        models.map(lambda m: (m, decayed(m), "ok")),
        st.sampled_from([(5, None, "error"), (None, None, "error"), ("w", None, "error")]),
        st.sampled_from([([1.0], None, "error"), ([torch.ones(2), 3], None, "error")]),
    )


def reference_penalty(tensors_: list[torch.Tensor], power: float, reduction: str) -> float:
    total = sum(float((t.detach().to(torch.complex128).abs() ** power).sum()) for t in tensors_)
    n = sum(t.numel() for t in tensors_)
    return total / max(n, 1) if reduction == "mean" else total


def reference_grad(t: torch.Tensor, l1: float, l2: float, n: int) -> torch.Tensor:
    """d/dθ of l1·Σ|θ|/n + l2·Σθ²/n (n = 1 for a sum)."""
    theta = t.detach().double()
    return (l1 * theta.sign() + 2 * l2 * theta) / n


def check_penalty(
    value: torch.Tensor,
    expected: float,
    penalized: list[torch.Tensor],
    l1: float,
    l2: float,
    n: int,
) -> None:
    """The value against float64, and the gradients (λ·sign(θ) + 2λ₂θ, over n for a mean)."""
    assert value.dim() == 0
    assert not value.is_complex()
    assert value.dtype in (torch.float32, torch.float64), "a penalty is float32 at least"
    if abs(expected) > finfo(value.dtype).max:
        return  # a huge coefficient: the true value is beyond the result's dtype
    rtol = rtol_of(value.dtype)
    assert math.isclose(float(value.detach()), expected, rel_tol=rtol, abs_tol=1e-30), (
        value,
        expected,
    )
    leaves = [t for t in penalized if t.requires_grad and t.is_leaf]
    if not leaves or not value.requires_grad or not math.isfinite(max(l1, l2) * 1e10):
        return
    grads = torch.autograd.grad(value, leaves, allow_unused=True)
    counted: set[int] = set()
    for t, grad in zip(leaves, grads, strict=True):
        if id(t) in counted or grad is None:
            continue
        counted.add(id(t))
        times = sum(u is t for u in penalized)  # a tensor listed twice is penalized twice
        expected_grad = times * reference_grad(t, l1, l2, n)
        tol = 4 * finfo(t.dtype).eps
        torch.testing.assert_close(grad.double(), expected_grad, rtol=tol, atol=tol * 1e-3)


def _lam(value: tuple[Any, Kind]) -> float:
    return float(value[0]) if value[1] in ("positive", "zero", "huge") else math.nan


@pytest.mark.parametrize("which", ["l1_penalty", "l2_penalty", "elastic_net_penalty"])
@FUZZ
@given(
    target=penalty_targets(),
    l1=numbers(1e-4, 10),
    l2=numbers(1e-4, 10),
    half=st.booleans(),
    reduction=options(("sum", "mean")),
    no_decay=mostly(
        st.sampled_from([("bias",), ("bias", "norm"), ()]), st.sampled_from([("bais",), "bias"])
    ),
)
def test_penalties_equal_a_float64_sum_and_their_gradients_are_lambda_theta(
    target: tuple[Any, list[torch.Tensor] | None, Expect],
    which: str,
    l1: tuple[Any, Kind],
    l2: tuple[Any, Kind],
    half: bool,
    reduction: Any,
    no_decay: Any,
) -> None:
    value, penalized, expect_target = target
    is_model = isinstance(value, nn.Module)
    valid_no_decay: Expect = (
        "ok" if not isinstance(no_decay, str) and set(no_decay) <= set(CATEGORIES) else "error"
    )
    expect = combine(
        expect_target,
        "ok" if reduction in ("sum", "mean") else "error",
        valid_no_decay if is_model else "either",  # no_decay only selects from a model
    )
    kwargs: dict[str, Any] = {"reduction": reduction, "no_decay": no_decay}
    calls: dict[str, Callable[[], torch.Tensor]] = {
        "l1_penalty": lambda: l1_penalty(value, l1[0], **kwargs),
        "l2_penalty": lambda: l2_penalty(value, l2[0], half=half, **kwargs),
        "elastic_net_penalty": lambda: elastic_net_penalty(
            value, l1[0], l2[0], half=half, **kwargs
        ),
    }
    lam1, lam2 = _lam(l1), _lam(l2)
    if which != "l2_penalty":
        expect = combine(expect, expect_number(l1[1]))
    if which != "l1_penalty":
        expect = combine(expect, expect_number(l2[1]))
    result = outcome(calls[which], expect=expect, names=(which, "param_groups"))
    if result is RAISED or penalized is None or expect != "ok":
        return
    if is_model:
        penalized = decayed(value, no_decay)
    n = max(sum(t.numel() for t in penalized), 1) if reduction == "mean" else 1
    l2_factor = lam2 / 2 if half else lam2
    weight1 = lam1 if which != "l2_penalty" else 0.0
    weight2 = l2_factor if which != "l1_penalty" else 0.0
    expected = 0.0
    if weight1:
        expected += weight1 * reference_penalty(penalized, 1.0, reduction)
    if weight2:
        expected += weight2 * reference_penalty(penalized, 2.0, reduction)
    check_penalty(result, expected, penalized, weight1, weight2, n)


# --- param_groups ---------------------------------------------------------------------------------


def overrides_for(model: nn.Module) -> st.SearchStrategy[tuple[Any, Expect]]:
    first = next(model.modules())
    some_param = next(model.parameters(), None)
    keys: list[tuple[Any, Expect]] = [
        (nn.Linear, "ok"),
        ((nn.Linear, nn.LayerNorm), "ok"),
        ("*bias", "either"),  # matches nothing in a model without biases
        ("zz*", "error"),
        (first, "ok"),
        (nn.Linear(2, 2), "error"),  # not part of the model
        (3, "error"),
    ]
    if some_param is not None:
        keys.append((some_param, "ok"))
    values: list[tuple[Any, Expect]] = [
        ({"weight_decay": 0.0}, "ok"),
        ({"weight_decay": 0.3, "lr_scale": 2.0}, "ok"),
        ({"lr_scale": 0.0}, "error"),
        ({"weight_decay": -1.0}, "error"),
        ({"wieght_decay": 0.1}, "error"),
        (0.1, "error"),
    ]
    pairs = st.tuples(st.sampled_from(keys), st.sampled_from(values))
    return st.one_of(
        st.just((None, "ok")),
        st.just((None, "ok")),
        pairs.map(lambda kv: ({kv[0][0]: kv[1][0]}, combine(kv[0][1], kv[1][1]))),
    )


def optional(strategy: st.SearchStrategy[tuple[Any, Kind]]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just((None, "none")), st.just((None, "none")), strategy)


# a third of the per-depth multipliers have powers that overflow a float or underflow to 0
# ("huge": they may raise); the rest are None or numbers of every kind
_multiplier = optional(numbers(0.5, 1.0))
multipliers = st.one_of(
    _multiplier,
    _multiplier.map(lambda m: m),  # a distinct copy: one_of merges a strategy given twice
    st.sampled_from([(1e300, "huge"), (1e-300, "huge")]),
)


@FUZZ
@given(
    model=models,
    weight_decay=numbers(1e-4, 1.0),
    lr=optional(numbers(1e-5, 1.0)),
    no_decay=mostly(
        st.sampled_from(
            [("bias", "norm"), ("bias", "norm", "gain", "embedding", "positional"), ()]
        ),
        st.sampled_from([("nrom",), "bias"]),
    ),
    layer_decay=multipliers,
    layer_wd_decay=multipliers,
    data=st.data(),
)
def test_param_groups_hold_every_trainable_parameter_once_with_finite_options(
    model: nn.Module,
    weight_decay: tuple[Any, Kind],
    lr: tuple[Any, Any],
    no_decay: Any,
    layer_decay: tuple[Any, Any],
    layer_wd_decay: tuple[Any, Any],
    data: st.DataObject,
) -> None:
    overrides, expect_overrides = data.draw(overrides_for(model), label="overrides")

    def expect_optional(value: tuple[Any, Any], **kw: bool) -> Expect:
        return "ok" if value[1] == "none" else expect_number(value[1], **kw)

    expect = combine(
        expect_number(weight_decay[1]),
        expect_optional(lr, zero=False),
        "ok" if not isinstance(no_decay, str) and set(no_decay) <= set(CATEGORIES) else "error",
        expect_optional(layer_decay, zero=False),
        expect_optional(layer_wd_decay, zero=False),
        expect_overrides,
    )
    if layer_decay[1] == "huge" or layer_wd_decay[1] == "huge" or lr[1] == "huge":
        expect = combine(expect, "either")  # a multiplier that overflows at some depth
    if lr[1] == "none" and (layer_decay[1] != "none" or overrides):
        expect = combine(expect, "either")  # lr is needed only when some scale is not 1
    call = lambda: param_groups(  # noqa: E731
        model,
        weight_decay[0],
        lr=lr[0],
        no_decay=no_decay,
        overrides=overrides,
        layer_decay=layer_decay[0],
        layer_wd_decay=layer_wd_decay[0],
    )
    groups = outcome(call, expect=expect, names=("param_groups",))
    if groups is RAISED:
        return
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(trainable), "every trainable parameter exactly once"
    for g in groups:
        assert math.isfinite(g["weight_decay"])
        assert g["weight_decay"] >= 0
        assert len(g["params"]) == len(g["param_names"])
        if lr[0] is not None:
            assert math.isfinite(g["lr"])
            assert g["lr"] > 0
            assert math.isclose(g["lr"], float(lr[0]) * g["lr_scale"], rel_tol=1e-12)
    plain = overrides is None and layer_decay[0] is None and layer_wd_decay[0] is None
    if plain:  # without overrides and layer decay: λ exactly where the category decays
        decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
        for param, category in categories(model).values():
            if param.requires_grad:
                expected = 0.0 if category in no_decay else float(weight_decay[0])
                assert decay_of[id(param)] == expected, (category, no_decay)


# --- sparsity -------------------------------------------------------------------------------------

SPARSITY_DTYPES = ALL_DTYPES  # bool and integers count as numbers (True is 1)


def _sprinkle_zeros(t: torch.Tensor, every: int) -> torch.Tensor:
    flat = t.detach().reshape(-1)
    if every and flat.numel() and t.is_contiguous():
        flat[::every] = 0
    return t


sparse_tensors = st.builds(
    _sprinkle_zeros, tensors(dtypes=SPARSITY_DTYPES, scales=(1e-6, 1.0)), st.integers(0, 3)
)


@FUZZ
@given(
    target=st.one_of(
        sparse_tensors.map(lambda t: (t, [("0", t)], "ok")),
        st.lists(sparse_tensors, max_size=3).map(
            lambda ts: (ts, [(str(i), t) for i, t in enumerate(ts)], "ok")
        ),
        st.lists(st.tuples(st.sampled_from(["a", "b.w"]), sparse_tensors), max_size=3).map(
            lambda ps: (ps, ps, "ok")
        ),
        models.map(lambda m: (m, list(m.named_parameters()), "ok")),
        st.sampled_from([(5, None, "error"), ([1.0], None, "error"), ([("a",)], None, "error")]),
    ),
    atol=numbers(1e-8, 1e-2),
)
def test_sparsity_counts_exact_and_near_zeros_like_a_slow_count(
    target: tuple[Any, list[tuple[str, torch.Tensor]] | None, Expect], atol: tuple[Any, Kind]
) -> None:
    value, named, expect_target = target
    expect = combine(expect_target, expect_number(atol[1]))
    report = outcome(lambda: sparsity(value, atol=atol[0]), expect=expect, names=("sparsity",))
    if report is RAISED:
        return
    assert named is not None
    tol = float(atol[0])
    assert [r.name for r in report.rows] == [n for n, _ in named]
    for row, (_, t) in zip(report.rows, named, strict=True):
        values = t.detach().to(torch.complex128)
        assert row.numel == t.numel()
        assert row.zeros == int((values == 0).sum())
        # exactly: a float16 value of 6e-8 is not within atol=4e-8 (which float16 rounds to 6e-8)
        assert row.near_zeros == int((values.abs() <= tol).sum())
        assert 0.0 <= row.zero_fraction <= row.near_zero_fraction <= 1.0


# --- max_norm_ ------------------------------------------------------------------------------------

MAX_NORM_DTYPES = ALL_DTYPES  # integer, bool and complex tensors are refused (TypeError)
# p = 20 makes |w|^p overflow float32 for |w| ~ 100 and underflow it for |w| ~ 0.01
NORM_TYPES: list[tuple[Any, Expect]] = [
    (2.0, "ok"),
    (2, "ok"),
    (1.0, "ok"),
    (3.0, "ok"),
    (1.5, "ok"),
    (8.0, "ok"),
    (20.0, "ok"),
    (math.inf, "ok"),
    (0.5, "error"),
    (0.0, "error"),
    (-1.0, "error"),
    (math.nan, "error"),
    ("2", "error"),
    (None, "error"),
]


def _poison(t: torch.Tensor, where: int, value: float) -> torch.Tensor:
    flat = t.detach().reshape(-1)
    if value and flat.numel() and t.is_contiguous() and t.is_floating_point():
        flat[where % flat.numel()] = value
    return t


max_norm_tensors = st.builds(
    _poison,
    tensors(dtypes=MAX_NORM_DTYPES, scales=(0.1, 1.0, 100.0)),
    st.integers(0, 100),
    st.sampled_from([0.0, 0.0, 0.0, math.nan, math.inf]),
)


def units(w: torch.Tensor, dim: int | None) -> torch.Tensor:
    """(units, values of a unit): the slices along ``dim``, or all of ``w`` as one unit."""
    if dim is None:
        return w.reshape(1, -1) if w.numel() else w.reshape(1, 0)
    moved = w.movedim(dim, 0)
    return moved.reshape(moved.shape[0], math.prod(moved.shape[1:]))


def unit_norms(w: torch.Tensor, dim: int | None, p: float) -> torch.Tensor:
    """The p-norm of each slice along ``dim`` (0-d, of all of ``w``, for None), float64."""
    values = units(w.detach().double(), dim)
    if values.shape[1] == 0:  # an empty unit has norm 0 (the inf norm has no identity in torch)
        norms = values.new_zeros(values.shape[0])
    else:
        norms = torch.linalg.vector_norm(values, p, dim=1)
    return norms.reshape(()) if dim is None else norms


def expect_dim(dim: Any, ndim: int) -> Expect:
    if dim is None:
        return "ok"
    if isinstance(dim, bool) or not isinstance(dim, int):
        return "error"
    return "ok" if -ndim <= dim < max(ndim, 1) else "error"


@FUZZ
@given(
    tensor=max_norm_tensors,
    max_value=numbers(1e-2, 10),
    dim=st.one_of(st.none(), st.integers(-5, 4), st.sampled_from([True, "0", 1.0])),
    norm_type=st.sampled_from(NORM_TYPES),
)
def test_max_norm_projects_every_unit_into_the_ball_and_leaves_the_inside_alone(
    tensor: torch.Tensor, max_value: tuple[Any, Kind], dim: Any, norm_type: tuple[Any, Expect]
) -> None:
    expect = combine(
        expect_number(max_value[1], zero=False),
        expect_dim(dim, tensor.dim()),
        norm_type[1],
        "ok" if is_float(tensor) else "error",
    )
    before = tensor.clone()
    call = lambda: max_norm_(tensor, max_value[0], dim=dim, norm_type=norm_type[0])  # noqa: E731
    norms = outcome(call, expect=expect, names=("max_norm_",))
    if norms is RAISED:
        assert same_bits(tensor, before), "max_norm_ raised but changed the tensor"
        return
    unit_dim = None if dim is None and tensor.dim() < 2 else (0 if dim is None else dim)
    if tensor.dim() == 0:
        unit_dim = None
    p, c = float(norm_type[0]), float(max_value[0])
    expected = unit_norms(before, unit_dim, p)
    assert norms.shape == expected.shape
    torch.testing.assert_close(norms.double(), expected, rtol=1e-5, atol=0, equal_nan=True)
    after = unit_norms(tensor, unit_dim, p).reshape(-1)
    tol = 8 * finfo(tensor.dtype).eps
    old_units, new_units = units(before, unit_dim), units(tensor.detach(), unit_dim)
    for measured, new_norm, old, new in zip(
        norms.double().reshape(-1), after, old_units, new_units, strict=True
    ):
        if not torch.isfinite(measured) or measured <= c:  # inside as measured: untouched
            assert same_bits(old, new), "a unit inside the ball (or non-finite) was changed"
        else:  # rescaled to c, never above it
            assert c * (1 - tol) <= float(new_norm) <= c, (float(new_norm), c)
    projected = tensor.clone()
    max_norm_(tensor, max_value[0], dim=dim, norm_type=norm_type[0])
    assert same_bits(tensor, projected), "a second projection changed the tensor"


max_norm_models = st.builds(
    lambda kind, width, groups, seed: _max_norm_model(kind, width, groups, seed),
    st.sampled_from(["linear", "deconv", "embedding", "mlp", "norm_only"]),
    st.integers(1, 4),
    st.integers(1, 2),
    st.integers(0, 3),
)


def _max_norm_model(kind: str, width: int, groups: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "linear":
        return nn.Linear(3, width)
    if kind == "deconv":
        return nn.ConvTranspose1d(2 * groups, width * groups, 3, groups=groups)
    if kind == "embedding":
        return nn.Embedding(5, width)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 2))
    return nn.LayerNorm(width)


@FUZZ
@given(
    model=max_norm_models,
    max_value=numbers(1e-2, 10),
    norm_type=st.sampled_from(NORM_TYPES),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
)
def test_max_norm_on_a_model_is_a_projection(
    model: nn.Module, max_value: tuple[Any, Kind], norm_type: tuple[Any, Expect], scale: float
) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    expect = combine(expect_number(max_value[1], zero=False), norm_type[1])
    if isinstance(model, nn.LayerNorm):
        expect = "error"  # no layer to constrain
    call = lambda: max_norm_(model, max_value[0], norm_type=norm_type[0])  # noqa: E731
    first = outcome(call, expect=expect, names=("max_norm_",))
    if first is RAISED:
        return
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    second = max_norm_(model, max_value[0], norm_type=norm_type[0])
    c = float(max_value[0])
    for name, norms in second.items():  # a projection is idempotent: now all inside the ball
        assert bool((norms.double() <= c).all()), (name, norms, c)
        assert first[name].shape == norms.shape
    for name, p in model.named_parameters():  # and the second one changed nothing
        assert same_bits(p.detach(), weights[name]), name
    if isinstance(model, nn.Linear):
        assert set(first) == {"weight"}


# --- dropout --------------------------------------------------------------------------------------

dropout_inputs = tensors(dtypes=ALL_DTYPES, scales=(1.0, 1e3))
trainings = st.sampled_from([True, True, False, False, 1, "yes", None])


def expect_dropout(x: torch.Tensor, p: tuple[Any, Kind], training: Any, gen: Any) -> Expect:
    return combine(
        "ok" if x.is_floating_point() else "error",
        "ok" if p[1] in ("positive", "zero") else "error",
        "ok" if isinstance(training, bool) else "error",
        "ok" if gen[1] else "error",
    )


def assert_samples_dropped_or_scaled(x: torch.Tensor, out: torch.Tensor, scale: float) -> None:
    """Each sample (dim 0) all 0, or x·scale (inf only where that overflows the dtype)."""
    xs, outs = x.detach().double(), out.detach().double()
    kept_value = xs * scale
    representable = kept_value.abs() <= finfo(x.dtype).max
    assert not bool(outs.isnan().any()), "NaN from finite input"
    tol = 4 * finfo(x.dtype).eps  # 1/keep and the product are each rounded to x's dtype
    for sample, kept, ok in zip(outs, kept_value, representable, strict=True):
        dropped = bool((sample == 0).all())
        close = torch.isclose(sample, kept, rtol=tol, atol=0) | ~ok & sample.isinf()
        assert dropped or bool(close.all()), (sample, kept)


@pytest.mark.parametrize("as_module", [False, True])
@FUZZ
@given(
    x=dropout_inputs,
    p=probabilities(),
    training=trainings,
    scale_by_keep=st.booleans(),
    gen=generators(),
)
def test_drop_path_drops_whole_samples_and_scales_the_rest_by_one_over_keep(
    x: torch.Tensor,
    p: tuple[Any, Kind],
    training: Any,
    scale_by_keep: bool,
    gen: tuple[Any, bool],
    as_module: bool,
) -> None:
    expect = expect_dropout(x, p, training, gen if not as_module else (None, True))
    if expect == "ok" and training and float(p[0]) > 0 and x.dim() == 0:
        expect = "error"  # no batch dimension
    if as_module:  # DropPath: p checked at construction, forward with the module's flag
        layer = outcome(
            lambda: DropPath(p[0], scale_by_keep=scale_by_keep),
            expect=combine("ok" if p[1] in ("positive", "zero") else "error"),
            names=("DropPath",),
        )
        if layer is RAISED or not isinstance(training, bool) or not x.is_floating_point():
            return
        assert f"p={float(p[0])}" in repr(layer)
        layer.train(training)
        torch.manual_seed(0)
        out = outcome(lambda: layer(x), expect=expect, names=("drop_path",))
    else:
        call = lambda: drop_path(  # noqa: E731
            x, p[0], training, scale_by_keep=scale_by_keep, generator=gen[0]
        )
        out = outcome(call, expect=expect, names=("drop_path",))
    if out is RAISED:
        return
    assert out.shape == x.shape
    assert out.dtype == x.dtype
    assert out.device == x.device
    keep = 1.0 - float(p[0])
    if not training or float(p[0]) == 0.0:
        assert out is x
    elif keep == 0.0:
        assert bool((out == 0).all())
    else:
        assert_samples_dropped_or_scaled(x, out, 1 / keep if scale_by_keep else 1.0)


@FUZZ
@given(
    num_blocks=st.one_of(st.integers(-2, 300), st.sampled_from([True, 2.0, "3", None])),
    max_rate=probabilities(),
)
def test_drop_path_rates_rise_linearly_to_the_max_rate(
    num_blocks: Any, max_rate: tuple[Any, Kind]
) -> None:
    valid_blocks = isinstance(num_blocks, int) and not isinstance(num_blocks, bool)
    expect = combine(
        "ok" if valid_blocks and num_blocks >= 1 else "error",
        "ok" if max_rate[1] in ("positive", "zero") else "error",
    )
    call = lambda: drop_path_rates(num_blocks, max_rate[0])  # noqa: E731
    rates = outcome(call, expect=expect, names=("drop_path_rates",))
    if rates is RAISED:
        return
    top = float(max_rate[0])
    assert len(rates) == num_blocks
    assert all(0.0 <= r <= 1.0 for r in rates)
    assert rates == sorted(rates)
    assert math.isclose(rates[-1], top, rel_tol=1e-15, abs_tol=0)
    for block, rate in enumerate(rates, start=1):
        assert math.isclose(rate, top * block / num_blocks, rel_tol=1e-15, abs_tol=1e-300)


@pytest.mark.parametrize("as_module", [False, True])
@FUZZ
@given(
    x=dropout_inputs,
    p=probabilities(),
    training=trainings,
    gen=generators(),
)
def test_classic_dropout_keeps_units_unscaled_and_scales_by_keep_at_evaluation(
    x: torch.Tensor, p: tuple[Any, Kind], training: Any, gen: tuple[Any, bool], as_module: bool
) -> None:
    expect = expect_dropout(x, p, training, gen if not as_module else (None, True))
    if as_module:
        layer = outcome(
            lambda: ClassicDropout(p[0]),
            expect="ok" if p[1] in ("positive", "zero") else "error",
            names=("ClassicDropout",),
        )
        if layer is RAISED or not isinstance(training, bool) or not x.is_floating_point():
            return
        assert f"p={float(p[0])}" in repr(layer)
        layer.train(training)
        torch.manual_seed(0)
        out = outcome(lambda: layer(x), expect=expect, names=("classic_dropout",))
    else:
        call = lambda: classic_dropout(x, p[0], training, generator=gen[0])  # noqa: E731
        out = outcome(call, expect=expect, names=("classic_dropout",))
    if out is RAISED:
        return
    assert out.shape == x.shape
    assert out.dtype == x.dtype
    keep = 1.0 - float(p[0])
    xs, outs = x.detach().double(), out.detach().double()
    assert not bool(outs.isnan().any()), "NaN from finite input"
    if float(p[0]) == 0.0:
        assert out is x
    elif not training:
        info = finfo(x.dtype)  # a product below the normal range keeps a subnormal's spacing
        assert torch.allclose(outs, xs * keep, rtol=2 * info.eps, atol=info.tiny * info.eps)
    else:
        assert bool(((outs == 0) | (outs == xs)).all()), "a kept unit was rescaled"
