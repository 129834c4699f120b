"""The t-interval over seeds: its quantiles against scipy, its coverage, its edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from stabletrain.lab.estimate import Estimate, NamedNumber, t_quantile


@pytest.mark.parametrize("df", [*range(1, 31), 31, 40, 60, 120, 1000])
def test_t_quantile_matches_scipy(df: int) -> None:
    # the table is rounded to 3 decimals; the expansion above 30 is within 1e-3
    assert t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1.5e-3)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_t_quantile_refuses_a_bad_df(bad: object) -> None:
    with pytest.raises(ValueError, match="df must be an int >= 1"):
        t_quantile(bad)  # type: ignore[arg-type]


def test_the_interval_is_the_textbook_formula() -> None:
    xs = [1.0, 2.0, 4.0, 7.0]
    e = Estimate.of(xs)
    half = stats.t.ppf(0.975, 3) * np.std(xs, ddof=1) / 2
    assert e.value == pytest.approx(3.5)
    assert (e.low, e.high) == pytest.approx((3.5 - half, 3.5 + half), rel=1e-3)
    assert e.n == 4


@pytest.mark.parametrize("n", [3, 5])
def test_the_interval_covers_the_mean_95_percent_of_the_time(n: int) -> None:
    # 20000 samples of n normal replicates: coverage 0.95 has a standard error of 0.0015
    rng = np.random.default_rng(0)
    samples = rng.normal(2.0, 0.3, size=(20000, n))
    covered = sum(
        Estimate.of(row.tolist()).low <= 2.0 <= Estimate.of(row.tolist()).high for row in samples
    )
    assert covered / 20000 == pytest.approx(0.95, abs=0.006)


def test_one_seed_is_a_point_and_nan_propagates() -> None:
    one = Estimate.of([0.7])
    assert (one.value, one.low, one.high, one.n, one.half_width) == (0.7, 0.7, 0.7, 1, 0.0)
    nan = Estimate.of([0.1, math.nan, 0.3])
    assert math.isnan(nan.value)
    inf = Estimate.of([0.1, math.inf])
    assert inf.value == math.inf
    assert inf.low == 0.1


def test_agreeing_seeds_give_a_zero_width_interval() -> None:
    e = Estimate.of([0.5, 0.5, 0.5])
    assert (e.low, e.high) == (0.5, 0.5)
    assert e.describe() == "0.5 ± 0 (95% CI, 3 seeds)"


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        Estimate.of([])
    with pytest.raises(ValueError, match="low <= value <= high"):
        Estimate(1.0, 2.0, 3.0)


def test_round_trips() -> None:
    e = Estimate.of([0.2, 0.4])
    assert Estimate.from_dict(e.to_dict()) == e
    m = NamedNumber("gap", "nats", "test − train", (0.1, 0.2, 0.3))
    assert NamedNumber.from_dict(m.to_dict()) == m
    assert m.estimate.value == pytest.approx(0.2)


def test_a_field_over_the_seeds() -> None:
    from types import SimpleNamespace

    from stabletrain.lab.estimate import describe, over

    ms = [SimpleNamespace(gap=v) for v in (0.1, 0.2, 0.3)]
    assert over(ms, "gap") == Estimate.of([0.1, 0.2, 0.3])
    assert describe(ms, "gap", "+.2f") == "+0.20 ± 0.25 (95% CI, 3 seeds)"
    assert describe(ms[:1], "gap", ".1e") == "1.0e-01"
