"""Verdicts from numbers: both sides of every threshold, the boundary, NaN, bad arguments."""

from __future__ import annotations

import math

import pytest

from stabletrain.lab import Verdict, verdicts
from stabletrain.lab.verdicts import at_least, at_most, close_to, weakest

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("measured", "outcome"),
    [
        (0.0, "holds"),
        (0.049, "holds"),
        (0.05, "holds"),  # the bound itself holds
        (0.0500001, "holds with caveat"),
        (0.1, "holds with caveat"),  # the caveat bound itself
        (0.1000001, "does not hold"),
        (INF, "does not hold"),
        (-INF, "holds"),
    ],
)
def test_at_most_with_caveat(measured: float, outcome: str) -> None:
    v = at_most(measured, 0.05, caveat=0.1)
    assert v.outcome == outcome
    assert (v.measured, v.threshold) == (measured, 0.05)
    assert v.rule == "measured <= 0.05 (caveat <= 0.1)"


def test_at_most_without_caveat_has_two_outcomes() -> None:
    assert at_most(1, 1).outcome == "holds"
    assert at_most(1.0000001, 1).outcome == "does not hold"
    assert at_most(1.0000001, 1).rule == "measured <= 1"


@pytest.mark.parametrize(
    ("measured", "outcome"),
    [
        (3.0, "holds"),
        (2.0, "holds"),  # the bound itself holds
        (1.9999999, "holds with caveat"),
        (1.2, "holds with caveat"),
        (1.1999999, "does not hold"),
        (-INF, "does not hold"),
    ],
)
def test_at_least_with_caveat(measured: float, outcome: str) -> None:
    v = at_least(measured, 2.0, caveat=1.2)
    assert v.outcome == outcome
    assert (v.measured, v.threshold) == (measured, 2.0)
    assert v.rule == "measured >= 2 (caveat >= 1.2)"


@pytest.mark.parametrize(
    ("measured", "outcome"),
    [
        (1 / 3, "holds"),
        (0.3, "holds"),  # error 0.1, just inside 0.1001
        (0.36, "holds"),  # error 0.08
        (0.37, "holds with caveat"),  # error 0.11
        (0.4, "holds with caveat"),  # error 0.2
        (0.2, "holds with caveat"),  # error 0.4, the caveat tolerance
        (0.19, "does not hold"),
        (0.5, "does not hold"),
        (-1 / 3, "does not hold"),  # the sign matters
    ],
)
def test_close_to_relative_error(measured: float, outcome: str) -> None:
    v = close_to(measured, 1 / 3, rel_tol=0.1001, caveat_rel_tol=0.4001)
    assert v.outcome == outcome
    assert v.measured == pytest.approx(abs(measured - 1 / 3) * 3)
    assert v.threshold == 0.1001


def test_close_to_boundary_is_inclusive() -> None:
    assert close_to(1.5, 1.0, rel_tol=0.5).outcome == "holds"
    assert close_to(1.5000001, 1.0, rel_tol=0.5).outcome == "does not hold"
    assert close_to(1.5000001, 1.0, rel_tol=0.5, caveat_rel_tol=0.6).outcome == (
        "holds with caveat"
    )
    assert close_to(1.55, 1.0, rel_tol=0.5, caveat_rel_tol=0.6).outcome == "holds with caveat"


def test_close_to_zero_target_uses_the_absolute_error() -> None:
    assert close_to(1e-9, 0.0, rel_tol=1e-8).outcome == "holds"
    v = close_to(-0.02, 0.0, rel_tol=0.01)
    assert (v.outcome, v.measured) == ("does not hold", 0.02)


@pytest.mark.parametrize(
    "verdict",
    [
        lambda: at_most(NAN, 1.0),
        lambda: at_most(NAN, 1.0, caveat=INF),
        lambda: at_least(NAN, 1.0),
        lambda: at_least(NAN, 1.0, caveat=-INF),
        lambda: close_to(NAN, 1.0, rel_tol=0.1),
        lambda: close_to(NAN, 1.0, rel_tol=0.1, caveat_rel_tol=INF),
        lambda: close_to(1.0, NAN, rel_tol=0.1, caveat_rel_tol=INF),
        lambda: close_to(INF, 1.0, rel_tol=0.1, caveat_rel_tol=1e300),
    ],
)
def test_nan_never_holds(verdict: object) -> None:
    assert callable(verdict)
    assert verdict().outcome == "does not hold"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: at_most(0.1, 0.05, caveat=0.01), ValueError, "caveat"),
        (lambda: at_least(0.1, 0.05, caveat=0.5), ValueError, "caveat"),
        (lambda: close_to(1.0, 1.0, rel_tol=-0.1), ValueError, "rel_tol"),
        (lambda: close_to(1.0, 1.0, rel_tol=0.2, caveat_rel_tol=0.1), ValueError, "caveat"),
        (lambda: at_most("0.1", 1.0), TypeError, "measured"),
        (lambda: at_most(True, 1.0), TypeError, "measured"),
        (lambda: at_least(1.0, None), TypeError, "bound"),
        (lambda: at_least(1.0, 2.0, caveat="1"), TypeError, "caveat"),
        (lambda: close_to(1.0, "1", rel_tol=0.1), TypeError, "target"),
        (lambda: close_to(1.0, 1.0, rel_tol=None), TypeError, "rel_tol"),
        (lambda: weakest([]), ValueError, "at least one"),
    ],
)
def test_bad_arguments_raise_and_say_which(call: object, error: type, match: str) -> None:
    assert callable(call)
    with pytest.raises(error, match=match):
        call()


def test_weakest_picks_the_weakest_outcome() -> None:
    holds = Verdict("holds", 1.0, 2.0, "a")
    caveat = Verdict("holds with caveat", 3.0, 2.0, "b")
    fails = Verdict("does not hold", 9.0, 2.0, "c")
    assert weakest([holds]) is holds
    assert weakest([holds, caveat, holds]) is caveat
    assert weakest([caveat, fails, holds]) is fails
    assert weakest((holds, holds)).outcome == "holds"


def test_verdict_rejects_an_unknown_outcome() -> None:
    with pytest.raises(ValueError, match="'maybe' is not one of"):
        Verdict("maybe", 1.0, 1.0, "")


def _v(outcome: str) -> Verdict:
    return Verdict(outcome, 0.5, 1.0, "m <= 1", low=0.4, high=0.6, seeds=3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("strict", "partial", "expected"),
    [
        ("holds", "does not hold", "holds"),
        ("does not hold", "holds", "holds with caveat"),
        ("inconclusive", "holds", "holds with caveat"),
        ("does not hold", "inconclusive", "inconclusive"),
        ("inconclusive", "does not hold", "inconclusive"),
        ("does not hold", "holds with caveat", "does not hold"),  # the weaker part must hold
        ("does not hold", "does not hold", "does not hold"),
    ],
)
def test_holds_or_partly(strict: str, partial: str, expected: str) -> None:
    out = verdicts.holds_or_partly(_v(strict), _v(partial))
    assert out.outcome == expected
    assert (out.measured, out.low, out.high, out.seeds) == (0.5, 0.4, 0.6, 3)  # strict's numbers


@pytest.mark.parametrize(
    ("main", "applies", "expected"),
    [
        ("holds", "holds", "holds with caveat"),
        ("holds", "holds with caveat", "holds with caveat"),
        ("holds", "inconclusive", "inconclusive"),  # the caveat is unsure: so is the claim
        ("holds", "does not hold", "holds"),
        ("does not hold", "holds", "does not hold"),
        ("inconclusive", "does not hold", "inconclusive"),
    ],
)
def test_with_caveat(main: str, applies: str, expected: str) -> None:
    out = verdicts.with_caveat(_v(main), _v(applies), "why")
    assert out.outcome == expected
    assert ("why" in out.rule) == (out.outcome != main)


@pytest.mark.parametrize(
    ("main", "part", "expected"),
    [
        ("holds", "holds", "holds"),
        ("holds", "holds with caveat", "holds with caveat"),
        ("holds", "inconclusive", "inconclusive"),
        ("holds", "does not hold", "does not hold"),
        ("holds with caveat", "does not hold", "does not hold"),
        ("does not hold", "holds with caveat", "does not hold"),
    ],
)
def test_weakened_by(main: str, part: str, expected: str) -> None:
    assert verdicts.weakened_by(_v(main), _v(part), "why").outcome == expected
