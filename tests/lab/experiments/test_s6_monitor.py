"""S6: the monitor flags each injected problem on the first step its rule can, not healthy runs."""

from __future__ import annotations

import pytest

from stabletrain.lab import Context
from stabletrain.lab.experiments.s6_monitor import (
    DEAD_WINDOW,
    MonitorFlags,
    MonitorFlagsProblems,
)

S6 = MonitorFlagsProblems()


def _m(detected: float = 1.0, alarms: float = 0.0, lag: float = 0.0) -> MonitorFlags:
    return MonitorFlags(detected=detected, false_alarms=alarms, lag=lag, detected_minimal=0.0)


@pytest.mark.parametrize(
    ("ms", "outcome"),
    [
        ([_m()] * 3, "holds"),
        ([_m(detected=d) for d in (1.0, 0.8, 1.0)], "inconclusive"),  # one seed misses one
        ([_m(alarms=a) for a in (0.0, 0.5, 0.0)], "inconclusive"),  # one seed's false alarm
        ([_m(lag=lag) for lag in (0.0, 2.0, 0.0)], "inconclusive"),  # one seed flags late
        ([_m(detected=0.6)] * 3, "does not hold"),
        ([_m(alarms=0.5)] * 3, "does not hold"),
        ([_m(detected=0.8, lag=float("inf"))] * 3, "does not hold"),  # a problem never flagged
    ],
)
def test_decide_needs_every_problem_flagged_early_and_no_false_alarm_on_every_seed(
    ms: list[MonitorFlags], outcome: str
) -> None:
    assert S6.decide(ms).outcome == outcome


def test_one_seed_flags_each_problem_on_its_first_possible_step() -> None:
    m = S6.measure(Context(quick=True, seed=0))
    assert (m.detected, m.false_alarms, m.lag) == (1.0, 0.0, 0.0)
    full = {f.problem: f for f in m.flaggings if f.preset == "full" and f.problem != "healthy"}
    # init problems on step 1, a NaN on its own step, dead units when the window is full
    for problem in ("vanishing", "exploding", "symmetric units"):
        assert full[problem].first_step == 1
    nan = full["nonfinite"]
    assert nan.first_step == int(nan.variant.rsplit(" ", 1)[1])
    assert full["dead units"].first_step == DEAD_WINDOW
    healthy = [f for f in m.flaggings if f.problem == "healthy"]
    assert healthy
    assert all(not f.rules for f in healthy)
    # gradient norms alone see vanishing, exploding and NaN, not dead or symmetric units
    minimal = {f.problem: f.flagged for f in m.flaggings if f.preset == "minimal"}
    assert all(minimal[p] for p in ("vanishing", "exploding", "nonfinite"))
    assert not minimal["dead units"]
    assert not minimal["symmetric units"]
    assert m.detected_minimal == 0.0


def test_the_quick_run_holds_on_three_seeds() -> None:
    result = S6.run(Context(quick=True, seed=1))
    assert result.verdict.outcome == "holds"
    assert result.verdict.seeds == 3
    assert "Claim" in result.explanation


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    assert S6.run(Context(quick=False)).verdict.outcome == "holds"
