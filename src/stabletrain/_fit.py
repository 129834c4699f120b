"""Tables that fit the terminal: columns dropped by priority, names never cut.

A :class:`FitTable` is a rich renderable that picks its layout when it is drawn, from the width
the console offers (the terminal, ``COLUMNS``, or 80 in a pipe):

1. every column, boxed, when it fits;
2. otherwise a compact box (no outer edges) and, one at a time, the columns with the highest
   ``drop`` level removed, until the rest fits at its natural width;
3. when even the kept columns do not fit, each row becomes a block: the name on a line of its
   own, the numbers on the next line (aligned across rows under one header), and prose columns
   (``wrap=True``) as indented paragraphs that wrap at the full width.

A ``key`` column (a layer or parameter name) is never truncated or wrapped at a dot: a name
longer than the terminal is folded onto a second line rather than becoming an ambiguous ``lin…``.
Prose columns wrap at word boundaries but are never narrower than ``min_width``, so a finding
never reads one word per line.

Example:
    >>> from stabletrain._render import render_text
    >>> cols = [Col("layer", key=True, justify="left"), Col("std"), Col("zero%", drop=1)]
    >>> t = FitTable(cols, [["model.layers.0.self_attn.q_proj", "0.02", "0%"]])
    >>> "model.layers.0.self_attn.q_proj" in render_text(t, width=40)
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

__all__ = ["Cell", "Col", "FitTable"]

Cell = str | Text
"""A cell: a string with rich markup, or a :class:`~rich.text.Text` (shown as it is)."""


@dataclass(frozen=True)
class Col:
    """One column of a :class:`FitTable`.

    Attributes:
        header: the column's title.
        justify: ``"left"`` for names and prose, ``"right"`` for numbers.
        drop: 0 keeps the column at any width; when the table is too wide, the column with
            the highest level is dropped first (ties: the rightmost first).
        key: the row's name: shown whole (never cut, never wrapped).
        wrap: prose that wraps at word boundaries, at least ``min_width`` columns (and its
            longest word) wide.
        min_width: the narrowest a ``wrap`` column may become.
        short: the header in the compact layout (default ``header``).
    """

    header: str
    justify: Literal["left", "right"] = "right"
    drop: int = 0
    key: bool = False
    wrap: bool = False
    min_width: int = 30
    short: str | None = None


def _text(cell: Cell) -> Text:
    return cell.copy() if isinstance(cell, Text) else Text.from_markup(cell)


class FitTable:
    """A table that fits the width it is drawn at (see the module docstring).

    Args:
        columns: the columns, in order.
        rows: one sequence of cells per row, one cell per column.
        title: shown above the table, left-justified, as it is (not read as markup).
        caption: shown below the table (wraps at the width).
    """

    def __init__(
        self,
        columns: Sequence[Col],
        rows: Iterable[Sequence[Cell]],
        *,
        title: str | Text | None = None,
        caption: str | Text | None = None,
    ) -> None:
        self.columns = list(columns)
        self.rows = [[_text(c) for c in row] for row in rows]
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(
                    f"FitTable: a row has {len(row)} cells for {len(self.columns)} columns; "
                    "give one cell per column."
                )
        self.title = None if title is None else Text(title) if isinstance(title, str) else title
        self.caption = caption

    def _natural(self, i: int, *, short: bool) -> int:
        col = self.columns[i]
        header = (col.short or col.header) if short else col.header
        lines = [cell_len(line) for row in self.rows for line in row[i].plain.splitlines() or [""]]
        widest = max([cell_len(header), *lines])  # terminal cells: a CJK character takes two
        if not col.wrap:
            return widest
        # prose wraps at spaces: never narrower than its longest word, which would be cut
        word = max((cell_len(w) for row in self.rows for w in row[i].plain.split()), default=0)
        return min(widest, max(col.min_width, cell_len(header), word))

    def _width(self, visible: Sequence[int], *, compact: bool) -> int:
        # rich: 1 space of padding each side of a cell; a boxed table adds n + 1 rules, a
        # compact one (no outer edge) n - 1 separators.
        cells = sum(self._natural(i, short=compact) + 2 for i in visible)
        return cells + (len(visible) - 1 if compact else len(visible) + 1)

    def _table(self, visible: Sequence[int], *, compact: bool) -> Table:
        table = Table(
            title=self.title,
            title_justify="left",
            box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD,
            show_edge=not compact,
            show_lines=any(self.columns[i].wrap for i in visible),
        )
        for i in visible:
            col = self.columns[i]
            table.add_column(
                (col.short or col.header) if compact else col.header,
                justify=col.justify,
                no_wrap=not col.wrap,
                min_width=self._natural(i, short=compact),
                overflow="fold",  # never "…"; widths are set so that nothing folds
            )
        for row in self.rows:
            table.add_row(*(row[i] for i in visible))
        if self.caption is not None:
            table.caption = self.caption
            table.caption_justify = "left"
        return table

    def layout(self, width: int) -> RenderableType:
        """The renderable for a ``width``-column terminal."""
        visible = list(range(len(self.columns)))
        if self._width(visible, compact=False) <= width:
            return self._table(visible, compact=False)
        order = sorted(
            (i for i in visible if self.columns[i].drop > 0),
            key=lambda i: (self.columns[i].drop, i),
            reverse=True,
        )
        while True:
            if self._width(visible, compact=True) <= width:
                return self._table(visible, compact=True)
            if not order:
                return self._blocks(width)
            visible.remove(order.pop(0))

    def _blocks(self, width: int) -> RenderableType:
        """Each row as a block: the name alone on a line, numbers below it, prose indented."""
        keys = [i for i, c in enumerate(self.columns) if c.key]
        prose = [i for i, c in enumerate(self.columns) if c.wrap and not c.key]
        numbers = [i for i, c in enumerate(self.columns) if not c.key and not c.wrap]
        kept = list(numbers)
        drops = sorted(
            (i for i in kept if self.columns[i].drop > 0),
            key=lambda i: (self.columns[i].drop, i),
            reverse=True,
        )
        while kept and drops and self._block_width(keys, kept, prose=bool(prose)) > width:
            kept.remove(drops.pop(0))
        parts: list[RenderableType] = []
        if self.title is not None:
            parts.append(self.title)
        if kept and not prose:
            parts.append(Padding(self._grid(kept, None, header=True), (0, 0, 0, 2)))
        for row in self.rows:
            if prose:  # a record: the short fields in column order on one line, prose below
                line = sorted([*keys, *kept])
                parts.append(Text("  ").join(self._field(i, row[i]) for i in line if row[i].plain))
                for i in prose:
                    if row[i].plain:
                        label = self.columns[i].short
                        label = self.columns[i].header if label is None else label
                        text = Text(f"{label}: ", style="dim") + row[i] if label else row[i]
                        parts.append(Padding(text, (0, 0, 0, 4)))
            else:
                name = Text(" ").join(row[i] for i in keys)
                name.overflow = "fold"  # longer than the line: folded whole, never cut
                parts.append(name)
                if kept:
                    parts.append(Padding(self._grid(kept, row, header=False), (0, 0, 0, 2)))
        if self.caption is not None:
            parts.append(_text(self.caption) if isinstance(self.caption, str) else self.caption)
        return Group(*parts)

    def _block_width(self, keys: list[int], kept: list[int], *, prose: bool) -> int:
        """The widest line of the blocks: the numbers' grid, or (with prose) a record line."""
        if not prose:
            return self._width(kept, compact=True) + 2
        line = sorted([*keys, *kept])
        return max(
            (
                sum(self._field(i, row[i]).cell_len + 2 for i in line if row[i].plain) - 2
                for row in self.rows
            ),
            default=0,
        )

    def _field(self, i: int, cell: Text) -> Text:
        """A record's field: names and words as they are, numbers after their header."""
        col = self.columns[i]
        if col.key or col.justify == "left":
            return cell
        return Text(f"{col.short or col.header} ", style="dim") + cell

    def _grid(self, visible: Sequence[int], row: Sequence[Text] | None, *, header: bool) -> Table:
        grid = Table.grid(padding=(0, 1))
        for i in visible:
            grid.add_column(
                justify=self.columns[i].justify,
                no_wrap=True,
                min_width=self._natural(i, short=True),
                max_width=self._natural(i, short=True),
            )
        if header:
            grid.add_row(*(Text(self.columns[i].short or self.columns[i].header) for i in visible))
        if row is not None:
            grid.add_row(*(row[i] for i in visible))
        return grid

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.layout(options.max_width)
