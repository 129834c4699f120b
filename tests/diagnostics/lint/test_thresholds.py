"""LintThresholds: defaults as documented, every field validated with a clear error."""

from __future__ import annotations

import dataclasses

import pytest

from stabletrain.diagnostics.lint import LintThresholds


def test_defaults_are_the_documented_ones() -> None:
    t = LintThresholds()
    assert (t.plain_depth, t.saturating_depth, t.post_ln_sublayers) == (20, 10, 12)
    assert (t.init_ratio_low, t.init_ratio_high, t.forget_bias_min) == (0.5, 2.0, 0.5)


def test_thresholds_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        LintThresholds().plain_depth = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "error", "match"),
    [
        ("plain_depth", 0, ValueError, "plain_depth must be >= 1"),
        ("saturating_depth", 2.5, TypeError, "saturating_depth must be an int"),
        ("post_ln_sublayers", -1, ValueError, "post_ln_sublayers must be >= 1"),
        ("init_ratio_low", 0.0, ValueError, "init_ratio_low must be > 0"),
        ("init_ratio_high", float("inf"), ValueError, "init_ratio_high must be finite"),
        ("init_ratio_low", 3.0, ValueError, r"init_ratio_low \(3.0\) must be below"),
        ("init_ratio_high", 0.9, ValueError, "must contain 1"),
        ("forget_bias_min", "1", TypeError, "forget_bias_min must be a real number"),
    ],
)
def test_bad_thresholds_raise_naming_the_field(
    field: str, value: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        LintThresholds(**{field: value})  # type: ignore[arg-type]
