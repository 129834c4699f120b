"""I5 (Var(z) = n_in·Var(w)·Var(x)) and I8 (uniform and normal variants share the variance)."""

from __future__ import annotations

import math

import pytest

from stabletrain.lab.experiments.i5_i8_variance import (
    FAN_INS,
    I5_TOL,
    I8_TOL,
    uniform_normal_variants,
    variance_formula,
)
from tests.lab.experiments._init_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_variance_of_a_sum_matches_the_formula_over_the_grid(seed: int) -> None:
    result = run(variance_formula, seed=seed)
    assert result.verdict.outcome == "holds"
    rows = result.tables[0].rows
    assert {r[0] for r in rows} == set(FAN_INS)
    for n_in, var_w, var_x, _, predicted, measured, err in rows:
        assert predicted == pytest.approx(n_in * var_w * var_x)
        assert err == pytest.approx(abs(measured - predicted) / predicted)
        assert err <= I5_TOL
    # with a non-zero-mean input the second moment counts, not the variance
    (_, with_var, measured), (_, with_moment, _) = result.tables[1].rows
    assert measured == pytest.approx(with_moment, rel=0.05)
    assert with_var < 0.8 * measured


@pytest.mark.parametrize("seed", [0, 1])
def test_uniform_and_normal_variants_have_the_scheme_variance(seed: int) -> None:
    result = run(uniform_normal_variants, seed=seed)
    assert result.verdict.outcome == "holds"
    for scheme, distribution, target, measured, _, bound, p in result.tables[0].rows:
        assert abs(measured - target) / target <= I8_TOL, (scheme, distribution)
        if distribution == "uniform":  # a = sqrt(3)·sigma, reached by 131k draws
            assert bound == pytest.approx(math.sqrt(3), rel=1e-3)
        assert p > 1e-3


@pytest.mark.slow
def test_full_mode_gives_the_same_verdicts() -> None:
    assert run(variance_formula, quick=False).verdict.outcome == "holds"
    assert run(uniform_normal_variants, quick=False).verdict.outcome == "holds"
