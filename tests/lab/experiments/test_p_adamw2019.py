"""P-ADAMW2019: the best weight decay against the learning rate, Adam + L2 vs AdamW."""

from __future__ import annotations

import math

import pytest

from stabletrain.lab import Context, registry
from stabletrain.lab.experiments import p_adamw2019
from stabletrain.lab.experiments.p_adamw2019 import AdamW2019, AdamWMeasurements
from tests.lab.experiments._reg_checks import run


def test_best_log_lambda_is_the_parabola_vertex_and_the_grid_end_at_an_end() -> None:
    grid = (1e-3, 1e-2, 1e-1, 1.0)
    # losses (x − log10 0.03)² on the grid: the vertex is exactly log10 0.03
    losses = [(math.log10(v) - math.log10(0.03)) ** 2 for v in grid]
    assert p_adamw2019._best_log_lambda(grid, losses) == pytest.approx(math.log10(0.03))
    assert p_adamw2019._best_log_lambda(grid, [0.1, 0.2, 0.3, 0.4]) == -3.0
    assert p_adamw2019._slope([0.0, 1.0, 2.0], [1.0, 3.0, 5.0]) == pytest.approx(2.0)


def _m(coupled: float, torch_slope: float) -> AdamWMeasurements:
    return AdamWMeasurements(coupled, torch_slope, torch_slope + 1.0)


def test_decide_on_the_intervals_of_the_slopes() -> None:
    exp = AdamW2019()
    # AdamW flat, Adam + L2 a decade per decade: holds
    assert exp.decide([_m(c, t) for c, t in ((1.0, 0.0), (1.1, 0.1), (0.9, -0.1))]).outcome == (
        "holds"
    )
    # AdamW flat, but Adam + L2 only 0.3 steeper: a caveat
    weak = [_m(c, t) for c, t in ((0.3, 0.0), (0.35, 0.05), (0.25, -0.05))]
    assert exp.decide(weak).outcome == "holds with caveat"
    # AdamW's |slope| straddles 0.5 over the seeds: inconclusive
    straddle = [_m(1.0, t) for t in (-0.1, 0.4, 0.9)]
    assert exp.decide(straddle).outcome == "inconclusive"
    # AdamW's slopes scatter ±0.45 around 0 per split: separable on the mean signed slope
    # (a mean of |slope| would read 0.45, the scatter, as coupling)
    scatter = [_m(1.0, t) for t in (-0.45, 0.45) * 4]
    assert exp.decide(scatter).outcome == "holds"
    # decoupled but not flat: a caveat that names the missing part
    tilted = exp.decide([_m(2.0, t) for t in (0.9, 1.0, 1.1)])
    assert tilted.outcome == "holds with caveat"
    assert "caveat: not" in tilted.rule
    # AdamW moves as much as Adam + L2 in both parametrizations: does not hold
    coupled = [_m(1.0, t) for t in (0.9, 1.0, 1.1)]
    assert exp.decide(coupled).outcome == "does not hold"


def test_measure_the_two_adamw_parametrizations_differ_by_a_slope_of_one() -> None:
    m = AdamW2019().measure(Context(quick=True, seed=0))
    assert m.paper_slope - m.torch_slope == pytest.approx(1.0)  # λ = d/α: log α subtracted
    for lr, torch_lam, paper_lam in zip(p_adamw2019.LRS, m.best[1], m.best[2], strict=True):
        assert torch_lam == pytest.approx(paper_lam - math.log10(lr))
    assert len(m.l2_loss) == len(m.decay_loss) == len(p_adamw2019.LRS)
    assert all(math.isfinite(v) for row in m.l2_loss for v in row)


@pytest.mark.slow
def test_sixteen_seeds_decide_that_adamw_decouples_and_separates() -> None:
    # measured, seed 0: AdamW's slope +0.23 ± 0.15, the gap to Adam + L2 0.76 ± 0.17 (quick
    # and full run the same sizes)
    result = run(registry.load(["P-ADAMW2019"])["P-ADAMW2019"], seed=0)
    assert result.verdict.outcome == "holds"
    assert result.verdict.seeds == 16
    assert result.verdict.low is not None
    assert result.verdict.low > p_adamw2019.MIN_COUPLING_GAP
