"""I3 (bad init scales vanish, explode or saturate) and I4 (standard init: 1/3 at layer 1 only)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stabletrain.lab import Context
from stabletrain.lab.experiment import REGISTRY
from stabletrain.lab.experiments.i3_i4_scale import (
    DRIFT,
    I4_DEPTH,
    InitScale,
    ScaleCheck,
    StandardInit,
    StandardInitDepth,
)
from tests.lab.experiments._init_checks import run

SCALE = ScaleCheck(0.16, 0.0, 0.1, 10.5, 0.86, 0.67, 1.23, 20)
STANDARD = StandardInit(0.333, 7e-25, 0.0, 0.577)


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({}, "holds"),
        ({"small_tanh_forward": 0.95}, "does not hold"),  # a small init that keeps the signal
        ({"large_sigmoid_saturated": 0.3}, "does not hold"),
        ({"least_backward_drift": 1.05}, "does not hold"),  # one bad init stays in the band
    ],
)
def test_i3_needs_every_bad_init_to_fail(changes: dict[str, float], outcome: str) -> None:
    m = replace(SCALE, **changes)  # type: ignore[arg-type]
    assert InitScale().decide([m, m, m]).outcome == outcome


def test_i3_is_inconclusive_when_the_closest_margin_straddles_the_band() -> None:
    ms = [replace(SCALE, least_backward_drift=d) for d in (1.1, 1.2, 1.3)]  # 1.2 ± 0.25
    assert InitScale().decide(ms).outcome == "inconclusive"


@pytest.mark.parametrize(
    ("layer1", "deep", "outcome"),
    [
        ([0.333], [7e-25], "does not hold"),  # today's measurement: only layer 1 is right
        ([0.333], [0.1], "holds with caveat"),  # the right order of magnitude at depth
        ([0.333], [0.32], "holds"),
        # 0.033 ± 0.063 at depth: a relative error of 0.71 to 1.09 straddles the 90% caveat
        ([0.333, 0.333, 0.333], [0.01, 0.03, 0.06], "inconclusive"),
        ([0.333, 0.333, 0.333], [0.2, 0.3, 0.4], "holds with caveat"),  # 0.3 ± 0.25
        ([0.5], [0.32], "does not hold"),  # layer 1 already wrong
    ],
)
def test_i4_needs_one_third_at_layer_one_and_at_depth(
    layer1: list[float], deep: list[float], outcome: str
) -> None:
    ms = [
        replace(STANDARD, layer1_variance=a, deep_variance=b)
        for a, b in zip(layer1, deep, strict=True)
    ]
    assert StandardInitDepth().decide(ms).outcome == outcome


def test_too_small_and_too_large_init_vanish_explode_or_saturate() -> None:
    m = InitScale().measure(Context(quick=True, seed=1))
    # small N(0, 0.01²), width 256: sqrt(256)·0.01 = 0.16 per layer in the linear regime
    assert m.small_tanh_forward == pytest.approx(0.16, rel=0.05)
    # ReLU keeps half the variance: 0.16 / sqrt(2) = 0.113, and 16 / sqrt(2) = 11.3 when large
    assert m.small_relu_forward == pytest.approx(0.113, rel=0.1)
    assert m.large_relu_forward == pytest.approx(11.3, rel=0.1)
    assert m.large_tanh_saturated > 0.5
    assert m.least_backward_drift > DRIFT
    # the controls do not drift: the thresholds separate good from bad init
    for label, activation in (("Xavier", "tanh"), ("He", "relu")):
        control = m.profile(label, activation)
        assert 1 / DRIFT < control.forward_factor < DRIFT
        assert 1 / DRIFT < control.backward_factor < DRIFT
    assert len(m.profiles) == 8
    assert all(len(p.signals) == m.depth == 20 for p in m.profiles)


def test_standard_init_gives_one_third_at_layer_one_and_vanishes_with_depth() -> None:
    m = StandardInitDepth().measure(Context(quick=True, seed=1))
    assert len(m.variances) == I4_DEPTH
    assert m.layer1_variance == pytest.approx(1 / 3, rel=0.05)
    assert m.variances[9] ** 0.5 == pytest.approx(0.0030, rel=0.2)  # the project's known number
    assert m.deep_variance < 1e-20  # off by ~24 orders of magnitude at depth 50
    assert m.per_layer == pytest.approx(3**-0.5, rel=0.02)  # tanh linear near 0: gain 1/sqrt(3)


def test_the_quick_runs_give_their_verdicts() -> None:
    i3 = run(REGISTRY["I3"])
    assert (i3.verdict.outcome, i3.verdict.seeds) == ("holds", 3)
    i4 = run(REGISTRY["I4"])
    assert (i4.verdict.outcome, i4.verdict.seeds) == ("does not hold", 1)


@pytest.mark.slow
def test_full_mode_gives_the_same_verdicts() -> None:
    assert run(REGISTRY["I3"], quick=False).verdict.outcome == "holds"
    assert run(REGISTRY["I4"], quick=False).verdict.outcome == "does not hold"
