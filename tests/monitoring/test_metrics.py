"""Every metric against a slow reference (float64 loops), to the stated tolerance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stabletrain.monitoring import metrics

RTOL = 1e-5  # float32 sums of 1e3-1e5 terms against float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ref_sq(t: torch.Tensor) -> float:
    return sum(float(v) ** 2 for v in t.double().reshape(-1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_squared_norms_match_the_sum_of_squares(dtype: torch.dtype) -> None:
    tensors = [
        torch.randn(s, generator=gen(i)).to(dtype) for i, s in enumerate([(7, 5), (3,), (2, 3, 4)])
    ]
    got = metrics.squared_norms(tensors)
    want = torch.tensor([ref_sq(t) for t in tensors], dtype=torch.float64)
    assert got.dtype == torch.float64
    tol = RTOL if dtype in (torch.float32, torch.float64) else 1e-2
    torch.testing.assert_close(got, want, rtol=tol, atol=0)


def test_squared_norms_mix_large_and_small_tensors_in_their_order() -> None:
    big = metrics.CPU_DOT_MIN
    tensors = [torch.randn(n, generator=gen(n)) for n in (3, big, 5, big + 1, 2)]
    got = metrics.squared_norms(tensors)
    want = torch.tensor([ref_sq(t) for t in tensors], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=RTOL, atol=0)


def test_squared_norms_count_an_empty_tensor_as_zero() -> None:
    got = metrics.squared_norms([torch.ones(4), torch.empty(0)])
    assert got.tolist() == [4.0, 0.0]


def test_half_precision_norms_do_not_overflow_at_65504() -> None:
    big = torch.full((4,), 1e4, dtype=torch.float16)  # norm 2e4, squared 4e8 > float16 max
    assert metrics.squared_norms([big]).item() == pytest.approx(4e8, rel=1e-3)


def test_a_nan_or_inf_entry_makes_the_squared_norm_non_finite() -> None:
    got = metrics.squared_norms([torch.tensor([1.0, math.nan]), torch.tensor([math.inf, 0.0])])
    assert math.isnan(got[0])
    assert math.isinf(got[1])


def test_segment_sums_match_a_loop_and_keep_a_tiny_segment_next_to_a_huge_one() -> None:
    values = torch.tensor([1e10, 1e-30, 3.0, 4.0], dtype=torch.float64)
    gather = torch.tensor([[0, 2], [1, 4], [3, 4]])  # index 4 = padding
    got = metrics.segment_sums(values, gather)
    want = [1e10 + 3.0, 1e-30, 4.0]
    assert got.tolist() == want


@pytest.mark.parametrize("shape", [(64, 10), (8, 5, 10), (4, 3, 6, 6)])
def test_moments_give_the_mean_and_population_std(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape, generator=gen()) * 3 + 1
    s, q = metrics.moments(x)
    n = x.numel()
    mean, var = float(s) / n, float(q) / n - (float(s) / n) ** 2
    ref = x.double()
    assert mean == pytest.approx(float(ref.mean()), rel=RTOL)
    assert math.sqrt(var) == pytest.approx(float(ref.std(unbiased=False)), rel=RTOL)


@pytest.mark.parametrize(
    ("shape", "unit_dim"), [((16, 10), -1), ((4, 5, 10), -1), ((4, 3, 6, 6), 1)]
)
def test_unit_max_is_the_max_over_every_other_dim(shape: tuple[int, ...], unit_dim: int) -> None:
    x = torch.randn(shape, generator=gen())
    got = metrics.unit_max(x, unit_dim)
    moved = x.movedim(unit_dim, 0).reshape(x.shape[unit_dim], -1)
    want = torch.tensor([max(row.tolist()) for row in moved])
    assert torch.equal(got, want)


def test_dead_units_over_a_sliding_window_match_a_brute_force_history() -> None:
    units, window, batches = 12, 3, 10
    g = gen(3)
    last = torch.full((units,), -(2**62), dtype=torch.long)
    history: list[torch.Tensor] = []
    for batch in range(1, batches + 1):
        umax = torch.randn(units, generator=g) - 1.0  # mostly negative: some units die a while
        history.append(umax > 0)
        last = metrics.refresh_last_alive(last, umax, batch)
        got = int(metrics.dead_units(last, batch, window))
        recent = torch.stack(history[-window:])
        want = int((~recent.any(dim=0)).sum())
        assert got == want, f"batch {batch}"


def test_a_unit_never_positive_counts_as_dead_before_the_window_is_full() -> None:
    last = torch.full((2,), -(2**62), dtype=torch.long)
    last = metrics.refresh_last_alive(last, torch.tensor([1.0, -1.0]), batch=1)
    assert int(metrics.dead_units(last, batch=1, window=8)) == 1


def test_saturated_count_matches_a_loop() -> None:
    x = torch.rand(1000, generator=gen())
    for center, threshold in ((0.0, 0.9), (0.5, 0.495)):
        want = sum(abs(float(v) - center) > threshold for v in x)
        assert int(metrics.saturated_count(x, center, threshold)) == want


def test_sample_rows_draws_distinct_sorted_indices_reproducibly() -> None:
    a = metrics.sample_rows(1000, 50, gen(1))
    b = metrics.sample_rows(1000, 50, gen(1))
    assert a is not None
    assert b is not None
    assert torch.equal(a, b)
    assert len(set(a.tolist())) == 50
    assert a.tolist() == sorted(a.tolist())
    assert int(a.min()) >= 0
    assert int(a.max()) < 1000
    assert metrics.sample_rows(50, 50, gen(1)) is None


def ref_max_cosine(w: torch.Tensor) -> float:
    rows = w.double().reshape(w.shape[0], -1)
    best = -2.0
    for i in range(rows.shape[0]):
        for j in range(rows.shape[0]):
            if i != j:
                ni, nj = rows[i].norm(), rows[j].norm()
                cos = 1.0 if ni == 0 and nj == 0 else float(rows[i] @ rows[j] / (ni * nj + 1e-300))
                best = max(best, cos)
    return best


@pytest.mark.parametrize("shape", [(12, 7), (6, 3, 3, 3)])
def test_max_row_cosine_matches_all_pairs(shape: tuple[int, ...]) -> None:
    w = torch.randn(shape, generator=gen())
    assert float(metrics.max_row_cosine(w)) == pytest.approx(ref_max_cosine(w), abs=1e-6)


def test_max_row_cosine_on_a_sample_compares_only_those_rows() -> None:
    w = torch.randn(40, 8, generator=gen())
    rows = torch.tensor([1, 5, 9, 30])
    got = float(metrics.max_row_cosine(w, rows))
    assert got == pytest.approx(ref_max_cosine(w[rows]), abs=1e-6)


def test_identical_or_zero_rows_are_symmetric_and_one_zero_row_is_not() -> None:
    assert float(metrics.max_row_cosine(torch.full((5, 4), 0.1))) == pytest.approx(1.0, abs=1e-6)
    assert float(metrics.max_row_cosine(torch.zeros(3, 4))) == 1.0
    one_zero = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert float(metrics.max_row_cosine(one_zero)) == pytest.approx(0.0, abs=1e-7)


def test_max_row_cosine_needs_two_rows() -> None:
    with pytest.raises(ValueError, match="1 row"):
        metrics.max_row_cosine(torch.ones(1, 5))


def test_histogram_matches_numpy_on_the_same_range() -> None:
    x = torch.randn(5000, generator=gen())
    counts, lo, hi = metrics.histogram(x, bins=20)
    want, _ = np.histogram(x.double().numpy(), bins=20, range=(float(lo), float(hi)))
    assert counts.tolist() == want.astype(float).tolist()
    assert (float(lo), float(hi)) == (float(x.min()), float(x.max()))


def test_both_ways_of_counting_buckets_agree() -> None:
    index = torch.randint(0, 16, (10_000,), generator=gen(), dtype=torch.int32)
    by_bincount = metrics._bucket_counts(index, 16, bincount=True)
    by_scatter = metrics._bucket_counts(index, 16, bincount=False)
    assert torch.equal(by_bincount, by_scatter)
    assert by_scatter.tolist() == [float((index == b).sum()) for b in range(16)]


def test_histogram_of_a_constant_tensor_puts_everything_in_one_bin() -> None:
    counts, lo, hi = metrics.histogram(torch.full((7,), 2.0), bins=4)
    assert counts.tolist() == [7.0, 0.0, 0.0, 0.0]
    assert float(lo) == float(hi) == 2.0


def test_histogram_counts_non_finite_entries_as_zero() -> None:
    counts, lo, hi = metrics.histogram(torch.tensor([math.nan, math.inf, 1.0, -1.0]), bins=2)
    assert counts.tolist() == [1.0, 3.0]
    assert (float(lo), float(hi)) == (-1.0, 1.0)


# --------------------------------------------------------------------------- complex tensors


def complex_tensor(n: int, seed: int) -> torch.Tensor:
    """Entries with a mostly negative real part: ``Σ z²`` (no conjugate) then has a negative
    real part, where a norm taken as ``sqrt(Re Σ z²)`` fails."""
    g = gen(seed)
    return torch.complex(torch.randn(n, generator=g) - 2, torch.randn(n, generator=g))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_squared_norms_of_complex_tensors_small_and_large_match_vector_norm(
    dtype: torch.dtype,
) -> None:
    big = metrics.CPU_DOT_MIN
    tensors = [complex_tensor(n, n).to(dtype) for n in (7, big, 3, big + 5)]
    got = metrics.squared_norms(tensors)
    want = torch.stack([torch.linalg.vector_norm(t.cdouble()) ** 2 for t in tensors])
    torch.testing.assert_close(got, want, rtol=RTOL, atol=0)


def test_squared_norms_of_a_conjugated_view_are_those_of_the_tensor() -> None:
    z = complex_tensor(metrics.CPU_DOT_MIN, 0)
    got = metrics.squared_norms([z.conj()])
    assert float(got) == pytest.approx(float(torch.linalg.vector_norm(z.cdouble()) ** 2), rel=RTOL)


def test_moments_of_a_complex_tensor_are_those_of_its_real_and_imaginary_parts() -> None:
    z = complex_tensor(100, 1)
    s, q = metrics.moments(z)
    parts = torch.cat([z.real, z.imag]).double()
    assert float(s) == pytest.approx(float(parts.sum()), rel=RTOL)
    assert float(q) == pytest.approx(float(torch.linalg.vector_norm(z.cdouble()) ** 2), rel=RTOL)


def test_max_row_cosine_of_complex_rows_is_the_real_part_of_their_normalized_product() -> None:
    w = complex_tensor(48, 2).reshape(6, 8)
    rows = w.cdouble()
    want = max(
        float((rows[i] * rows[j].conj()).sum().real / (rows[i].norm() * rows[j].norm()))
        for i in range(6)
        for j in range(6)
        if i != j
    )
    assert float(metrics.max_row_cosine(w)) == pytest.approx(want, abs=1e-6)


def test_histogram_of_a_complex_tensor_counts_its_real_and_imaginary_parts() -> None:
    z = complex_tensor(500, 3)
    counts, lo, hi = metrics.histogram(z, bins=10)
    parts = torch.cat([z.real, z.imag]).double().numpy()
    want, _ = np.histogram(parts, bins=10, range=(float(lo), float(hi)))
    assert counts.tolist() == want.astype(float).tolist()


@pytest.mark.parametrize(
    ("shape", "unit_dim"), [((300, 7), -1), ((20, 30, 7), -1), ((10, 7, 5, 6), 1)]
)
def test_sampled_activation_rows_are_rows_of_the_activation(
    shape: tuple[int, ...], unit_dim: int
) -> None:
    x = torch.randn(*shape)
    rows, dim = metrics.sample_activation_rows(x, unit_dim, 64, torch.Generator().manual_seed(0))
    assert rows.shape == (64, 7)
    assert dim == -1
    every_row = x.movedim(unit_dim % x.dim(), -1).reshape(-1, 7)
    matches = (rows[:, None, :] == every_row[None, :, :]).all(dim=-1).any(dim=1)
    assert bool(matches.all())


def test_one_gather_over_flattened_rows_picks_the_rows_the_unravelled_index_does() -> None:
    # (20, 30, 7) contiguous takes the one-gather path; the same values laid out with strides
    # that do not flatten take the unravelled index: the same draws give the same rows
    x = torch.randn(20, 30, 7, generator=torch.Generator().manual_seed(1))
    strided = torch.empty(30, 20, 7).transpose(0, 1).copy_(x)
    with pytest.raises(RuntimeError):
        strided.view(600, 7)
    fast, _ = metrics.sample_activation_rows(x, -1, 64, torch.Generator().manual_seed(0))
    slow, _ = metrics.sample_activation_rows(strided, -1, 64, torch.Generator().manual_seed(0))
    assert torch.equal(fast, slow)


def test_an_activation_with_few_rows_is_measured_whole() -> None:
    x = torch.randn(2, 7, 4, 4)  # 32 rows
    rows, dim = metrics.sample_activation_rows(x, 1, 64, torch.Generator().manual_seed(0))
    assert rows.shape == x.shape
    assert torch.equal(rows, x)
    assert dim == 1


def test_sampled_rows_estimate_the_moments_within_their_standard_error() -> None:
    x = torch.randn(4096, 32) * 3 + 1
    gen = torch.Generator().manual_seed(0)
    means = torch.stack(
        [metrics.sample_activation_rows(x, -1, 64, gen)[0].mean() for _ in range(200)]
    )
    # each sample mean has standard error 3 / sqrt(64 * 32) = 0.066
    assert float(means.mean()) == pytest.approx(float(x.mean()), abs=3 * 0.066 / 200**0.5)
    assert float(means.std()) == pytest.approx(3 / (64 * 32) ** 0.5, rel=0.2)


@pytest.mark.parametrize("dim", [2, 3, 5, 9])
def test_chance_cosine_bounds_the_largest_cosine_of_random_rows(dim: int) -> None:
    # 4000 draws of 16 Gaussian rows (120 pairs): the largest cosine exceeds the bar at
    # alpha = 0.05 in at most 5% of them (binomial 3-sigma: 0.0603); the bar is a union bound,
    # exact in 2-D, so the rate stays above a fifth of alpha (it is not vacuous either)
    g = torch.Generator().manual_seed(dim)
    w = torch.randn(4000, 16, dim, generator=g, dtype=torch.float64)
    unit = w / w.norm(dim=2, keepdim=True)
    cos = unit @ unit.transpose(1, 2)
    cos.diagonal(dim1=1, dim2=2).fill_(-2.0)
    largest = cos.amax(dim=(1, 2))
    bar = metrics.chance_cosine(dim, 16 * 15 // 2, alpha=0.05)
    rate = float((largest > bar).double().mean())
    assert 0.01 < rate <= 0.0603, (dim, bar, rate)


def test_chance_cosine_of_one_entry_rows_is_one_and_bad_arguments_are_refused() -> None:
    assert metrics.chance_cosine(1, 100) == 1.0
    for dim, pairs, alpha in [(0, 1, 0.1), (3, 0, 0.1), (3, 1, 0.0), (3, 1, 1.0)]:
        with pytest.raises(ValueError, match="chance_cosine"):
            metrics.chance_cosine(dim, pairs, alpha)


def test_short_rows_are_compared_in_float64() -> None:
    # two identical 2-entry rows beside a third: float32 rounding would leave 1 - 6e-8
    w = torch.tensor([[0.3, 0.7], [0.3, 0.7], [1.0, -0.2]])
    assert 1 - float(metrics.max_row_cosine(w)) < 1e-12
