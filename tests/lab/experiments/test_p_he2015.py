"""P-HE2015: a 30-layer plain ReLU MLP stalls under Xavier and trains under He's init."""

from __future__ import annotations

import pytest

from stabletrain.lab import Context, registry
from stabletrain.lab.experiments.p_he2015 import (
    CHANCE,
    STALLED,
    TRAINS,
    He2015,
    HeMeasurements,
)
from tests.lab.experiments._init_checks import run


def _m(xavier: float, he: float) -> HeMeasurements:
    return HeMeasurements(xavier, he, 0.1, 0.5, 1e-5, 0.3)


def test_decide_on_the_intervals_of_both_losses() -> None:
    exp = He2015()
    assert exp.decide([_m(2.30, he) for he in (1.2, 1.3, 1.4)]).outcome == "holds"
    # He below chance but above the trains bound in every seed: a caveat
    slow = [_m(2.30, he) for he in (1.95, 2.0, 2.05)]
    assert exp.decide(slow).outcome == "holds with caveat"
    # He's loss straddles the trains bound (1.73) over the seeds: inconclusive
    straddle = [_m(2.30, he) for he in (1.3, 1.7, 2.1)]
    assert exp.decide(straddle).outcome == "inconclusive"
    # Xavier trains too: it does not stall, so the claim does not hold
    both = [_m(x, 1.3) for x in (1.5, 1.55, 1.6)]
    assert exp.decide(both).outcome == "does not hold"
    assert TRAINS < STALLED < CHANCE


def test_measure_xavier_sits_at_chance_and_he_learns() -> None:
    m = He2015().measure(Context(quick=True, seed=0))
    assert m.xavier_loss == pytest.approx(CHANCE, abs=0.01)
    assert m.xavier_accuracy < 0.15
    assert m.xavier_signal < 1e-3 * m.he_signal  # 2^-15 of the input-dependent signal is left
    assert m.he_loss < TRAINS
    assert m.he_accuracy > 0.35


def test_quick_run_holds() -> None:
    exp = registry.load(["P-HE2015"])["P-HE2015"]
    result = run(exp, seed=1)
    assert result.verdict.outcome == "holds"
    assert result.verdict.seeds == 3


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    exp = registry.load(["P-HE2015"])["P-HE2015"]
    assert run(exp, quick=False).verdict.outcome == "holds"
