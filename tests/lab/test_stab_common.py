"""Helpers of the stability experiments: scaled He init, seed statistics, decades."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from scipy import stats

from stabletrain import init
from stabletrain.lab._stab_common import decades, fan_in_normal, mean_se, scaled_he


@pytest.mark.parametrize(("scale", "sigma_w2"), [(0.5, 0.5), (1.0, 2.0), (2.0, 8.0)])
def test_scaled_he_is_normal_with_variance_two_scale_squared_over_fan_in(
    scale: float, sigma_w2: float
) -> None:
    w = scaled_he(scale)(torch.empty(512, 256), torch.Generator().manual_seed(1))
    # 131072 draws: the variance's relative standard error is sqrt(2/n) = 0.4%
    assert float(w.var()) * 256 == pytest.approx(sigma_w2, rel=0.02)
    std = math.sqrt(sigma_w2 / 256)
    assert stats.kstest(w.flatten()[:5000].numpy() / std, "norm").pvalue > 0.01


def test_fan_in_normal_matches_he_at_two_and_rejects_a_non_positive_variance() -> None:
    a = fan_in_normal(2.0)(torch.empty(64, 128), torch.Generator().manual_seed(3))
    b = init.he_normal_(
        torch.empty(64, 128), nonlinearity="relu", generator=torch.Generator().manual_seed(3)
    )
    assert torch.allclose(a, b)
    with pytest.raises(ValueError, match="sigma_w2"):
        fan_in_normal(0.0)


def test_mean_se_matches_statistics_and_handles_edge_cases() -> None:
    values = [0.91, 0.95, 0.93, 0.9]
    mean, se = mean_se(values)
    assert mean == pytest.approx(statistics.fmean(values))
    assert se == pytest.approx(statistics.stdev(values) / 2)
    assert mean_se([0.5]) == (0.5, 0.0)
    inf_mean, nan_se = mean_se([1.0, math.inf])
    assert inf_mean == math.inf
    assert math.isnan(nan_se)
    with pytest.raises(ValueError, match="at least one"):
        mean_se([])


def test_decades_counts_orders_of_magnitude_and_is_infinite_for_a_vanished_signal() -> None:
    assert decades([1.0, 10.0, 1000.0]) == pytest.approx(3.0)
    assert decades([2.0]) == 0.0
    assert decades([0.0, 1.0]) == math.inf
    assert decades([1.0, math.inf]) == math.inf
