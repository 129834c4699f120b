"""I5 (Var(z) = n_in·Var(w)·Var(x)) and I8 (uniform and normal variants share the variance)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from stabletrain.lab import Context
from stabletrain.lab.experiment import REGISTRY
from stabletrain.lab.experiments.i5_i8_variance import (
    GRID,
    I5_CAVEAT_TOL,
    I5_TOL,
    I8_TOL,
    KS_LEVEL,
    FormulaCheck,
    UniformNormalVariants,
    VarianceFormula,
    VariantCheck,
)
from tests.lab.experiments._init_checks import run

FORMULA = FormulaCheck(0.0, 1.0, 0.66, 1.0, 0.4, 1024, 4)
VARIANTS = VariantCheck(0.0, 0.5, 512, 256)


@pytest.mark.parametrize(
    ("errors", "outcome"),
    [
        ([0.02], "holds"),
        ([0.02, 0.025, 0.03], "holds"),
        ([0.08], "holds with caveat"),
        ([0.02, 0.05, 0.12], "inconclusive"),  # 0.063 ± 0.13 straddles 5% and 15%
        ([0.3], "does not hold"),
    ],
)
def test_i5_decides_on_the_worst_error(errors: list[float], outcome: str) -> None:
    assert I5_TOL < 0.08 < I5_CAVEAT_TOL
    ms = [replace(FORMULA, worst_error=e) for e in errors]
    assert VarianceFormula().decide(ms).outcome == outcome


@pytest.mark.parametrize(
    ("errors", "pvalues", "outcome"),
    [
        ([0.005], [0.3], "holds"),
        ([0.03], [0.3], "holds with caveat"),
        ([0.005], [1e-5], "does not hold"),  # the KS test rejects the shape
        ([0.005, 0.005, 0.005], [1e-4, 0.2, 0.4], "inconclusive"),  # p straddles 1e-3
        ([0.1], [0.3], "does not hold"),
    ],
)
def test_i8_needs_both_the_variance_and_the_shape(
    errors: list[float], pvalues: list[float], outcome: str
) -> None:
    assert KS_LEVEL == 1e-3
    ms = [
        replace(VARIANTS, worst_error=e, smallest_p=p) for e, p in zip(errors, pvalues, strict=True)
    ]
    assert UniformNormalVariants().decide(ms).outcome == outcome


def test_variance_of_a_sum_matches_the_formula_over_the_grid() -> None:
    m = VarianceFormula().measure(Context(quick=True, seed=1))
    assert len(m.measured_vars) == len(GRID) == 16
    for cell, var, err in zip(GRID, m.measured_vars, m.errors, strict=True):
        assert err == pytest.approx(abs(var - cell.predicted) / cell.predicted)
        assert err <= I5_TOL, cell.label  # ~1% standard error: 5% is 4 of them
    assert m.worst_error == max(m.errors)
    # with a non-zero-mean input the second moment counts, not the variance
    assert m.relu_measured == pytest.approx(m.relu_with_moment, rel=0.05)
    assert m.relu_with_var < 0.8 * m.relu_measured
    assert m.relu_input_mean == pytest.approx((2 * math.pi) ** -0.5, rel=0.05)  # E[relu(N(0,1))]


def test_uniform_and_normal_variants_have_the_scheme_variance() -> None:
    m = UniformNormalVariants().measure(Context(quick=True, seed=1))
    assert len(m.draws) == 7
    for d in m.draws:
        assert d.error <= I8_TOL, (d.scheme, d.distribution)  # 0.4% standard error
        if d.distribution == "uniform":  # a = sqrt(3)·sigma, reached by 131k draws
            assert d.bound_ratio == pytest.approx(math.sqrt(3), rel=1e-3)
        if d.distribution == "truncated normal":  # cut at 2 parent stds
            assert d.bound_ratio < 2.0 / 0.87
        assert d.ks_pvalue > KS_LEVEL
    assert m.smallest_p == min(d.ks_pvalue for d in m.draws)


@pytest.mark.parametrize("claim", ["I5", "I8"])
def test_the_quick_run_holds(claim: str) -> None:
    result = run(REGISTRY[claim])
    assert result.verdict.outcome == "holds"
    assert result.verdict.seeds == 1  # pooled draws: one seed decides (see the class docstring)


@pytest.mark.slow
def test_full_mode_gives_the_same_verdicts() -> None:
    assert run(REGISTRY["I5"], quick=False).verdict.outcome == "holds"
    assert run(REGISTRY["I8"], quick=False).verdict.outcome == "holds"
