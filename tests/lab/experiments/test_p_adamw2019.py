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
def test_quick_run_is_well_formed() -> None:
    run(registry.load(["P-ADAMW2019"])["P-ADAMW2019"], seed=0)


@pytest.mark.slow
def test_full_mode_gives_a_well_formed_result() -> None:
    run(registry.load(["P-ADAMW2019"])["P-ADAMW2019"], seed=0, quick=False)
