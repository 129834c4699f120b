"""The lab's figures: they draw the numbers given (read back from the matplotlib figure), leave
out what a log axis cannot show, keep text literal, and decode as PNG of the stated size."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pytest
from matplotlib.image import imread

from stabletrain.lab import Figure
from stabletrain.report.figures import SIZE, draw_figure, figure_plot
from stabletrain.report.plots import DPI

NAN = math.nan


def test_lines_draw_each_series_with_its_points() -> None:
    fig = Figure(
        "std by depth", "layer", "std", {"He": ([1, 2, 3], [1.0, 0.9, 1.1]), "X": ([1, 3], [2, 4])}
    )
    (ax,) = draw_figure(fig).axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == ["He", "X"]
    np.testing.assert_array_equal(lines["He"].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines["He"].get_ydata(), [1.0, 0.9, 1.1])
    np.testing.assert_array_equal(lines["X"].get_ydata(), [2.0, 4.0])
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("std by depth", "layer", "std")
    assert ax.get_legend() is not None
    assert ax.get_yscale() == "linear"


def test_a_log_axis_leaves_out_values_that_are_not_positive_and_finite() -> None:
    series = {"s": ([1, 2, 3, 4, 5], [1e-3, 0.0, -1.0, math.inf, "n/a"])}
    (ax,) = draw_figure(Figure("t", "x", "y", series, logy=True)).axes
    y = ax.get_lines()[0].get_ydata()
    assert y[0] == 1e-3
    assert np.isnan(y[1:]).all()
    assert ax.get_yscale() == "log"


def test_bars_group_by_x_value_across_series() -> None:
    series = {"none": (["a", "b"], [0.5, 0.6]), "L2": (["b", "c"], [0.7, 0.8])}
    (ax,) = draw_figure(Figure("acc", "setting", "acc", series, kind="bar")).axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    bars = [(round(p.get_x() + p.get_width() / 2, 6), p.get_height()) for p in ax.patches]
    assert bars == [(-0.2, 0.5), (0.8, 0.6), (1.2, 0.7), (2.2, 0.8)]


def test_text_is_literal_not_mathtext_and_one_unnamed_series_has_no_legend() -> None:
    (ax,) = draw_figure(Figure("cost $5 and $x$", "x", "y", {"": ([0, 1], [0, 1])})).axes
    assert ax.get_title() == r"cost \$5 and \$x\$"  # escaped, so drawn as typed
    assert ax.get_legend() is None
    figure_plot(Figure("cost $5 and $x$", "x", "y", {"": ([0, 1], [0, 1])}))  # renders


def test_png_decodes_at_the_stated_size() -> None:
    plot = figure_plot(Figure("t <1>", "x", "y", {"a": ([0, 1, 2], [3, 1, 2])}))
    assert (plot.title, plot.width, plot.height) == ("t <1>", SIZE[0] * DPI, SIZE[1] * DPI)
    assert plot.data_uri.startswith("data:image/png;base64,")
    image = imread(io.BytesIO(base64.b64decode(plot.data_uri.split(",", 1)[1])), format="png")
    assert image.shape[:2] == (plot.height, plot.width)


def test_an_empty_figure_still_draws_and_pyplot_is_not_touched() -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    png = figure_plot(Figure("nothing measured", "x", "y", {})).png
    assert imread(io.BytesIO(png), format="png").shape[2] in (3, 4)
    assert plt.get_fignums() == before


def test_an_unknown_kind_is_named_with_the_valid_ones() -> None:
    bad = Figure("odd", "x", "y", {"a": ([1], [1.0])}, kind="pie")
    with pytest.raises(ValueError, match=r"unknown kind 'pie' of figure 'odd'.*'line' and 'bar'"):
        draw_figure(bad)
