"""Every scheme: distribution (KS test), variance (1%), torch equivalence, dtypes, errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from stabletrain import init

KS_P = 1e-4  # the sample must not be rejected at this level
VAR_RTOL = 0.01  # 10^6 samples: the sample variance's relative std error is <= 0.2%
SHAPE = (500, 2000)  # fan_in 2000 != fan_out 500, so a swapped fan fails
CONV = (256, 128, 5, 5)  # fan_in 3200, fan_out 6400, 819200 samples

Fill = Callable[[torch.Tensor, torch.Generator], Any]


def draw(fill: Fill, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> torch.Tensor:
    t = torch.empty(shape)
    out = fill(t, torch.Generator().manual_seed(seed))
    assert out is t  # in place, returns its argument
    return t


def uniform_dist(bound: float) -> Any:
    return stats.uniform(-bound, 2 * bound)


def normal_dist(std: float) -> Any:
    return stats.norm(0.0, std)


def truncated_dist(std: float) -> Any:  # truncated at +-2 parent stds, rescaled to std
    parent = std / stats.truncnorm(-2, 2).std()
    return stats.truncnorm(-2, 2, scale=parent)


FI, FO = 2000, 500
CASES: list[tuple[str, Fill, Any, tuple[int, ...]]] = [
    ("normal_", lambda t, g: init.normal_(t, 0.5, 2.0, generator=g), stats.norm(0.5, 2.0), SHAPE),
    ("uniform_", lambda t, g: init.uniform_(t, -1, 3, generator=g), stats.uniform(-1, 4), SHAPE),
    ("small_random_", lambda t, g: init.small_random_(t, generator=g), normal_dist(0.01), SHAPE),
    ("standard_", lambda t, g: init.standard_(t, generator=g), uniform_dist(FI**-0.5), SHAPE),
    (
        "xavier_uniform_",
        lambda t, g: init.xavier_uniform_(t, generator=g),
        uniform_dist(math.sqrt(6 / (FI + FO))),
        SHAPE,
    ),
    (
        "xavier_normal_",
        lambda t, g: init.xavier_normal_(t, 2.0, generator=g),
        normal_dist(2 * math.sqrt(2 / (FI + FO))),
        SHAPE,
    ),
    (
        "he_uniform_",
        lambda t, g: init.he_uniform_(t, generator=g),
        uniform_dist(math.sqrt(6 / FI)),
        SHAPE,
    ),
    (
        "he_uniform_ fan_out",
        lambda t, g: init.he_uniform_(t, mode="fan_out", generator=g),
        uniform_dist(math.sqrt(6 / FO)),
        SHAPE,
    ),
    (
        "he_normal_",
        lambda t, g: init.he_normal_(t, generator=g),
        normal_dist(math.sqrt(2 / FI)),
        SHAPE,
    ),
    (
        "he_normal_ leaky",
        lambda t, g: init.he_normal_(t, 0.2, generator=g),
        normal_dist(math.sqrt(2 / (1.04 * FI))),
        SHAPE,
    ),
    (
        "he_normal_ conv fan_out",
        lambda t, g: init.he_normal_(t, mode="fan_out", generator=g),
        normal_dist(math.sqrt(2 / 6400)),
        CONV,
    ),
    (
        "he_normal_ gelu",
        lambda t, g: init.he_normal_(t, nonlinearity="gelu", generator=g),
        normal_dist(1.5335 / math.sqrt(FI)),
        SHAPE,
    ),
    (
        "lecun_uniform_",
        lambda t, g: init.lecun_uniform_(t, generator=g),
        uniform_dist(math.sqrt(3 / FI)),
        SHAPE,
    ),
    (
        "lecun_normal_",
        lambda t, g: init.lecun_normal_(t, generator=g),
        normal_dist(math.sqrt(1 / FI)),
        SHAPE,
    ),
    (
        "variance_scaling_ truncated",
        lambda t, g: init.variance_scaling_(t, 2.0, generator=g),
        truncated_dist(math.sqrt(2 / FI)),
        SHAPE,
    ),
    (
        "variance_scaling_ fan_avg conv",
        lambda t, g: init.variance_scaling_(t, 3.0, "fan_avg", "normal", generator=g),
        normal_dist(math.sqrt(3 / 4800)),
        CONV,
    ),
    (
        "variance_scaling_ explicit fans",
        lambda t, g: init.variance_scaling_(
            t, 1.0, "fan_out", "uniform", fans=(7, 50), generator=g
        ),
        uniform_dist(math.sqrt(3 / 50)),
        SHAPE,
    ),
    (
        "trunc_normal_",
        lambda t, g: init.trunc_normal_(t, 0.1, 1.0, -1.0, 2.5, generator=g),
        stats.truncnorm(-1.1, 2.4, loc=0.1, scale=1.0),
        SHAPE,
    ),
]


@pytest.mark.parametrize(
    ("fill", "dist", "shape"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_samples_follow_the_target_distribution(
    fill: Fill, dist: Any, shape: tuple[int, ...]
) -> None:
    x = draw(fill, shape).double().flatten().numpy()
    assert stats.kstest(x, dist.cdf).pvalue > KS_P
    assert x.var() == pytest.approx(dist.var(), rel=VAR_RTOL)


def test_uniform_and_normal_variants_have_the_same_variance() -> None:  # claim I8
    for uniform, normal in [
        (init.xavier_uniform_, init.xavier_normal_),
        (init.he_uniform_, init.he_normal_),
        (init.lecun_uniform_, init.lecun_normal_),
    ]:
        u = draw(lambda t, g, f=uniform: f(t, generator=g)).var()
        n = draw(lambda t, g, f=normal: f(t, generator=g)).var()
        assert float(u) == pytest.approx(float(n), rel=2 * VAR_RTOL)


def test_trunc_normal_with_correct_std_has_exactly_that_std_inside_the_bounds() -> None:
    x = draw(
        lambda t, g: init.trunc_normal_(t, std=0.02, a=-0.04, b=0.04, correct_std=True, generator=g)
    )
    assert float(x.std()) == pytest.approx(0.02, rel=VAR_RTOL / 2)
    assert float(x.abs().max()) <= 0.04
    # without the correction the std is the parent's times the truncation factor, 0.8796 at 2σ
    y = draw(lambda t, g: init.trunc_normal_(t, std=0.02, a=-0.04, b=0.04, generator=g))
    assert float(y.std()) == pytest.approx(0.02 * 0.8796256610342398, rel=VAR_RTOL / 2)


TORCH_PAIRS: list[tuple[str, Fill, Fill]] = [
    (
        "normal_",
        lambda t, g: init.normal_(t, 0.0, 0.02, generator=g),
        lambda t, g: nn.init.normal_(t, 0.0, 0.02, generator=g),
    ),
    (
        "uniform_",
        lambda t, g: init.uniform_(t, -0.1, 0.1, generator=g),
        lambda t, g: nn.init.uniform_(t, -0.1, 0.1, generator=g),
    ),
    (
        "standard_ vs Linear's default",
        lambda t, g: init.standard_(t, generator=g),
        lambda t, g: nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=g),
    ),
    (
        "xavier_uniform_",
        lambda t, g: init.xavier_uniform_(t, 1.5, generator=g),
        lambda t, g: nn.init.xavier_uniform_(t, 1.5, generator=g),
    ),
    (
        "xavier_normal_",
        lambda t, g: init.xavier_normal_(t, generator=g),
        lambda t, g: nn.init.xavier_normal_(t, generator=g),
    ),
    (
        "he_uniform_",
        lambda t, g: init.he_uniform_(t, 0.1, "fan_out", generator=g),
        lambda t, g: nn.init.kaiming_uniform_(t, 0.1, "fan_out", generator=g),
    ),
    (
        "he_normal_",
        lambda t, g: init.he_normal_(t, nonlinearity="relu", generator=g),
        lambda t, g: nn.init.kaiming_normal_(t, nonlinearity="relu", generator=g),
    ),
    (
        "lecun_normal_",
        lambda t, g: init.lecun_normal_(t, generator=g),
        lambda t, g: nn.init.kaiming_normal_(t, nonlinearity="linear", generator=g),
    ),
    (
        "trunc_normal_",
        lambda t, g: init.trunc_normal_(t, 0.0, 0.02, -0.03, 0.05, generator=g),
        lambda t, g: nn.init.trunc_normal_(t, 0.0, 0.02, -0.03, 0.05, generator=g),
    ),
    (
        "orthogonal_",
        lambda t, g: init.orthogonal_(t, 2.0, generator=g),
        lambda t, g: nn.init.orthogonal_(t, 2.0, generator=g),
    ),
]


@pytest.mark.parametrize(
    ("ours", "theirs"), [p[1:] for p in TORCH_PAIRS], ids=[p[0] for p in TORCH_PAIRS]
)
def test_equal_in_distribution_to_the_torch_equivalent(ours: Fill, theirs: Fill) -> None:
    shape = (300, 500)
    a = draw(ours, shape, seed=1).flatten().numpy()
    b = draw(theirs, shape, seed=2).flatten().numpy()
    assert stats.ks_2samp(a, b).pvalue > KS_P


def test_torch_default_init_is_the_standard_init() -> None:
    layer = nn.Linear(2000, 500)  # torch's reset_parameters under torch's global seed
    torch.manual_seed(0)
    layer.reset_parameters()
    ours = draw(lambda t, g: init.standard_(t, generator=g)).flatten().numpy()
    assert stats.ks_2samp(layer.weight.detach().flatten().numpy(), ours).pvalue > KS_P


@pytest.mark.parametrize("shape", [(32, 32), (16, 48), (48, 16), (8, 4, 3, 3)])
def test_orthogonal_is_semi_orthogonal_times_gain(shape: tuple[int, ...]) -> None:
    w = draw(lambda t, g: init.orthogonal_(t, 1.5, generator=g), shape).flatten(1).double()
    small = min(w.shape)
    gram = w @ w.T if w.shape[0] == small else w.T @ w
    torch.testing.assert_close(
        gram, 2.25 * torch.eye(small, dtype=torch.float64), atol=1e-5, rtol=0
    )


def test_orthogonal_blocks_make_every_lstm_gate_orthogonal_where_the_fused_init_does_not() -> None:
    lstm = nn.LSTM(16, 16)
    g = torch.Generator().manual_seed(0)
    init.orthogonal_(lstm.weight_hh_l0, blocks=4, generator=g)
    eye = torch.eye(16)
    for gate in lstm.weight_hh_l0.detach().chunk(4):
        torch.testing.assert_close(gate @ gate.T, eye, atol=1e-5, rtol=0)
    nn.init.orthogonal_(lstm.weight_hh_l0, generator=g)  # torch: the fused (64, 16) matrix
    fused_gate = lstm.weight_hh_l0.detach()[:16]
    assert float(torch.linalg.matrix_norm(fused_gate @ fused_gate.T - eye)) > 0.5


def test_identity_and_dirac_make_the_layer_an_identity_map() -> None:
    torch.testing.assert_close(init.identity_(torch.empty(3, 5), 2.0), 2 * torch.eye(3, 5))
    x = torch.randn(2, 8, 7, 7, generator=torch.Generator().manual_seed(0))
    for groups in (1, 2, 8):
        w = init.dirac_(torch.empty(8, 8 // groups, 3, 3), groups=groups)
        torch.testing.assert_close(F.conv2d(x, w, padding=1, groups=groups), x)
    torch.testing.assert_close(
        init.dirac_(torch.empty(6, 4, 3, 3), 2), nn.init.dirac_(torch.empty(6, 4, 3, 3), 2)
    )


def test_constants() -> None:
    assert init.zeros_(torch.empty(3, 2)).eq(0).all()
    assert init.ones_(torch.empty(3)).eq(1).all()
    assert init.constant_(torch.empty(2, 2), -0.5).eq(-0.5).all()


ALL_FILLS: dict[str, Fill] = {
    **{c[0]: c[1] for c in CASES},
    "orthogonal_ blocks": lambda t, g: init.orthogonal_(t, blocks=2, generator=g),
    "trunc_normal_ corrected": lambda t, g: init.trunc_normal_(
        t, std=0.5, correct_std=True, generator=g
    ),
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(ALL_FILLS))
def test_every_dtype_is_filled_in_place_with_the_same_distribution(
    name: str, dtype: torch.dtype
) -> None:
    fill = ALL_FILLS[name]
    shape = (200, 300)
    t = torch.empty(shape, dtype=dtype)
    assert fill(t, torch.Generator().manual_seed(0)) is t
    assert t.dtype == dtype
    assert bool(t.isfinite().all())
    reference = draw(fill, shape, seed=1).double()
    # 6*10^4 samples: sample std within ~0.6% (1 sigma); 3% also allows fp16/bf16 rounding
    assert float(t.double().std()) == pytest.approx(float(reference.std()), rel=0.03)


def test_parameters_with_grad_are_filled_without_recording_history() -> None:
    layer = nn.Linear(4, 3)
    out = init.he_normal_(layer.weight)
    assert out is layer.weight
    assert out.grad_fn is None
    assert out.requires_grad


def test_the_same_generator_seed_gives_the_same_weights() -> None:
    a = draw(lambda t, g: init.xavier_uniform_(t, generator=g), (64, 64), seed=5)
    b = draw(lambda t, g: init.xavier_uniform_(t, generator=g), (64, 64), seed=5)
    c = draw(lambda t, g: init.xavier_uniform_(t, generator=g), (64, 64), seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_zero_element_tensors_are_a_no_op() -> None:
    for fill in ALL_FILLS.values():
        t = torch.empty(0, 4)
        assert fill(t, torch.Generator()) is t


BAD: list[tuple[Callable[[], object], type[Exception], str]] = [
    (lambda: init.xavier_uniform_(torch.empty(5)), ValueError, r"xavier_uniform_.*\(5,\).*zeros_"),
    (lambda: init.he_normal_(torch.empty(())), ValueError, "at least 2 dims"),
    (
        lambda: init.he_normal_(torch.empty(3, 3), mode="fan_mid"),
        ValueError,
        "unknown mode 'fan_mid'; valid options are 'fan_in', 'fan_out', 'fan_avg'",
    ),
    (
        lambda: init.variance_scaling_(torch.empty(3, 3), distribution="cauchy"),
        ValueError,
        "unknown distribution 'cauchy'.*'truncated_normal'",
    ),
    (
        lambda: init.he_normal_(torch.empty(3, 3), nonlinearity="relu7"),
        ValueError,
        "unknown activation 'relu7'",
    ),
    (
        lambda: init.he_normal_(torch.empty(3, 3), 0.1, nonlinearity="tanh"),
        ValueError,
        "applies to nonlinearity='leaky_relu' only",
    ),
    (lambda: init.normal_(torch.empty(3), std=-1.0), ValueError, "std must be >= 0"),
    (lambda: init.small_random_(torch.empty(3), std=math.inf), ValueError, "finite"),
    (lambda: init.variance_scaling_(torch.empty(3, 3), scale=0.0), ValueError, "scale must be > 0"),
    (lambda: init.xavier_normal_(torch.empty(3, 3), gain=-1.0), ValueError, "gain must be > 0"),
    (
        lambda: init.normal_(torch.empty(3, dtype=torch.int64)),
        TypeError,
        "dtype torch.int64; supported dtypes are float16, bfloat16, float32, float64",
    ),
    (lambda: init.zeros_([1.0, 2.0]), TypeError, "expected a torch.Tensor.*got list"),
    (lambda: init.uniform_(torch.empty(3), 1.0, 0.0), ValueError, "a <= b"),
    (lambda: init.trunc_normal_(torch.empty(3), a=1.0, b=-1.0), ValueError, "a < b"),
    (lambda: init.trunc_normal_(torch.empty(3), std=0.0), ValueError, "std must be > 0"),
    (
        lambda: init.trunc_normal_(torch.empty(3), std=2.0, correct_std=True),
        ValueError,
        "largest possible is 1.155",
    ),
    (lambda: init.orthogonal_(torch.empty(6, 3), blocks=4), ValueError, "blocks=4"),
    (lambda: init.orthogonal_(torch.empty(6)), ValueError, "at least 2 dims"),
    (lambda: init.identity_(torch.empty(2, 2, 3)), ValueError, "use dirac_"),
    (lambda: init.dirac_(torch.empty(2, 2)), ValueError, "use identity_"),
    (lambda: init.dirac_(torch.empty(6, 2, 3), groups=4), ValueError, "groups=4"),
    (lambda: init.he_normal_(torch.empty(3, 3), fans=(3,)), TypeError, "Fans"),
    (lambda: init.he_normal_(torch.empty(3, 3), fans=(0, 3)), ValueError, "fan_in must be >= 1"),
    (lambda: init.constant_(torch.empty(3), "one"), TypeError, "val must be a real number"),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD, ids=[b[2][:40] for b in BAD])
def test_bad_input_raises_an_error_naming_the_value_and_the_options(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


def test_trunc_normal_in_a_far_tail_keeps_fine_grained_values() -> None:
    x = draw(lambda t, g: init.trunc_normal_(t, 0.0, 1.0, 3.0, 5.0, generator=g), (1000, 1000))
    assert x.unique().numel() > 500_000  # float32 uniforms would give ~45k distinct levels
    assert stats.kstest(x.double().numpy().ravel(), stats.truncnorm(3, 5).cdf).pvalue > KS_P


@pytest.mark.parametrize(
    ("mean", "std", "a", "b"),
    [(0.0, 1.0, 10.0, 12.0), (0.0, 1.0, -12.0, -10.0), (1.0, 0.02, 1.2, 1.3)],
    ids=["upper tail 10-12 std", "lower tail", "10-15 std above mean 1, std 0.02"],
)
def test_trunc_normal_far_in_a_tail_follows_the_truncated_normal(
    mean: float, std: float, a: float, b: float
) -> None:
    # 1 − Φ(10) = 7.6e-24 rounds to 0 in float64: torch's sampler puts every draw on a bound
    x = draw(lambda t, g: init.trunc_normal_(t, mean, std, a, b, generator=g), (1000, 1000))
    alpha, beta = (a - mean) / std, (b - mean) / std
    assert a <= x.min()
    assert x.max() <= b
    assert x.unique().numel() > 10_000  # not collapsed onto a few values
    dist = stats.truncnorm(alpha, beta, loc=mean, scale=std)
    assert stats.kstest(x.double().numpy().ravel(), dist.cdf).pvalue > KS_P


def test_trunc_normal_refuses_an_interval_without_representable_mass_and_says_why() -> None:
    # [3, 50] is 100 std above N(1, 0.02²): mass ~1e-2174; it used to fill the tensor with 50
    with pytest.raises(ValueError, match=r"100 std above.*10\^-2173\.9.*a=0\.96, b=1\.04"):
        init.trunc_normal_(torch.empty(8, dtype=torch.bfloat16), 1.0, 0.02, 3.0, 50.0)
    with pytest.raises(ValueError, match="below the mean"):
        init.trunc_normal_(torch.empty(8), 0.0, 1.0, -45.0, -40.0)
    # 37σ still holds 5.7e-300, a normal float64: sampled, not refused
    x = init.trunc_normal_(torch.empty(1000, dtype=torch.float64), 0.0, 1.0, 37.0, 38.0)
    assert 37.0 <= x.min() < 37.01


GENERATED: dict[str, Callable[..., torch.Tensor]] = {
    "normal_": init.normal_,
    "uniform_": init.uniform_,
    "small_random_": init.small_random_,
    "standard_": init.standard_,
    "variance_scaling_": init.variance_scaling_,
    "xavier_uniform_": init.xavier_uniform_,
    "he_normal_": init.he_normal_,
    "lecun_normal_": init.lecun_normal_,
    "trunc_normal_": init.trunc_normal_,
    "orthogonal_": init.orthogonal_,
}


@pytest.mark.parametrize("shape", [(4, 3), (0, 3)], ids=["filled", "empty"])
@pytest.mark.parametrize("name", list(GENERATED))
def test_a_generator_that_is_not_one_is_refused_naming_the_scheme_even_for_empty_tensors(
    name: str, shape: tuple[int, ...]
) -> None:
    weight = torch.zeros(shape)
    with pytest.raises(TypeError, match=rf"{name}: generator must be a torch.Generator.*got int"):
        GENERATED[name](weight, generator=3)
    assert bool((weight == 0).all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device type")
def test_a_generator_on_another_device_type_is_refused() -> None:
    with pytest.raises(ValueError, match="generator is on cuda but the tensor on cpu"):
        init.he_normal_(torch.empty(3, 3), generator=torch.Generator(device="cuda"))


def test_a_mode_typo_is_refused_for_empty_tensors_too() -> None:
    with pytest.raises(ValueError, match="unknown mode 'FAN_IN'"):
        init.variance_scaling_(torch.empty(0, 3), mode="FAN_IN")  # type: ignore[arg-type]


def test_fans_larger_than_any_float_are_refused_not_an_overflow() -> None:
    with pytest.raises(ValueError, match="larger than any float"):
        init.he_normal_(torch.empty(3, 3), fans=(10**400, 1))


@pytest.mark.parametrize(
    ("fill", "match"),
    [
        (lambda t: init.normal_(t, 0.0, 1e4), r"N\(0, 1e\+04²\) gives draws up to 8e\+04"),
        (lambda t: init.small_random_(t, 1e4), "std=1e"),
        (lambda t: init.variance_scaling_(t, 1e9, distribution="normal", fans=(1, 1)), "scale/fan"),
        (
            lambda t: init.variance_scaling_(t, 2e9, distribution="uniform", fans=(1, 1)),
            "scale/fan",
        ),
    ],
    ids=["normal_", "small_random_", "normal", "uniform"],
)
def test_a_std_whose_draws_overflow_the_dtype_is_refused_instead_of_writing_inf(
    fill: Callable[[torch.Tensor], object], match: str
) -> None:
    """std 1e4 fits float16 (max 65504), but N(0, 1e4²) draws beyond 65504 would be inf."""
    weight = torch.zeros(100, 100, dtype=torch.float16)
    with pytest.raises(ValueError, match=match):
        fill(weight)
    assert bool((weight == 0).all())
    init.normal_(weight, 0.0, 5000.0, generator=torch.Generator().manual_seed(0))  # 8σ fits
    assert bool(weight.isfinite().all())


@pytest.mark.parametrize(
    "gain", [np.float32(2.0), np.float64(2.0), torch.tensor(2.0)], ids=["np32", "np64", "tensor"]
)
def test_xavier_takes_any_real_number_as_its_gain(gain: object) -> None:
    weight = torch.empty(300, 100)
    init.xavier_normal_(weight, gain, generator=torch.Generator())  # type: ignore[arg-type]
    assert weight.var().item() * 200 == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize("correct_std", [False, True])
def test_trunc_normal_far_from_a_huge_mean_is_refused_never_nan(correct_std: bool) -> None:
    # mean 1e30 and the bounds ±2 (meant around the mean): float64 cannot tell -2 - 1e30 from
    # 2 - 1e30, so the mass is 0 to it and the parent std cannot be solved for. This wrote NaN
    # (correct_std=True) or raised a bare "math domain error" (False).
    w = torch.zeros(16)
    with pytest.raises(ValueError, match=r"trunc_normal_: .*a=mean-2\*std, b=mean\+2\*std"):
        init.trunc_normal_(w, mean=1e30, std=0.01, correct_std=correct_std)
    assert torch.equal(w, torch.zeros(16))
