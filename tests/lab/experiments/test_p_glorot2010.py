"""P-GLOROT2010: standard init shrinks tanh activations and gradients; normalized init does not."""

from __future__ import annotations

import pytest

from stabletrain.lab import Context, registry
from stabletrain.lab.experiments.p_glorot2010 import (
    SAME,
    SHRINKS,
    Glorot2010,
    GlorotMeasurements,
)
from tests.lab.experiments._init_checks import run


def _m(act: float, grad: float, wgrad: float, xact: float, xgrad: float) -> GlorotMeasurements:
    return GlorotMeasurements(act, grad, wgrad, xact, xgrad)


def test_decide_on_the_interval_of_every_ratio() -> None:
    exp = Glorot2010()
    clear = [_m(0.10 + d, 0.09, 0.9, 0.6 + d, 0.6) for d in (0.0, 0.01, 0.02)]
    assert exp.decide(clear).outcome == "holds"
    # the normalized activations only within a factor 4 across layers: a caveat
    weak = [_m(0.1, 0.09, 0.9, 0.3 + d, 0.6) for d in (0.0, 0.01, 0.02)]
    assert exp.decide(weak).outcome == "holds with caveat"
    # the standard activations' shrinkage straddles 0.3 over the seeds: inconclusive
    straddle = [_m(a, 0.09, 0.9, 0.6, 0.6) for a in (0.2, 0.3, 0.4)]
    assert exp.decide(straddle).outcome == "inconclusive"
    # no shrinkage at all: does not hold
    flat = [_m(0.9 + d, 0.09, 0.9, 0.6, 0.6) for d in (0.0, 0.01, 0.02)]
    assert exp.decide(flat).outcome == "does not hold"


def test_measure_matches_one_over_root_three_per_layer() -> None:
    m = Glorot2010().measure(Context(quick=True, seed=0))
    # standard: about 1/sqrt(3) per layer both ways, (1/3)^2 after 4 layers
    assert m.act_drop == pytest.approx(3**-2, rel=0.25)
    assert m.grad_drop == pytest.approx(3**-2, rel=0.25)
    assert m.standard_wgrad_same > 0.8
    assert min(m.normalized_act_same, m.normalized_grad_same) >= SAME
    assert len(m.standard[0]) == len(m.normalized[1]) == 5


def test_quick_run_holds() -> None:
    exp = registry.load(["P-GLOROT2010"])["P-GLOROT2010"]
    result = run(exp, seed=1)
    assert result.verdict.outcome == "holds"
    assert result.verdict.seeds == 3
    assert result.verdict.high is not None
    assert result.verdict.high < SHRINKS


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    exp = registry.load(["P-GLOROT2010"])["P-GLOROT2010"]
    assert run(exp, quick=False).verdict.outcome == "holds"
