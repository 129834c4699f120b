"""Figures given as data (named series of points) drawn as PNG images: the lab's plots.

Any object with the fields of :class:`FigureData` is drawn, among them
:class:`stabletrain.lab.Figure` (this module does not import the lab: it only reads the fields).
``kind="line"`` draws each series as a line with markers, ``kind="bar"`` draws grouped bars with
one group per x value; ``logy`` puts the y axis on a log scale, where values that are not finite
and positive are left out. Drawing uses :class:`matplotlib.figure.Figure` with the Agg canvas,
never ``pyplot``: no global state, no display.

Needs matplotlib: ``pip install 'stabletrain[report]'``; imported when a figure is drawn.

The drawing goes through :mod:`.plots`' helpers, so these figures are :class:`.plots.Plot`
objects like the diagnosis report's, with the same resolution and PNG encoding.

Example:
    >>> from stabletrain.lab import Figure
    >>> plot = figure_plot(Figure("std by depth", "layer", "std", {"He": ([1, 2], [1.0, 0.98])}))
    >>> plot.png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", (plot.width, plot.height)
    (True, (640, 360))
    >>> plot.data_uri.startswith("data:image/png;base64,")
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from stabletrain.report.plots import Plot, _label, _new_figure, _plot

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["SIZE", "FigureData", "draw_figure", "figure_plot"]

SIZE = (6.4, 3.6)  # inches; at the reports' 100 dpi, 640 × 360 pixels
_MARKERS_UP_TO = 40  # points per series: more than this draws a plain line
_LABEL_LIMIT = 60  # characters of a title, label or series name kept in a figure


class FigureData(Protocol):
    """What is drawn: the fields of :class:`stabletrain.lab.Figure`."""

    @property
    def title(self) -> str: ...
    @property
    def xlabel(self) -> str: ...
    @property
    def ylabel(self) -> str: ...
    @property
    def series(self) -> Mapping[str, tuple[Sequence[Any], Sequence[float]]]: ...
    @property
    def logy(self) -> bool: ...
    @property
    def kind(self) -> str: ...


def _text(text: object) -> str:
    """Plain text in a figure: ``$`` escaped (no mathtext), long text shortened."""
    return _label(str(text), _LABEL_LIMIT)


def _y(values: Sequence[Any], logy: bool) -> list[float]:
    """Numbers to draw: NaN for what cannot be drawn (not a number; on a log axis, <= 0)."""
    out = []
    for v in values:
        try:
            y = float(v)
        except (TypeError, ValueError):
            y = math.nan
        out.append(y if math.isfinite(y) and (y > 0 or not logy) else math.nan)
    return out


def _lines(ax: Axes, data: FigureData) -> None:
    for name, (x, y) in data.series.items():
        marker = "o" if len(y) <= _MARKERS_UP_TO else None
        ax.plot(list(x), _y(y, data.logy), marker=marker, markersize=3, label=_text(name))


def _bars(ax: Axes, data: FigureData) -> None:
    groups: list[Any] = []  # x values in order of first appearance, shared by every series
    for x, _ in data.series.values():
        groups += [v for v in x if v not in groups]
    n = max(len(data.series), 1)
    width = 0.8 / n
    for i, (name, (x, y)) in enumerate(data.series.items()):
        at = [groups.index(v) - 0.4 + width * (i + 0.5) for v in x]
        ax.bar(at, _y(y, data.logy), width=width, label=_text(name))
    ax.set_xticks(range(len(groups)), [_text(g) for g in groups])


def draw_figure(data: FigureData) -> Figure:
    """``data`` drawn on a new matplotlib figure (not attached to pyplot)."""
    if data.kind not in ("line", "bar"):
        raise ValueError(
            f"draw_figure: unknown kind {data.kind!r} of figure {data.title!r}; valid kinds "
            "are 'line' and 'bar'."
        )
    fig = _new_figure(SIZE)
    ax = fig.add_subplot()
    (_bars if data.kind == "bar" else _lines)(ax, data)
    if data.logy:
        ax.set_yscale("log")
    ax.set_title(_text(data.title), fontsize=10)
    ax.set_xlabel(_text(data.xlabel))
    ax.set_ylabel(_text(data.ylabel))
    ax.grid(True, alpha=0.3)
    if len(data.series) > 1 or any(data.series):
        ax.legend(fontsize=8)
    return fig


def figure_plot(data: FigureData) -> Plot:
    """``data`` drawn as a :class:`~stabletrain.report.plots.Plot` (PNG bytes, size
    in pixels, ``data_uri`` for a self-contained page); its title is the figure's."""
    return _plot(data.title, data.title, "", draw_figure(data))
