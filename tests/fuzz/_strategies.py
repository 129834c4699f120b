"""What the fuzz suite draws, and the contract every public function is held to.

Inputs: tensors of every dtype and of small shapes (0-d, 1-d, zero-size dims, up to 4-d),
numbers good and bad (tagged with their kind, so a test knows which are valid), option strings
with typos, activations that misbehave, generators good and bad.

The contract (:func:`outcome`): a call with valid input returns; a call with invalid input
raises ``ValueError`` or ``TypeError`` whose message names the function; nothing else ever
escapes (no ``RuntimeError``, ``IndexError``, ``OverflowError``, ...). What a valid call returns
is checked by each test against a float64 reference.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from torch import nn

from stabletrain.init import ACTIVATIONS

FUZZ = settings(
    max_examples=200,  # per function: a test of several functions is parametrized by function
    derandomize=True,  # the same examples on every run: CI never flakes
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

ALL_DTYPES = (
    torch.bool,
    torch.int8,
    torch.int64,
    torch.complex64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
)
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

T = TypeVar("T")
Expect = Literal["ok", "error", "either"]
Kind = Literal["positive", "zero", "negative", "nonfinite", "huge", "notreal"]
RAISED = object()  # what outcome() returns when the call raised a documented error


# --- tensors ------------------------------------------------------------------------------


def _shape_table(count: int = 3000, seed: int = 0) -> list[tuple[int, ...]]:
    """Shapes of 0 to 4 dims, as many of each rank; sides 0 to 5, a side 0 one time in 16."""
    rng = np.random.default_rng(seed)
    sides = np.array([0, 1, 2, 3, 4, 5])
    weights = np.array([1, 3, 3, 3, 3, 3]) / 16
    table = [tuple(int(x) for x in rng.choice(sides, size=k % 5, p=weights)) for k in range(count)]
    return [(), (0,), (1,), (0, 0), (5, 5, 5, 5), *table]


_SHAPES = _shape_table()


def shapes(min_dims: int = 0, max_dims: int = 4) -> st.SearchStrategy[tuple[int, ...]]:
    """Small shapes, zero-size dims included: (), (0,), (3,), (2, 0, 4), ... (sides <= 5).

    Drawn from a seeded table, each rank equally often: one draw instead of one per dim keeps
    generation cheap."""
    return st.sampled_from([s for s in _SHAPES if min_dims <= len(s) <= max_dims])


def mostly(valid: st.SearchStrategy[T], invalid: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``valid`` nine times out of ten, ``invalid`` otherwise: with six inputs per call, half
    of the calls are valid and have their results checked.

    (``st.one_of`` merges a strategy listed twice, so the copies are distinct mappings.)"""
    copies = [valid.map(lambda x, _copy=k: x) for k in range(8)]
    return st.one_of(valid, *copies, invalid)


def make_tensor(
    shape: Sequence[int],
    dtype: torch.dtype,
    seed: int,
    *,
    scale: float = 1.0,
    contiguous: bool = True,
) -> torch.Tensor:
    """``scale``·N(0, 1) values (rounded for integers, > 0 for bool), seeded; with
    ``contiguous=False`` the same values behind transposed strides."""
    values = torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed)) * scale
    values = values.double()
    if dtype == torch.bool:
        tensor = values > 0
    elif dtype.is_floating_point or dtype.is_complex:
        tensor = values.to(dtype)
    else:
        info = torch.iinfo(dtype)
        tensor = values.round().clamp(info.min, info.max).to(dtype)
    if not contiguous and tensor.dim() >= 2:
        tensor = tensor.mT.contiguous().mT
    return tensor


def tensors(
    shape: st.SearchStrategy[Any] | None = None,
    dtypes: Sequence[torch.dtype] = ALL_DTYPES,
    scales: Sequence[float] = (1.0,),
) -> st.SearchStrategy[torch.Tensor]:
    """A tensor of a drawn shape, dtype (floating nine times out of ten), scale and layout."""
    floats = [d for d in dtypes if d in FLOAT_DTYPES]
    others = [d for d in dtypes if d not in FLOAT_DTYPES]
    return st.builds(
        lambda shape, dtype, seed, scale, contiguous: make_tensor(
            shape, dtype, seed, scale=scale, contiguous=contiguous
        ),
        shape if shape is not None else shapes(),
        mostly(st.sampled_from(floats), st.sampled_from(others))
        if floats and others
        else st.sampled_from(dtypes),
        st.integers(0, 2**16),
        st.sampled_from(scales),
        st.booleans(),
    )


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors hold the same bytes: -0.0 is not 0.0; a NaN is any NaN (its payload
    and sign are not values)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    a, b = a.detach(), b.detach()
    nan_a, nan_b = a.isnan(), b.isnan()
    if not torch.equal(nan_a, nan_b):
        return False
    a, b = a.masked_fill(nan_a, 0), b.masked_fill(nan_b, 0)
    return torch.equal(
        a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8)
    )


def finfo(dtype: torch.dtype) -> torch.finfo:
    return torch.finfo(dtype if dtype.is_floating_point else torch.float32)


# --- numbers ------------------------------------------------------------------------------


_NOT_REAL: tuple[Any, ...] = (
    None,
    "1.0",
    True,
    False,
    1 + 0j,
    [1.0],
    torch.tensor([1.0, 2.0]),
    torch.tensor(1),
)


def _number_table(low: float, high: float) -> list[tuple[Any, Kind]]:
    """Every kind of number, as (value, kind); positive values dominate."""
    ratio = high / low
    # 33 log-spaced values with irregular mantissas (2**0.37 steps are never round)
    spaced = [low * ratio ** (i / 32) * (1 + 0.37 * (i % 3) / 8) for i in range(33)]
    positive = [v for v in spaced if low <= v <= high] + [low, high]
    positive += [1.0] if low <= 1.0 <= high else []
    kinds: list[tuple[Any, Kind]] = [(v, "positive") for v in positive]
    kinds += [(i, "positive") for i in (1, 2, 3, 10) if low <= i <= high]
    middle = math.sqrt(low * high)
    kinds += [(np.float32(middle), "positive"), (np.float64(low), "positive")]
    kinds += [(torch.tensor(middle, dtype=torch.float64), "positive")]
    kinds += [(0, "zero"), (0.0, "zero"), (-0.0, "zero")]
    kinds += [(-v, "negative") for v in positive[::4]] + [(-1, "negative"), (-3, "negative")]
    kinds += [(v, "nonfinite") for v in (math.nan, math.inf, -math.inf)]
    kinds += [(v, "huge") for v in (1e30, 3.5e38, 1e300, sys.float_info.max)]
    kinds += [(v, "notreal") for v in _NOT_REAL]
    return kinds


def numbers(low: float = 1e-3, high: float = 1e3) -> st.SearchStrategy[tuple[Any, Kind]]:
    """``(value, kind)``: positive values in [low, high] (as float, int, numpy and 0-d tensor),
    zero, negative, non-finite, huge (1e30 to the largest float) and not-a-real-number values.

    Positive nine times out of ten; drawn from a table (one cheap draw each) or, half of the
    time a positive value is drawn, any float in [low, high]."""
    table = _number_table(low, high)
    positive = st.one_of(
        st.sampled_from([n for n in table if n[1] == "positive"]),
        st.floats(low, high).map(lambda v: (v, "positive")),
    )
    return mostly(positive, st.sampled_from([n for n in table if n[1] != "positive"]))


def probabilities() -> st.SearchStrategy[tuple[Any, Kind]]:
    """``(value, kind)`` for a probability: [0, 1] is ``"positive"``/``"zero"``; above 1 is
    ``"huge"`` (invalid as a probability), with the other kinds of :func:`numbers`."""
    inside = [0.5, 0.1, 0.25, 0.9, 0.99, 1.0, 1, 1 - 1e-7, 0.99999, 1e-300, 1e-3, 0.37, 0.73]
    table: list[tuple[Any, Kind]] = [(p, "positive") for p in inside]
    table += [(0.0, "zero"), (0, "zero"), (np.float32(0.5), "positive")]
    table += [(p, "huge") for p in (1.0000001, 1.5, 2, 1e3)]
    table += [n for n in _number_table(1e-3, 1.0) if n[1] in ("negative", "nonfinite", "notreal")]
    inside_ = st.one_of(
        st.sampled_from([n for n in table if n[1] in ("positive", "zero")]),
        st.floats(0.0, 1.0).map(lambda p: (p, "zero" if p == 0 else "positive")),
    )
    return mostly(inside_, st.sampled_from([n for n in table if n[1] not in ("positive", "zero")]))


# --- option strings -----------------------------------------------------------------------

_MUTATIONS: tuple[Callable[[str], str], ...] = (
    str.upper,
    lambda s: s[:-1],
    lambda s: s + " ",
    lambda s: " " + s,
    lambda s: s.replace("_", "-") if "_" in s else s + "_",
    lambda s: s[1:2] + s[0:1] + s[2:] if len(s) > 1 else s + s,
    lambda s: s + s[-1:],
)


def options(valid: Sequence[str]) -> st.SearchStrategy[Any]:
    """A valid option, a typo of one (case, a missing, doubled or swapped letter, spaces,
    ``-`` for ``_``), or a non-string. The test decides validity by membership."""
    typos = [mutate(v) for v in valid for mutate in _MUTATIONS]
    return mostly(
        st.sampled_from(list(valid)), st.sampled_from([*typos, "", None, 0, b"x", ("a",)])
    )


# --- activations --------------------------------------------------------------------------

GAIN_ALIASES = ("identity", "none", "swish", "gelu_new", "gelu_pytorch_tanh", "quickgelu")


def known_name(value: Any) -> bool:
    """Whether ``gain`` knows ``value`` as a name (case-insensitive, aliases included)."""
    return isinstance(value, str) and value.lower() in (*ACTIVATIONS, *GAIN_ALIASES)


def _raises(error: type[Exception]) -> Callable[[torch.Tensor], torch.Tensor]:
    def activation(z: torch.Tensor) -> torch.Tensor:
        raise error("this activation always fails")

    return activation


class Activation:
    """A drawn activation and what gain() should do with it, per kind."""

    def __init__(self, value: Any, forward: Expect, backward: Expect, label: str) -> None:
        self.value, self.forward, self.backward, self.label = value, forward, backward, label

    def expect(self, kind: str) -> Expect:
        return self.backward if kind == "backward" else self.forward

    def __repr__(self) -> str:
        return f"Activation({self.label})"


def _activation_cases() -> list[Activation]:
    ok: Expect = "ok"
    bad: Expect = "error"
    cases = [
        # modules torch knows, and modules gain() evaluates by quadrature
        Activation(nn.ReLU(), ok, ok, "nn.ReLU"),
        Activation(nn.GELU(approximate="tanh"), ok, ok, "nn.GELU(tanh)"),
        Activation(nn.LeakyReLU(0.2), ok, ok, "nn.LeakyReLU(0.2)"),
        Activation(nn.PReLU(), ok, ok, "nn.PReLU"),
        Activation(nn.ELU(0.5), ok, ok, "nn.ELU(0.5)"),
        Activation(nn.Softplus(beta=2.0), ok, ok, "nn.Softplus(2)"),
        Activation(nn.Hardtanh(-2.0, 1.0), ok, ok, "nn.Hardtanh(-2, 1)"),
        Activation(nn.Sequential(nn.Tanh()), ok, ok, "Sequential(Tanh)"),
        Activation(nn.Linear(2, 2), bad, bad, "nn.Linear"),
        Activation(nn.Softmax(dim=0), bad, bad, "nn.Softmax"),  # not elementwise
        Activation(nn.LogSoftmax(dim=-1), bad, bad, "nn.LogSoftmax"),
        Activation(torch.softmax, bad, bad, "torch.softmax"),
        # callables
        Activation(torch.sin, ok, ok, "torch.sin"),
        Activation(lambda z: 2 * z, ok, ok, "2z"),
        Activation(lambda z: z.detach(), ok, bad, "detached"),
        Activation(torch.sign, ok, bad, "sign"),
        Activation(lambda z: z * 0, bad, bad, "zero"),
        Activation(lambda z: z * math.nan, bad, bad, "NaN"),
        Activation(lambda z: z.exp().exp(), bad, bad, "exp(exp(z))"),
        Activation(lambda z: z[:3], bad, bad, "wrong shape"),
        Activation(lambda z: 1.0, bad, bad, "a float"),
        Activation(lambda z: z * 1j, bad, bad, "complex"),
        Activation(lambda z: z.long(), bad, bad, "int64"),
        Activation(_raises(ValueError), bad, bad, "raises ValueError"),
        Activation(_raises(ZeroDivisionError), bad, bad, "raises ZeroDivisionError"),
        Activation(_raises(RuntimeError), bad, bad, "raises RuntimeError"),
        Activation(_raises(KeyError), bad, bad, "raises KeyError"),
        # not activations
        Activation(3, bad, bad, "3"),
        Activation(None, bad, bad, "None"),
        Activation(b"relu", bad, bad, "b'relu'"),
        Activation(object(), bad, bad, "object()"),
    ]
    return cases


def activations() -> st.SearchStrategy[Activation]:
    """Known names (any case, aliases), their typos, modules, callables that misbehave, and
    objects that are not activations."""
    names = [*ACTIVATIONS, *GAIN_ALIASES]
    spelled = [*names, *(mutate(n) for n in names for mutate in _MUTATIONS), "", "relu7"]
    named = []
    for value in spelled:
        expect: Expect = "ok" if known_name(value) else "error"
        named.append(Activation(value, expect, expect, repr(value)))
    cases = [*named, *_activation_cases()]
    valid = [a for a in cases if a.forward == "ok"]
    invalid = [a for a in cases if a.forward != "ok"]
    return mostly(st.sampled_from(valid), st.sampled_from(invalid))


# --- generators ---------------------------------------------------------------------------


def generators() -> st.SearchStrategy[tuple[Any, bool]]:
    """``(generator, valid)``: None, seeded CPU generators, and things that are not one."""
    return mostly(st.sampled_from([None, *range(8)]), st.sampled_from(["int", "cpu", "numpy"])).map(
        _generator
    )


def _generator(which: Any) -> tuple[Any, bool]:
    if which is None:
        return None, True
    if isinstance(which, int):
        return torch.Generator().manual_seed(which), True
    return {"int": 3, "cpu": "cpu", "numpy": np.random.default_rng(0)}[which], False


# --- the contract -------------------------------------------------------------------------


def outcome(call: Callable[[], Any], *, expect: Expect, names: Sequence[str]) -> Any:
    """Run ``call``; return its result, or :data:`RAISED` if it raised a documented error.

    ``expect="ok"``: it must not raise; ``"error"``: it must raise ValueError or TypeError;
    ``"either"``: both are fine. An error's message must name one of ``names`` (the function,
    or the helper that checked the value, e.g. ``gain``). Any other exception propagates and
    fails the test.
    """
    error: ValueError | TypeError | None = None
    try:
        result = call()
    except (ValueError, TypeError) as err:
        error = err
    if error is not None:
        event(f"{names[0]}: raised {type(error).__name__}")  # --hypothesis-show-statistics
        message = str(error)
        assert expect != "ok", f"valid input rejected: {type(error).__name__}: {message}"
        assert any(name in message for name in names), f"error does not name {names}: {message}"
        return RAISED
    event(f"{names[0]}: returned")
    assert expect != "error", f"invalid input accepted, returned {result!r:.200}"
    return result


def combine(*expects: Expect) -> Expect:
    """The expectation of a call whose inputs have these: one error makes it an error."""
    if "error" in expects:
        return "error"
    return "either" if "either" in expects else "ok"


def is_float(tensor: torch.Tensor) -> bool:
    return tensor.dtype in FLOAT_DTYPES
