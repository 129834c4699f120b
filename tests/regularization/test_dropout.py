"""Stochastic depth and classic dropout: unbiased in expectation, whole-sample masks, claim R7.

Expectations are checked against seeded draws with a tolerance of Z binomial standard errors:
a mask drawn with the wrong keep probability or the wrong scaling lands far outside it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from torch import nn

from stabletrain.regularization.dropout import (
    ClassicDropout,
    DropPath,
    classic_dropout,
    drop_path,
    drop_path_rates,
)

Z = 5.0  # tolerance in standard errors (a 5-sigma miss has probability ~6e-7 per element)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _positive(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(shape, generator=_gen(seed), dtype=torch.float64) + 0.5


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("scale_by_keep", [True, False])
def test_drop_path_mean_over_the_batch_is_the_input_mean_within_the_standard_error(
    p: float, scale_by_keep: bool
) -> None:
    """mean_b(m_b·x_b/keep) − mean_b(x_b) has std sqrt(Σx_b²·p/keep)/B per element."""
    x = _positive(50_000, 3, 4)
    out = drop_path(x, p, scale_by_keep=scale_by_keep, generator=_gen())
    keep = 1 - p
    expected = x.mean(0) * (1.0 if scale_by_keep else keep)
    scale = 1 / keep if scale_by_keep else 1.0
    se = scale * (x.pow(2).sum(0) * p * keep).sqrt() / x.shape[0]
    assert ((out.mean(0) - expected).abs() <= Z * se).all()
    assert (Z * se < 0.1 * expected).all()  # the tolerance catches any bias above 10%


def test_drop_path_drops_whole_samples_and_scales_the_kept_ones_by_one_over_keep() -> None:
    x = torch.randn(256, 3, 5, 5, generator=_gen(2))
    out = drop_path(x, 0.25, generator=_gen())
    dropped = (out == 0).flatten(1).all(1)
    kept = torch.isclose(out, x / 0.75, rtol=1e-6, atol=0).flatten(1).all(1)  # float32 rounding
    assert (dropped ^ kept).all()  # every sample entirely dropped or entirely kept
    se = math.sqrt(0.25 * 0.75 / 256)
    assert abs(dropped.double().mean().item() - 0.25) <= Z * se


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(64,), (64, 3), (64, 2, 3, 4, 2)])
def test_drop_path_works_for_any_rank_and_float_dtype(
    dtype: torch.dtype, shape: tuple[int, ...]
) -> None:
    x = torch.randn(shape, generator=_gen(3)).to(dtype)
    out = drop_path(x, 0.5, generator=_gen())
    assert out.shape == x.shape
    assert out.dtype == dtype
    per_sample = out.reshape(64, -1)
    kept = (per_sample == 2 * x.reshape(64, -1)).all(1)
    assert (kept | (per_sample == 0).all(1)).all()
    assert 0 < int(kept.sum()) < 64


def test_drop_path_gradient_is_the_same_per_sample_mask_over_keep() -> None:
    x = torch.randn(32, 4, dtype=torch.float64, generator=_gen(4), requires_grad=True)
    out = drop_path(x, 0.4, generator=_gen())
    out.sum().backward()
    assert x.grad is not None
    mask = (out != 0).to(x.dtype) / 0.6
    torch.testing.assert_close(x.grad, mask, rtol=1e-15, atol=0)


def test_drop_path_is_the_identity_in_eval_and_at_rate_zero() -> None:
    x = torch.randn(4, 3)
    assert drop_path(x, 0.7, training=False) is x
    assert drop_path(x, 0.0) is x
    module = DropPath(0.7).eval()
    assert module(x) is x
    assert DropPath(0.7).train()(x) is not x


def test_drop_path_at_rate_one_returns_zeros_without_dividing_by_zero() -> None:
    x = torch.randn(8, 3, requires_grad=True)
    out = drop_path(x, 1.0)
    assert torch.equal(out, torch.zeros(8, 3))
    out.sum().backward()  # still in the autograd graph
    assert x.grad is not None
    assert torch.equal(x.grad, torch.zeros(8, 3))


def test_drop_path_draws_are_reproducible_with_a_generator() -> None:
    x = torch.randn(100, 2)
    assert torch.equal(drop_path(x, 0.5, generator=_gen(7)), drop_path(x, 0.5, generator=_gen(7)))
    assert not torch.equal(
        drop_path(x, 0.5, generator=_gen(7)), drop_path(x, 0.5, generator=_gen(8))
    )


def test_drop_path_module_repr_names_its_rate() -> None:
    assert repr(DropPath(0.1)) == "DropPath(p=0.1)"
    assert repr(DropPath(0.1, scale_by_keep=False)) == "DropPath(p=0.1, scale_by_keep=False)"
    assert repr(ClassicDropout(0.3)) == "ClassicDropout(p=0.3)"


def test_drop_path_rates_follow_the_papers_linear_rule_of_block_over_depth() -> None:
    rates = drop_path_rates(10, 0.5)
    assert rates == pytest.approx([0.5 * block / 10 for block in range(1, 11)], rel=1e-15)
    assert rates[-1] == 0.5
    assert rates[0] == pytest.approx(0.05)
    assert all(a < b for a, b in itertools.pairwise(rates))
    assert drop_path_rates(1, 0.3) == [0.3]
    assert drop_path_rates(3, 0.0) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_classic_dropout_zeroes_without_rescaling_and_scales_by_keep_at_eval(p: float) -> None:
    x = _positive(50_000)
    out = classic_dropout(x, p, generator=_gen())
    dropped = out == 0
    assert (dropped | (out == x)).all()  # kept units pass through unscaled
    se = math.sqrt(p * (1 - p) / x.numel())
    assert abs(dropped.double().mean().item() - p) <= Z * se
    torch.testing.assert_close(classic_dropout(x, p, training=False), (1 - p) * x)
    torch.testing.assert_close(ClassicDropout(p).eval()(x), (1 - p) * x)


def test_classic_dropout_at_the_edge_rates() -> None:
    x = torch.randn(5, 4)
    assert classic_dropout(x, 0.0) is x
    assert classic_dropout(x, 0.0, training=False) is x
    assert torch.equal(classic_dropout(x, 1.0), torch.zeros(5, 4))
    assert torch.equal(classic_dropout(x, 1.0, training=False), torch.zeros(5, 4))


def _draws(layer: nn.Module, x: torch.Tensor, repeats: int) -> torch.Tensor:
    """``repeats`` independent training-mode outputs of ``layer`` for the same input x."""
    out: torch.Tensor = layer.train()(x.expand(repeats, -1))
    return out


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_claim_r7_each_form_is_unbiased_for_its_own_eval_output(p: float) -> None:
    """E[classic train] = classic eval = (1−p)·x; E[inverted train] = inverted eval = x;
    classic eval = (1−p)·inverted eval. Per element, over 2000 seeded draws, within Z·SE."""
    keep, repeats = 1 - p, 2000
    x = _positive(1, 500)
    torch.manual_seed(0)  # nn.Dropout draws from the global generator
    inverted, classic = nn.Dropout(p), ClassicDropout(p)
    inverted_eval, classic_eval = inverted.eval()(x), classic.eval()(x)
    torch.testing.assert_close(classic_eval, keep * inverted_eval, rtol=1e-15, atol=0)
    # per-draw std: classic |x|·sqrt(p·keep), inverted |x|·sqrt(p/keep)
    for layer, eval_out, std in (
        (classic, classic_eval, x * math.sqrt(p * keep)),
        (inverted, inverted_eval, x * math.sqrt(p / keep)),
    ):
        mean = _draws(layer, x, repeats).mean(0, keepdim=True)
        assert ((mean - eval_out).abs() <= Z * std / math.sqrt(repeats)).all()
    # the test discriminates: classic's training mean is not inverted's eval output
    classic_mean = _draws(classic, x, repeats).mean(0, keepdim=True)
    assert ((classic_mean - inverted_eval).abs() > Z * x * math.sqrt(p * keep / repeats)).all()


def test_classic_dropout_then_w_equals_inverted_dropout_then_keep_times_w_for_every_mask() -> None:
    """The two forms describe the same functions: W after classic = (1−p)W after inverted."""
    p, keep = 0.3, 0.7
    torch.manual_seed(5)
    x, w = torch.randn(16, 8, dtype=torch.float64), torch.randn(4, 8, dtype=torch.float64)
    classic = classic_dropout(x, p, generator=_gen())
    inverted = x * (classic != 0) / keep  # inverted dropout with the same mask
    torch.testing.assert_close(classic @ w.T, inverted @ (keep * w).T, rtol=1e-12, atol=1e-12)
    classic_eval = classic_dropout(x, p, training=False)
    torch.testing.assert_close(classic_eval @ w.T, x @ (keep * w).T, rtol=1e-12, atol=1e-12)


def _bad(value: Any) -> Any:
    """A value of the wrong type, passed on as the static type checker cannot see it."""
    return value


BAD_CALLS: list[tuple[str, Any, type[Exception], str]] = [
    ("p below 0", lambda: drop_path(torch.ones(2), -0.1), ValueError, "must be >= 0"),
    ("p above 1", lambda: drop_path(torch.ones(2), 1.5), ValueError, r"in \[0, 1\], got 1.5"),
    ("p not finite", lambda: classic_dropout(torch.ones(2), math.nan), ValueError, "finite"),
    ("p a string", lambda: drop_path(torch.ones(2), _bad("0.1")), TypeError, "p must be a real"),
    ("x integer", lambda: drop_path(torch.ones(2, dtype=torch.long), 0.1), TypeError, "int64"),
    ("x a list", lambda: classic_dropout(_bad([1.0, 2.0]), 0.1), TypeError, "got list"),
    ("training not bool", lambda: drop_path(torch.ones(2), 0.1, _bad("yes")), TypeError, "bool"),
    ("0-d input", lambda: drop_path(torch.tensor(1.0), 0.1), ValueError, "no batch dimension"),
    ("DropPath rate", lambda: DropPath(2.0), ValueError, "DropPath: p"),
    ("ClassicDropout rate", lambda: ClassicDropout(-1), ValueError, "ClassicDropout: p"),
    ("zero blocks", lambda: drop_path_rates(0, 0.1), ValueError, "num_blocks must be >= 1"),
    (
        "float blocks",
        lambda: drop_path_rates(_bad(2.0), 0.1),
        TypeError,
        "num_blocks must be an int",
    ),
    ("max rate", lambda: drop_path_rates(4, 1.2), ValueError, "max_rate is a probability"),
    (
        "generator an int",
        lambda: drop_path(torch.ones(2), 0.1, generator=_bad(0)),
        TypeError,
        "drop_path: generator must be a torch.Generator",
    ),
    (
        "generator in eval",
        lambda: classic_dropout(torch.ones(2), 0.1, False, generator=_bad("cpu")),
        TypeError,
        "classic_dropout: generator must be a torch.Generator",
    ),
]


@pytest.mark.parametrize(
    ("case", "call", "error", "match"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS]
)
def test_bad_inputs_raise_errors_that_name_the_value_and_the_fix(
    case: str, call: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


def test_float16_drop_path_near_rate_one_keeps_zeros_zero_and_finite_values_finite() -> None:
    """keep = 1.2e-5: 1/keep = 83333 is inf in float16, so scaling the mask first gave
    0·inf = NaN for zero inputs and inf for x = 1e-3, whose x/keep = 83.3 fits."""
    keep = 1.2e-5
    x = torch.full((1_000_000, 1), 1e-3, dtype=torch.float16)
    x[::2] = 0.0
    out = drop_path(x, 1 - keep, generator=_gen(3))
    assert not bool(out.isnan().any())
    assert bool(out.isfinite().all())
    kept = (out != 0).flatten()
    assert int(kept.sum()) > 0  # ~6 nonzero samples kept (12 kept of 10^6, half of them 0)
    expected = (x[kept].double() / keep).to(torch.float16)
    torch.testing.assert_close(out[kept], expected, rtol=2e-3, atol=0)
