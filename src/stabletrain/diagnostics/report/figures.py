"""Figures given as data (named series of points) drawn as PNG images: the lab's plots.

Any object with the fields of :class:`FigureData` is drawn, among them
:class:`stabletrain.lab.Figure` (this module does not import the lab: it only reads the fields).
``kind="line"`` draws each series as a line with markers, ``kind="bar"`` draws grouped bars with
one group per x value; ``logy`` puts the y axis on a log scale, where values that are not finite
and positive are left out. Drawing uses :class:`matplotlib.figure.Figure` with the Agg canvas,
never ``pyplot``: no global state, no display.

Needs matplotlib: ``pip install 'stabletrain[report]'``; imported when a figure is drawn.

Example:
    >>> from stabletrain.lab import Figure
    >>> fig = Figure("std by depth", "layer", "std", {"He": ([1, 2, 3], [1.0, 0.98, 1.01])})
    >>> png = figure_png(fig)
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    >>> figure_data_uri(fig).startswith("data:image/png;base64,")
    True
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DPI", "SIZE", "FigureData", "draw_figure", "figure_data_uri", "figure_png"]

DPI = 100
SIZE = (6.4, 3.6)  # inches; at DPI, 640 × 360 pixels
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
    s = str(text)
    s = s if len(s) <= _LABEL_LIMIT else s[: _LABEL_LIMIT - 1] + "…"
    return s.replace("$", r"\$")


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


def _new_figure() -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - matplotlib is in the report extra
        raise ImportError(
            "stabletrain's figures need matplotlib, which is not installed: pip install "
            f"'stabletrain[report]' (or pip install matplotlib). ({err})"
        ) from err
    return Figure(figsize=SIZE, dpi=DPI, layout="constrained")


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
    fig = _new_figure()
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


def figure_png(data: FigureData) -> bytes:
    """``data`` drawn as PNG bytes (Agg, :data:`DPI` dots per inch, :data:`SIZE` inches)."""
    buffer = io.BytesIO()
    draw_figure(data).savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def figure_data_uri(data: FigureData) -> str:
    """``data`` as a ``data:image/png;base64,...`` URI, for a self-contained HTML page."""
    return "data:image/png;base64," + base64.b64encode(figure_png(data)).decode("ascii")
