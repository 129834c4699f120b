"""I6 (Xavier + tanh), I7 (He + ReLU, fan modes) and I11 (depth makes init matter)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from stabletrain.lab import Context
from stabletrain.lab.experiment import REGISTRY
from stabletrain.lab.experiments.i6_i7_i11_depth import (
    BAD,
    DRIFT,
    GOOD,
    SHALLOW_GAP,
    DepthMakesInitMatter,
    DepthSensitivity,
    HeDepth,
    HeOverDepth,
    XavierDepth,
    XavierOverDepth,
)
from tests.lab.experiments._init_checks import run

XAVIER = XavierDepth(0.97, 0.98, 0.97, 0.98, 0.58, 0.25, 30, 256)
HE = HeDepth(1.0, 1.0, 1.0, 1.0, 0.707, 1.0, 2.8, 0.35, 1.0, 30, 256)


@pytest.mark.parametrize(
    ("forwards", "outcome"),
    [
        ([0.97], "holds"),
        ([0.95, 0.97, 0.99], "holds"),
        ([0.6], "does not hold"),  # the standard init's decline
        ([0.8, 0.9, 1.0], "inconclusive"),  # 0.9 ± 0.25 straddles 1/1.15
        ([1.3], "does not hold"),
    ],
)
def test_i6_holds_inside_the_band_only(forwards: list[float], outcome: str) -> None:
    ms = [replace(XAVIER, xavier_normal_forward=f) for f in forwards]
    assert XavierOverDepth().decide(ms).outcome == outcome


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({}, "holds"),
        ({"xavier_forward": 0.8}, "does not hold"),  # not halving: 0.8 vs 0.707 ± 5%
        ({"he_uniform_backward": 1.2}, "does not hold"),
        ({"fan_out_backward": 2.5}, "does not hold"),  # the preserved direction moved 2.5x
    ],
)
def test_i7_needs_he_in_the_band_xavier_halving_and_the_fan_modes(
    changes: dict[str, float], outcome: str
) -> None:
    m = replace(HE, **changes)  # type: ignore[arg-type]
    assert HeOverDepth().decide([m]).outcome == outcome


def test_i7_is_inconclusive_when_the_fan_mode_interval_straddles_the_band() -> None:
    ms = [replace(HE, fan_in_forward=f) for f in (1.5, 2.0, 2.5)]  # 2 ± 1.24 straddles 2
    assert HeOverDepth().decide(ms).outcome == "inconclusive"


def test_xavier_keeps_tanh_signals_roughly_constant_and_standard_init_does_not() -> None:
    m = XavierOverDepth().measure(Context(quick=True, seed=1))
    for f in (m.xavier_uniform_forward, m.xavier_uniform_backward, m.xavier_normal_forward):
        assert 1 / DRIFT <= f <= DRIFT
    # U(±1/sqrt(n)) has gain 1/sqrt(3): tanh is linear near 0, so 0.577 per layer
    assert m.standard_forward == pytest.approx(3**-0.5, rel=0.03)
    # the sigmoid is outside the derivation: its gradient vanishes (slope 1/4 per layer)
    assert m.sigmoid_backward == pytest.approx(0.25, rel=0.1)
    # tanh's slow decline follows the power law q_l = 1/(1/q_1 + 2(l - 1)) within 15%
    xu = m.signals("Xavier uniform, tanh")
    assert len(xu) == m.depth == 30
    q1 = xu[0].forward_std ** 2
    for layer in (2, 5, 10, 20, 30):
        predicted = (1.0 / (1.0 / q1 + 2.0 * (layer - 1))) ** 0.5
        assert xu[layer - 1].forward_std == pytest.approx(predicted, rel=0.15)


def test_he_keeps_relu_variance_and_xavier_halves_it_every_layer() -> None:
    m = HeOverDepth().measure(Context(quick=True, seed=1))
    assert m.xavier_forward == pytest.approx(2**-0.5, rel=0.05)
    assert m.he_normal_forward == pytest.approx(1.0, abs=0.05)
    assert m.he_uniform_backward == pytest.approx(1.0, abs=0.05)
    # the unpreserved direction moves toward sqrt(1024 / 128) = 2.83; the preserved one stays
    assert m.fan_in_backward > 1.5
    assert m.fan_out_forward < 1 / 1.5
    assert abs(math.log(m.fan_in_forward)) < abs(math.log(m.fan_in_backward))
    assert abs(math.log(m.fan_out_backward)) < abs(math.log(m.fan_out_forward))


@pytest.mark.parametrize("claim", ["I6", "I7"])
def test_the_quick_run_holds(claim: str) -> None:
    result = run(REGISTRY[claim])
    assert result.verdict.outcome == "holds"
    assert result.verdict.seeds == 1  # pooled over depth and width (see the class docstring)


@pytest.mark.parametrize(
    ("shallow", "deep", "outcome"),
    [
        ([0.01, -0.01, 0.02], [0.8, 0.85, 0.76], "holds"),
        ([0.08, 0.1, 0.12], [0.8, 0.85, 0.76], "holds with caveat"),  # init matters shallow too
        ([0.01, -0.01, 0.02], [0.3, 0.35, 0.4], "holds with caveat"),  # a smaller deep gap
        ([0.02, 0.03, 0.08], [0.8, 0.85, 0.76], "holds with caveat"),  # 0.043 ± 0.08: caveat
        ([0.01, 0.01, 0.01], [0.1, 0.3, 0.5], "inconclusive"),  # 0.3 ± 0.5 straddles 0.2
        ([0.01, 0.01, 0.01], [0.0, 0.01, -0.01], "does not hold"),
    ],
)
def test_i11_needs_a_small_shallow_gap_and_a_large_deep_one(
    shallow: list[float], deep: list[float], outcome: str
) -> None:
    ms = [
        DepthSensitivity(shallow_gap=a, deep_gap=b, steps=300)
        for a, b in zip(shallow, deep, strict=True)
    ]
    assert DepthMakesInitMatter().decide(ms).outcome == outcome


def test_init_matters_more_with_depth() -> None:
    m = DepthMakesInitMatter().measure(Context(quick=True, seed=1))
    assert m.depths == (2, 16)
    assert abs(m.shallow_gap) <= SHALLOW_GAP  # two layers train from either init
    assert m.run_of(GOOD, 16).accuracy > 0.8
    assert m.run_of(BAD, 16).accuracy < 0.2  # chance is 0.1: the signal shrinks 0.41x per layer
    assert m.run_of(BAD, 16).step_below_one is None
    assert m.deep_gap == pytest.approx(m.run_of(GOOD, 16).accuracy - m.run_of(BAD, 16).accuracy)


@pytest.mark.slow
def test_full_mode_gives_the_same_verdicts() -> None:
    for claim in ("I6", "I7", "I11"):
        assert run(REGISTRY[claim], quick=False).verdict.outcome == "holds"


@pytest.mark.slow
def test_the_quick_run_of_i11_holds_on_three_seeds() -> None:  # ~6 s of CPU, more when loaded
    result = run(REGISTRY["I11"])
    assert (result.verdict.outcome, result.verdict.seeds) == ("holds", 3)
