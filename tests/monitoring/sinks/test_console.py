"""Console sink: a table of the layers furthest from the median gradient norm, on schedule."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from stabletrain.monitoring import ConsoleSink, Row, every


def rows(step: int) -> list[Row]:
    return [
        Row(step, "ok1", "grad_norm", 1.0),
        Row(step, "ok2", "grad_norm", 2.0),
        Row(step, "tiny", "grad_norm", 1e-6),
        Row(step, "nan", "grad_norm", math.nan),
        Row(step, "nan", "grad_nonfinite", 4.0),
        Row(step, None, "loss", 0.5),
    ]


def test_the_worst_layers_come_first_non_finite_before_tiny() -> None:
    out = io.StringIO()
    ConsoleSink(every(1), top=2, console=Console(file=out, width=120)).write(1, rows(1))
    text = out.getvalue()
    assert "loss 0.5" in text
    assert text.index("nan") < text.index("tiny")
    assert "ok1" not in text
    assert "ok2" not in text


def test_it_prints_only_on_its_schedule() -> None:
    out = io.StringIO()
    sink = ConsoleSink(every(2), console=Console(file=out))
    sink.write(1, rows(1))
    assert out.getvalue() == ""
    sink.write(2, rows(2))
    assert "step 2" in out.getvalue()


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="top"):
        ConsoleSink(top=0)
    with pytest.raises(TypeError, match="Console"):
        ConsoleSink(console="stderr")  # type: ignore[arg-type]


def test_the_table_keeps_long_layer_names_whole_at_80_columns() -> None:
    names = [f"model.layers.{i}.self_attn.q_proj" for i in range(3)]
    out = io.StringIO()
    sink = ConsoleSink(every(1), top=3, console=Console(file=out, width=80))
    metrics = ("grad_norm", "weight_norm", "update_ratio", "act_std", "dead_fraction")
    sink.write(1, [Row(1, n, m, 0.5 + i) for i, n in enumerate(names) for m in metrics])
    text = out.getvalue()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    assert all(name in text for name in names)
    assert "…" not in text
