"""Tables that fit the terminal: columns give way by priority, names stay whole, prose wraps."""

from __future__ import annotations

import pytest
from rich.cells import cell_len
from rich.text import Text

from stabletrain._fit import Col, FitTable
from stabletrain._render import render_text

NAMES = [f"model.layers.{i}.self_attn.q_proj" for i in range(3)]
COLUMNS = [
    Col("layer", justify="left", key=True),
    Col("kind", justify="left", drop=2),
    Col("out std"),
    Col("predicted", drop=3),
    Col("zero%", drop=1),
]


def _table() -> FitTable:
    return FitTable(COLUMNS, [[n, "Linear", "0.0213", "0.0208", "0%"] for n in NAMES])


def test_a_wide_terminal_shows_every_column_boxed() -> None:
    text = render_text(_table(), width=160)
    assert all(h in text for h in ("kind", "out std", "predicted", "zero%"))
    assert "┃" in text


def test_columns_give_way_in_priority_order_and_names_stay_whole() -> None:
    # layer (31) + kind + out std + zero% fits 60 columns compactly; "predicted" (drop 3) goes first
    text = render_text(_table(), width=60)
    assert "predicted" not in text
    assert all(h in text for h in ("kind", "out std", "zero%"))
    assert all(name in text for name in NAMES)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 60


def test_a_name_wider_than_the_terminal_gets_lines_of_its_own_folded_whole() -> None:
    text = render_text(_table(), width=30)
    lines = [line.rstrip() for line in text.splitlines()]
    for name in NAMES:  # 31 characters at 30 columns: folded onto a second line, nothing cut
        at = lines.index(name[:30])
        assert lines[at] + lines[at + 1] == name
    assert "0.0213" in text  # the kept number still shows, under its header
    assert "…" not in text


@pytest.mark.parametrize("width", [40, 60, 80])
def test_prose_wraps_at_the_full_width_never_one_word_per_line(width: int) -> None:
    message = " ".join(["the gradient norm shrinks by a factor below one per layer"] * 4)
    cols = [
        Col("severity", justify="left"),
        Col("layer", justify="left", key=True),
        Col("what", justify="left", wrap=True, short=""),
        Col("fix", justify="left", wrap=True),
    ]
    rows = [["warning", NAMES[0], message, "stabletrain.auto_init(model, x)"]]
    text = render_text(FitTable(cols, rows), width=width)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert NAMES[0] in text
    assert max(len(line) for line in text.splitlines()) <= width
    prose = [line for line in lines if "gradient" in line or "factor" in line]
    assert min(len(line.split()) for line in prose[:-1]) >= 4  # no one-word lines


def test_a_row_of_the_wrong_length_names_the_counts() -> None:
    with pytest.raises(ValueError, match="2 cells for 5 columns"):
        FitTable(COLUMNS, [[Text("a"), "b"]])


@pytest.mark.parametrize("width", [160, 30])
def test_titles_and_names_show_as_written_at_any_width(width: int) -> None:
    table = FitTable(
        COLUMNS, [["blocks[0].fc", "Linear", "1", "1", "0%"]], title="model [bold]x[/]"
    )
    text = render_text(table, width=width)
    assert "model [bold]x[/]" in text
    assert "blocks[0].fc" in text


def test_wide_characters_count_as_two_columns() -> None:
    name = "层.0.注意力.查询"  # 11 characters, 18 terminal cells
    cols = [Col("layer", justify="left", key=True), Col("std")]
    text = render_text(FitTable(cols, [[name, "0.5"]]), width=40)
    assert name in text
    assert all(cell_len(line.rstrip()) <= 40 for line in text.splitlines())
