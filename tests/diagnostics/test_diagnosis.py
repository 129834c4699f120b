"""Diagnosis: JSON round trip with the diagnosis before a fix, and the terminal table."""

from __future__ import annotations

import json
import math

from stabletrain._render import render_text
from stabletrain.diagnostics import Diagnosis, LayerStats
from stabletrain.findings import Finding


def _diagnosis(gain: float) -> Diagnosis:
    layer = LayerStats(
        name="blocks.0[fc]",
        kind="Linear",
        depth=0,
        activation="relu",
        out_std=2.0,
        predicted_out_std=1.0,
        grad_out_std=0.5,
        predicted_grad_out_std=0.5,
        zero_fraction=0.5,
        histogram=(0.25, 0.5, 0.25),
    )
    finding = Finding(
        severity="warning",
        layer="blocks.0[fc]",
        metric="out_std",
        value=2.0,
        threshold=1.0,
        message="E[x²] is [bold]2[/]",
        fix="fix",
    )
    return Diagnosis(
        model="Net",
        layers=(layer,),
        forward_gain=gain,
        backward_gain=0.5,
        histogram_edges=(-4.0, -1.0, 1.0, 4.0),
        findings=[finding],
    )


def test_the_diagnosis_before_a_fix_round_trips_through_json() -> None:
    after = _diagnosis(1.0)
    after.before = _diagnosis(0.001)
    back = Diagnosis.from_dict(json.loads(after.to_json()))
    assert back.before is not None
    assert back.before.forward_gain == 0.001
    assert back.before.before is None
    assert back.layers[0].histogram == (0.25, 0.5, 0.25)
    assert math.isnan(back.layers[0].saturated_fraction)


def test_data_without_before_reads_as_none() -> None:
    data = _diagnosis(1.0).to_dict()
    del data["before"]
    assert Diagnosis.from_dict(data).before is None


def test_the_table_shows_ratios_both_gains_and_text_verbatim() -> None:
    after = _diagnosis(1.0)
    after.before = _diagnosis(0.001)
    text = render_text(after, width=160)  # wide: every column shown
    assert "blocks.0[fc]" in text  # names and messages are not read as markup
    assert "E[x²] is [bold]2[/]" in text
    assert "before the fix: forward gain 0.001, backward gain 0.5" in text
    row = next(line for line in text.splitlines() if "blocks.0[fc]" in line and "Linear" in line)
    assert "50%" in row
