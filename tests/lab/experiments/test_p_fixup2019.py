"""P-FIXUP2019: Fixup trains a deep unnormalized residual MLP at lr 0.1; He init diverges."""

from __future__ import annotations

import math

import pytest

from stabletrain.lab import Context, registry
from stabletrain.lab.experiments.p_fixup2019 import (
    FIXUP,
    STANDARD,
    TRAINED,
    ZERO,
    Fixup2019,
    FixupMeasurements,
)
from tests.lab.experiments._init_checks import run

PREDICTED = 30 * math.log10(3.0)


def _m(
    acc: float, standard: float = 1.0, zero: float = 0.0, growth: float = 14.3
) -> FixupMeasurements:
    return FixupMeasurements(acc, standard, zero, growth, PREDICTED)


def test_decide_on_the_intervals_and_the_zero_init_caveat() -> None:
    exp = Fixup2019()
    assert exp.decide([_m(a) for a in (0.92, 0.93, 0.94)]).outcome == "holds"
    # zero-init residual diverged in some seed: a caveat
    caveat = [_m(0.93, zero=z) for z in (1.0, 0.0, 1.0)]
    assert exp.decide(caveat).outcome == "holds with caveat"
    # Fixup's accuracy straddles 0.8 (one seed diverged): inconclusive
    assert exp.decide([_m(a) for a in (0.9, 0.92, 0.5)]).outcome == "inconclusive"
    # He init trained in every seed: does not hold
    assert exp.decide([_m(0.93, standard=0.0) for _ in range(3)]).outcome == "does not hold"
    # growth far from 3^L: does not hold
    assert exp.decide([_m(0.93, growth=g) for g in (8.0, 8.1, 8.2)]).outcome == "does not hold"


def test_measure_he_diverges_fixup_trains_growth_is_three_per_block() -> None:
    m = Fixup2019().measure(Context(quick=True, seed=0))
    assert m.standard_diverged == 1.0
    assert m.standard_growth == pytest.approx(PREDICTED, rel=0.05)  # 3^30 = 10^14.3
    for arm in FIXUP:
        assert m.run(arm).growth == pytest.approx(0.0, abs=1e-6)  # identity blocks at init
        assert not m.run(arm).diverged
    assert m.fixup_accuracy >= TRAINED
    assert m.run(STANDARD).steps < 10
    assert m.zero_diverged == 1.0  # zero-init alone diverges too
    assert m.run(ZERO).diverged


def test_quick_run_holds_with_caveat() -> None:
    exp = registry.load(["P-FIXUP2019"])["P-FIXUP2019"]
    assert run(exp, seed=1).verdict.outcome == "holds with caveat"


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    exp = registry.load(["P-FIXUP2019"])["P-FIXUP2019"]
    assert run(exp, quick=False).verdict.outcome == "holds with caveat"
