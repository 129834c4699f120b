"""``Finding.to_json``: the shallow copy against ``dataclasses.asdict``, the slow reference."""

from __future__ import annotations

import dataclasses
import math

import pytest

from stabletrain.findings import Finding


@pytest.mark.parametrize("value", [0.5, -3.0, math.nan, math.inf, -math.inf])
def test_to_json_is_asdict_with_non_finite_numbers_as_strings(value: float) -> None:
    f = Finding(
        severity="warning",
        layer="blocks.0.fc",
        metric="grad_norm",
        value=value,
        threshold=1e-7,
        message="small",
        fix="stabletrain.init.kaiming_normal_",
        rule="vanishing",
        step=3,
        last_step=9,
        count=4,
    )
    want = dataclasses.asdict(f)
    if not math.isfinite(value):
        want["value"] = str(value)
    assert f.to_json() == want
    assert list(f.to_json()) == [field.name for field in dataclasses.fields(Finding)]
    assert Finding.from_json(f.to_json()).to_json() == want
