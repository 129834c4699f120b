"""P-LSUV2016: LSUV puts every layer at unit std and trains a deep thin ReLU MLP faster."""

from __future__ import annotations

import pytest

from stabletrain.lab import Context, registry
from stabletrain.lab.experiments.p_lsuv2016 import TOL, Lsuv2016, LsuvMeasurements
from tests.lab.experiments._init_checks import run


def _m(deviation: float, ratio: float) -> LsuvMeasurements:
    return LsuvMeasurements(deviation, 0.2, ratio, ratio, 1.0)


def test_decide_on_the_intervals_of_the_std_and_the_speed_ratio() -> None:
    exp = Lsuv2016()
    holds = exp.decide([_m(1e-7, r) for r in (0.5, 0.6, 0.7)])
    assert holds.outcome == "holds"
    assert holds.measured == pytest.approx(0.6)  # the key part, the speed ratio, is reported
    # not faster, but within 25% of the best baseline in every seed: a caveat
    assert exp.decide([_m(1e-7, r) for r in (0.95, 1.0, 1.05)]).outcome == "holds with caveat"
    # the ratio straddles 1.25: inconclusive
    assert exp.decide([_m(1e-7, r) for r in (0.9, 1.25, 1.6)]).outcome == "inconclusive"
    # the std misses the tolerance in every seed: does not hold
    assert exp.decide([_m(d, 0.6) for d in (0.3, 0.31, 0.32)]).outcome == "does not hold"


def test_measure_puts_every_layer_at_unit_std_and_trains_below_chance() -> None:
    m = Lsuv2016().measure(Context(quick=True, seed=0))
    assert len(m.stds) == 21  # 20 hidden layers and the head
    assert m.deviation <= TOL
    assert m.held_out_deviation < 0.5  # close on other rows too
    assert m.best_baseline == "He (MSRA)"
    assert m.lsuv_loss < 1.2  # chance is 2.30
    assert m.speed_ratio == pytest.approx(m.lsuv_loss / m.best_baseline_loss)


def test_quick_run_holds_on_eight_seeds() -> None:
    exp = registry.load(["P-LSUV2016"])["P-LSUV2016"]
    result = run(exp, seed=1)
    assert result.verdict.outcome == "holds"
    assert result.verdict.seeds == 8


@pytest.mark.slow
def test_full_mode_holds() -> None:
    exp = registry.load(["P-LSUV2016"])["P-LSUV2016"]
    assert run(exp, quick=False).verdict.outcome == "holds"
