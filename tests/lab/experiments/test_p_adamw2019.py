"""P-ADAMW2019: the best weight decay against the learning rate, Adam + L2 vs AdamW."""

from __future__ import annotations

import math

import pytest

from stabletrain.lab.experiments import p_adamw2019
from tests.lab.experiments._reg_checks import run


def test_best_log_lambda_is_the_parabola_vertex_and_the_grid_end_at_an_end() -> None:
    grid = (1e-3, 1e-2, 1e-1, 1.0)
    # losses (x − log10 0.03)² on the grid: the vertex is exactly log10 0.03
    losses = [(math.log10(v) - math.log10(0.03)) ** 2 for v in grid]
    assert p_adamw2019._best_log_lambda(grid, losses) == pytest.approx(math.log10(0.03))
    assert p_adamw2019._best_log_lambda(grid, [0.1, 0.2, 0.3, 0.4]) == -3.0
    assert p_adamw2019._slope([0.0, 1.0, 2.0], [1.0, 3.0, 5.0]) == pytest.approx(2.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_two_adamw_parametrizations_differ_by_a_slope_of_one(seed: int) -> None:
    result = run(p_adamw2019.adamw_separates_decay_from_lr, seed=seed)
    best = result.tables[1].rows
    for lr, _l2, torch_lam, paper_lam in best:
        assert float(torch_lam) == pytest.approx(float(paper_lam) / float(lr), rel=0.1)  # 2 digits
    assert result.verdict.outcome in ("holds", "holds with caveat")  # measured: holds (0..3)


@pytest.mark.slow
def test_full_mode_gives_a_well_formed_result() -> None:
    run(p_adamw2019.adamw_separates_decay_from_lr, seed=0, quick=False)
