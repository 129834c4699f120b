"""P-SAXE2014: orthogonal deep linear nets learn in nearly depth-independent time; Gaussian not."""

from __future__ import annotations

import pytest

from stabletrain.lab import Context, registry
from stabletrain.lab.experiments.p_saxe2014 import (
    GAUSS,
    ORTH,
    Saxe2014,
    SaxeMeasurements,
    _steps_to_criterion,
    _task,
)
from tests.lab.experiments._init_checks import run


def _m(orth: float, gauss: float) -> SaxeMeasurements:
    return SaxeMeasurements(orth, gauss)


def test_decide_on_the_intervals_of_both_growth_factors() -> None:
    exp = Saxe2014()
    assert exp.decide([_m(o, 2.5) for o in (1.05, 1.1, 1.15)]).outcome == "holds"
    # orthogonal grows, but below linear in depth: a caveat
    assert exp.decide([_m(o, 2.5) for o in (1.6, 1.65, 1.7)]).outcome == "holds with caveat"
    # the Gaussian's growth straddles the caveat bound sqrt(2): inconclusive
    straddle = [_m(1.1, g) for g in (1.0, 1.4, 1.8)]
    assert exp.decide(straddle).outcome == "inconclusive"
    # orthogonal slows at least linearly: does not hold
    assert exp.decide([_m(o, 2.5) for o in (2.5, 2.6, 2.7)]).outcome == "does not hold"


def test_the_batched_grid_gives_each_learning_rate_its_own_run() -> None:
    ctx = Context(quick=True, seed=0)
    x, y = _task(ctx)
    # a tiny lr never reaches the criterion (the cap), a huge one blows up (None)
    times = _steps_to_criterion(ctx, x, y, 4, "orthogonal", (0.01, 11.3, 200.0), 40)
    assert times[0] == 40
    assert times[1] is not None
    assert times[1] < 40
    assert times[2] is None
    alone = _steps_to_criterion(ctx, x, y, 4, "orthogonal", (11.3,), 40)
    assert alone == [times[1]]  # advancing together does not change a run


def test_measure_orthogonal_is_flat_past_depth_8_and_gaussian_stalls() -> None:
    m = Saxe2014().measure(Context(quick=True, seed=0))
    assert all(m.steps(ORTH, d) < 100 for d in (4, 8, 16, 32))
    assert m.steps(ORTH, 4) < m.steps(GAUSS, 4) < m.cap
    assert m.steps(GAUSS, 16) == m.cap  # never reached
    assert m.orthogonal_growth == pytest.approx(1.1, abs=0.2)
    assert m.gaussian_growth >= 2.0


def test_quick_run_holds() -> None:
    exp = registry.load(["P-SAXE2014"])["P-SAXE2014"]
    assert run(exp, seed=1).verdict.outcome == "holds"


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    exp = registry.load(["P-SAXE2014"])["P-SAXE2014"]
    assert run(exp, quick=False).verdict.outcome == "holds"
