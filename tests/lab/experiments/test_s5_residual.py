"""S5: plain vs residual ReLU MLPs over depth, and the looks-linear plain net that needs no skip."""

from __future__ import annotations

import statistics

import pytest

from stabletrain.lab import Context
from stabletrain.lab.experiments.s5_residual import (
    LOOKS_LINEAR,
    NEED_GAP,
    SHALLOW_GAP,
    ResidualDepth,
    ResidualNeed,
)

S5 = ResidualNeed()


def _m(deep: float = 0.6, shallow: float = 0.02, gain: float = 0.0) -> ResidualDepth:
    return ResidualDepth(
        deep_gap=deep, shallow_gap=shallow, looks_linear_gain=gain, looks_linear_gap=0.02, steps=100
    )


@pytest.mark.parametrize(
    ("ms", "outcome"),
    [
        ([_m()] * 3, "holds"),  # needed deep, not shallow, and nothing else fixes the plain net
        ([_m(gain=0.6)] * 3, "holds with caveat"),  # the looks-linear init fixes it too
        ([_m(shallow=s) for s in (0.03, 0.06, 0.09)], "holds with caveat"),  # helps already
        ([_m(deep=d) for d in (0.1, 0.3, 0.5)], "inconclusive"),  # 0.3 ± 0.5 straddles 0.2
        ([_m(gain=g) for g in (0.1, 0.3, 0.05)], "inconclusive"),  # the caveat straddles
        ([_m(shallow=s) for s in (0.1, 0.2, 0.3)], "inconclusive"),  # straddles NEED_GAP
        ([_m(deep=0.05)] * 3, "does not hold"),  # the plain net trains as well deep
        ([_m(shallow=0.4)] * 3, "does not hold"),  # strongly needed already at depth 10
    ],
)
def test_decide_on_the_deep_gap_with_the_shallow_and_looks_linear_caveats(
    ms: list[ResidualDepth], outcome: str
) -> None:
    assert S5.decide(ms).outcome == outcome


def test_one_seed_residual_nets_train_deep_where_plain_he_nets_stall() -> None:
    m = S5.measure(Context(quick=True, seed=0))
    assert m.deep_gap >= NEED_GAP
    assert m.shallow_gap < NEED_GAP  # not strongly needed at depth 10 (5 points at 150 steps)
    assert m.looks_linear_gain >= NEED_GAP
    for arm in ("residual", LOOKS_LINEAR):
        assert m.score(arm, 30).accuracy > 0.9
    assert m.score("residual", 10).accuracy > 0.9
    assert m.score("plain", 30).accuracy < 0.6
    # He keeps the plain net's gradient size over depth: the problem is not its size
    assert 0.5 < m.score("plain", 30).grad_ratio < 2.0
    assert m.looks_linear_gap == pytest.approx(
        m.score("residual", 30).accuracy - m.score(LOOKS_LINEAR, 30).accuracy
    )
    assert SHALLOW_GAP < NEED_GAP


@pytest.mark.slow
def test_the_quick_run_holds_with_caveat_on_three_seeds() -> None:
    result = S5.run(Context(quick=True, seed=1))
    assert result.verdict.outcome == "holds with caveat"
    assert result.verdict.seeds == 3


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    ms = S5.measure_all(Context(quick=False))
    assert S5.decide(ms).outcome == "holds with caveat"

    def acc(depth: int) -> float:
        return statistics.fmean(m.score("plain", depth).accuracy for m in ms)

    assert acc(50) < acc(20) < acc(10) + 0.05
