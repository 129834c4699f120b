"""P-DROPOUT2014: dropout and max-norm on an MLP, the test error and large learning rates:
``decide`` on hand-made measurements, ``measure`` by its named fields at quick size."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from stabletrain.lab import Context
from stabletrain.lab.experiment import REGISTRY
from stabletrain.lab.experiments import p_dropout2014
from stabletrain.lab.experiments.p_dropout2014 import PDropoutMeasure
from tests.lab.experiments._reg_checks import assert_well_formed, run

ID = "P-DROPOUT2014"


def _many(reductions: Sequence[float]) -> list[PDropoutMeasure]:
    zero = {f.name: 0.0 for f in dataclasses.fields(PDropoutMeasure)}
    return [PDropoutMeasure(**(zero | {"reduction": r})) for r in reductions]


def test_decide_on_hand_made_measurements() -> None:
    exp = p_dropout2014.DropoutAndMaxNormReduceTheGap()
    assert exp.decide(_many([0.30, 0.34, 0.32])).outcome == "holds"
    assert exp.decide(_many([0.12, 0.14, 0.13])).outcome == "holds with caveat"
    assert exp.decide(_many([-0.05, -0.02, -0.03])).outcome == "does not hold"
    assert exp.decide(_many([-0.01, 0.1, 0.2])).outcome == "inconclusive"  # straddles 5%


@pytest.fixture(scope="module")
def quick() -> tuple[Any, ...]:
    # three of the twelve seeds: each trains five MLPs for 800 or 300 steps (about 5 s)
    exp, ctx = p_dropout2014.DropoutAndMaxNormReduceTheGap(), Context(quick=True, seed=0)
    return tuple(exp.measure(ctx.replicate(i)) for i in range(3))


def test_max_norm_binds_and_lets_dropout_train_at_a_large_learning_rate(
    quick: tuple[Any, ...],
) -> None:
    for m in quick:
        assert m.norm_maxnorm <= p_dropout2014.MAX_NORM + 1e-3
        assert m.norm_dropout > p_dropout2014.MAX_NORM  # the constraint binds: 2.03–2.19
        assert m.high_lr_dropout < 0.3  # collapsed: measured 0.09–0.13
        assert m.high_lr_maxnorm > 0.8  # measured 0.95–0.98
        assert m.reduction == pytest.approx(1 - m.error_maxnorm / m.error_standard)
        assert min(m.train_acc_standard, m.train_acc_dropout, m.train_acc_maxnorm) > 0.99


def test_verdict_at_quick_size(quick: tuple[Any, ...]) -> None:
    exp = p_dropout2014.DropoutAndMaxNormReduceTheGap()
    result = exp.result(quick)
    assert_well_formed(dataclasses.replace(result, claim_id=ID), REGISTRY[ID])
    # measured: 14% ± 24% lower test error over three splits (the paper: 34%); twelve seeds
    # narrow it to about ±6% (the slow test below)
    assert result.verdict.outcome == "inconclusive"


@pytest.mark.slow
def test_twelve_seeds_decide_a_smaller_reduction_than_the_papers() -> None:
    # measured: 0.176 ± 0.068 (seed 0) and 0.172 ± 0.052 (seed 1), both modes alike
    result = run(REGISTRY[ID], seed=0, quick=False)
    assert result.verdict.outcome == "holds with caveat"
    assert result.verdict.low is not None
    assert result.verdict.low > p_dropout2014.CAVEAT_REDUCTION
