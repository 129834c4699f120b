"""Property tests: over random shapes, dtypes and options, initializers either fill the tensor in
place with finite values or raise ValueError/TypeError, never anything else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from stabletrain import init

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.bool]
reals = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-3, 3),
    st.sampled_from(["1.0", None, True]),
)
modes = st.sampled_from(["fan_in", "fan_out", "fan_avg", "fan_mid", "", None])
distributions = st.sampled_from(["normal", "truncated_normal", "uniform", "gamma", None])
activations = st.sampled_from(
    ["relu", "leaky_relu", "tanh", "gelu", "selu", "swish", "relu7", 3, nn.GELU(), nn.Linear(2, 2)]
)
fans = st.one_of(
    st.none(), st.tuples(st.integers(-1, 50), st.integers(-1, 50)), st.sampled_from([(1,), "fans"])
)


def calls() -> st.SearchStrategy[tuple[str, Callable[[torch.Tensor], Any]]]:
    """(name, call) pairs with drawn options, good and bad."""

    def named(name: str, strategy: st.SearchStrategy[Callable[..., Any]]) -> Any:
        return strategy.map(lambda f: (name, f))

    return st.one_of(
        named("constant_", reals.map(lambda v: lambda t: init.constant_(t, v))),
        named(
            "normal_", st.tuples(reals, reals).map(lambda a: lambda t: init.normal_(t, a[0], a[1]))
        ),
        named(
            "uniform_",
            st.tuples(reals, reals).map(lambda a: lambda t: init.uniform_(t, a[0], a[1])),
        ),
        named("small_random_", reals.map(lambda s: lambda t: init.small_random_(t, s))),
        named("standard_", fans.map(lambda f: lambda t: init.standard_(t, fans=f))),
        named(
            "variance_scaling_",
            st.tuples(reals, modes, distributions, fans).map(
                lambda a: lambda t: init.variance_scaling_(t, a[0], a[1], a[2], fans=a[3])
            ),
        ),
        named(
            "xavier_uniform_",
            st.tuples(st.one_of(reals, activations), fans).map(
                lambda a: lambda t: init.xavier_uniform_(t, a[0], fans=a[1])
            ),
        ),
        named(
            "he_normal_",
            st.tuples(reals, modes, activations, fans).map(
                lambda a: lambda t: init.he_normal_(t, a[0], a[1], a[2], fans=a[3])
            ),
        ),
        named("lecun_uniform_", fans.map(lambda f: lambda t: init.lecun_uniform_(t, fans=f))),
        named(
            "trunc_normal_",
            st.tuples(reals, reals, reals, reals, st.booleans()).map(
                lambda a: lambda t: init.trunc_normal_(t, a[0], a[1], a[2], a[3], correct_std=a[4])
            ),
        ),
        named(
            "orthogonal_",
            st.tuples(reals, st.integers(-1, 4)).map(
                lambda a: lambda t: init.orthogonal_(t, a[0], blocks=a[1])
            ),
        ),
        named("identity_", reals.map(lambda v: lambda t: init.identity_(t, v))),
        named(
            "dirac_",
            st.tuples(st.integers(-1, 4), reals).map(
                lambda a: lambda t: init.dirac_(t, a[0], a[1])
            ),
        ),
    )


@settings(max_examples=1000, deadline=None, derandomize=True, database=None)
@given(
    shape=st.lists(st.integers(0, 6), min_size=0, max_size=5),
    dtype=st.sampled_from(DTYPES),
    call=calls(),
)
def test_initializers_fill_in_place_or_raise_value_or_type_error(
    shape: list[int], dtype: torch.dtype, call: tuple[str, Callable[[torch.Tensor], Any]]
) -> None:
    name, fn = call
    tensor = torch.zeros(shape, dtype=dtype)
    try:
        out = fn(tensor)
    except (ValueError, TypeError) as err:
        message = str(err)
    else:
        message = ""
    if message:
        assert name in message or "gain" in message, f"error does not name {name}: {message}"
        return
    assert out is tensor
    assert out.dtype == dtype
    assert out.shape == torch.Size(shape)
    assert bool(out.isfinite().all()), f"{name} wrote non-finite values"
