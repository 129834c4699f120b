"""Figures: they draw the numbers they are given (read back from the matplotlib figure before it
is rendered), decode as PNG of the stated size, skip what was not measured, and leave pyplot's
global state alone."""

from __future__ import annotations

import base64
import io
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from stabletrain.diagnostics import Diagnosis, LayerStats
from stabletrain.findings import Finding
from stabletrain.monitoring import Row
from stabletrain.report import (
    RunLog,
    activation_heatmap,
    backward_std_plot,
    diagnosis_plots,
    findings_timeline,
    forward_std_plot,
    grad_norm_plot,
    load_run,
    loss_plot,
    run_plots,
    update_ratio_plot,
)
from stabletrain.report import plots as plots_module
from stabletrain.report.plots import RULE_OF_THUMB_UPDATE_RATIO, Plot
from tests.report._data import EDGES, THRESHOLDS, diagnosis, fixed_diagnosis

NAN = float("nan")


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The matplotlib figures drawn, in order, before they become PNG."""
    drawn: list[Any] = []
    render = plots_module._plot

    def keep(key: str, title: str, caption: str, fig: Any) -> Plot:
        drawn.append(fig)
        return render(key, title, caption, fig)

    monkeypatch.setattr(plots_module, "_plot", keep)
    return drawn


def decode(plot: Plot) -> np.ndarray[Any, Any]:
    image = imread(io.BytesIO(plot.png), format="png")
    assert image.shape == (plot.height, plot.width, 4)
    return image


def lines_by_label(ax: Any) -> dict[str, Any]:
    return {line.get_label(): line for line in ax.get_lines()}


# --------------------------------------------------------------------------- diagnosis


def test_the_forward_plot_draws_each_measured_std_and_the_theory_at_its_depth(
    figures: list[Any],
) -> None:
    d = diagnosis(0.5)
    forward_std_plot(d)
    (ax,) = figures[0].axes
    lines = lines_by_label(ax)
    assert set(lines) == {"measured", "theory"}
    np.testing.assert_array_equal(lines["measured"].get_xdata(), [0, 1, 2, 3])
    np.testing.assert_allclose(lines["measured"].get_ydata(), [1, 0.5, 0.25, 0.125])
    np.testing.assert_allclose(lines["theory"].get_ydata(), [1, 1, 1, 1])
    assert ax.get_yscale() == "log"


def test_the_backward_plot_draws_the_gradient_std_and_its_theory(figures: list[Any]) -> None:
    backward_std_plot(diagnosis(0.5))
    lines = lines_by_label(figures[0].axes[0])
    np.testing.assert_allclose(lines["measured"].get_ydata(), [1e-2 * 0.5**k for k in (3, 2, 1, 0)])
    np.testing.assert_allclose(lines["theory"].get_ydata(), [1e-2] * 4)


def test_a_fix_overlays_before_and_after(figures: list[Any]) -> None:
    forward_std_plot(fixed_diagnosis())
    lines = lines_by_label(figures[0].axes[0])
    assert set(lines) == {
        "measured (before)",
        "theory (before)",
        "measured (after)",
        "theory (after)",
    }
    np.testing.assert_allclose(lines["measured (before)"].get_ydata(), [1, 0.5, 0.25, 0.125])
    np.testing.assert_allclose(lines["measured (after)"].get_ydata(), [1, 1, 1, 1])


def test_values_a_log_axis_cannot_show_are_gaps_not_errors(figures: list[Any]) -> None:
    ls = tuple(
        LayerStats(name=str(i), kind="Linear", depth=i, out_std=v, predicted_out_std=None)
        for i, v in enumerate([1.0, 0.0, -1.0, math.inf, NAN, 2.0])
    )
    forward_std_plot(Diagnosis(model="M", layers=ls))
    lines = lines_by_label(figures[0].axes[0])
    assert set(lines) == {"measured"}  # no prediction: no theory line
    y = lines["measured"].get_ydata()
    assert (y[0], y[5]) == (1.0, 2.0)
    assert np.isnan(y[1:5]).all()


def test_nothing_measured_means_no_figure() -> None:
    d = Diagnosis(model="M", layers=(LayerStats(name="fc", kind="Linear", depth=0),))
    assert forward_std_plot(d) is None
    assert backward_std_plot(d) is None
    assert activation_heatmap(d) is None
    assert diagnosis_plots(d) == []
    assert diagnosis_plots(Diagnosis(model="Empty")) == []


def test_the_heatmap_is_log_counts_of_every_layer_over_the_shared_edges(figures: list[Any]) -> None:
    d = diagnosis(0.5)
    activation_heatmap(d)
    ax = figures[0].axes[0]
    (mesh,) = ax.collections
    expected = np.log10(1 + np.array([x.histogram for x in d.layers]))
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(expected.shape), expected)
    np.testing.assert_allclose(mesh.get_coordinates()[0, :, 0], EDGES)
    assert ax.get_ylim() == (4.0, 0.0)  # the input layer on top


def test_the_heatmap_of_a_fix_puts_before_and_after_side_by_side_on_one_scale(
    figures: list[Any],
) -> None:
    activation_heatmap(fixed_diagnosis())
    panels = figures[0].axes[:2]  # the third is the colour bar
    assert [ax.get_title() for ax in panels] == [
        "before: output histograms",
        "after: output histograms",
    ]
    left, right = (ax.collections[0].get_clim() for ax in panels)
    assert left == right
    assert panels[0].get_position().x1 < panels[1].get_position().x0  # side by side


def test_a_layer_without_a_histogram_is_an_empty_row(figures: list[Any]) -> None:
    d = diagnosis()
    d.layers = (replace(d.layers[0], histogram=()), *d.layers[1:])
    activation_heatmap(d)
    values = np.ma.filled(figures[0].axes[0].collections[0].get_array(), np.nan).reshape(4, -1)
    assert np.isnan(values[0]).all()
    assert not np.isnan(values[1:]).any()


def test_dollar_signs_in_names_are_text_not_mathtext(figures: list[Any]) -> None:
    forward_std_plot(diagnosis())  # the names hold "cost$x$"
    labels = [t.get_text() for t in figures[0].axes[0].get_xticklabels()]
    assert r"cost\$x\$" in labels


def test_every_diagnosis_figure_decodes_as_a_png_of_its_stated_size() -> None:
    found = diagnosis_plots(fixed_diagnosis())
    assert [p.key for p in found] == ["forward_std", "backward_std", "activation_heatmap"]
    for plot in found:
        image = decode(plot)
        assert image[..., :3].std() > 0.05  # something is drawn
        assert base64.b64decode(plot.data_uri.split(",", 1)[1]) == plot.png
        assert plot.data_uri.startswith("data:image/png;base64,")


# --------------------------------------------------------------------------- monitor logs


def test_the_gradient_norm_plot_has_a_line_per_layer_and_the_total(
    run_log: tuple[Path, list[Finding]], figures: list[Any]
) -> None:
    run = RunLog.from_rows(load_run(run_log[0]), thresholds=THRESHOLDS)
    grad_norm_plot(run)
    lines = lines_by_label(figures[0].axes[0])
    assert set(lines) == {"0", "2", "4", "total"}
    steps, values = run.series("2", "grad_norm")
    np.testing.assert_array_equal(lines["2"].get_xdata(), steps)
    np.testing.assert_allclose(lines["2"].get_ydata(), values)
    np.testing.assert_allclose(lines["total"].get_ydata(), run.series(None, "grad_norm")[1])


def test_the_update_ratio_plot_marks_the_rule_of_thumb_and_zero_updates(figures: list[Any]) -> None:
    rows = [Row(s, "a", "update_ratio", 1e-3 * s) for s in (1, 2, 3)]
    rows += [Row(s, "frozen", "update_ratio", 0.0) for s in (1, 2, 3)]
    update_ratio_plot(RunLog.from_rows(rows))
    ax = figures[0].axes[0]
    lines = lines_by_label(ax)
    assert lines["rule of thumb 0.001"].get_ydata()[0] == RULE_OF_THUMB_UPDATE_RATIO
    assert np.isnan(lines["frozen"].get_ydata()).all()
    zeros = [line for line in ax.get_lines() if line.get_marker() == "v" and len(line.get_xdata())]
    assert [list(line.get_xdata()) for line in zeros] == [[1, 2, 3]]
    assert "exactly 0 (bottom edge)" in lines


def test_many_layers_get_a_colour_bar_instead_of_a_legend(figures: list[Any]) -> None:
    rows = [Row(s, f"l{i}", "grad_norm", 1.0 + i) for s in (1, 2) for i in range(12)]
    grad_norm_plot(RunLog.from_rows(rows))
    ax, bar = figures[0].axes
    assert bar.get_ylabel() == "layer (input → output)"
    assert ax.get_legend() is None  # no total, no zeros: nothing else to name


def test_the_findings_timeline_puts_a_marker_per_rule_and_step(figures: list[Any]) -> None:
    rows = [Row(s, "fc", "grad_norm", 2e3 if s % 2 else 1.0) for s in (1, 2, 3)]
    rows += [Row(s, "fc", "update_ratio", 0.5) for s in (2, 3)]
    run = RunLog.from_rows(rows)
    findings_timeline(run)
    ax = figures[0].axes[0]
    points = {
        collection.get_label(): sorted(map(tuple, collection.get_offsets().tolist()))
        for collection in ax.collections
    }
    assert [t.get_text() for t in ax.get_yticklabels()] == ["exploding", "update_ratio"]
    assert points == {"error": [(1.0, 0.0), (3.0, 0.0)], "warning": [(2.0, 1.0), (3.0, 1.0)]}


def test_monitor_figures_are_skipped_when_their_metric_was_not_logged() -> None:
    run = RunLog.from_rows([Row(s, "fc", "grad_norm", 0.1) for s in (1, 2)])
    assert update_ratio_plot(run) is None
    assert loss_plot(run) is None
    assert findings_timeline(run) is None
    assert [p.key for p in run_plots(run)] == ["grad_norm"]
    assert run_plots(RunLog.from_rows([])) == []
    nan_only = RunLog.from_rows([Row(1, None, "loss", NAN), Row(1, "fc", "grad_norm", NAN)])
    assert [p.key for p in run_plots(nan_only)] == ["findings_timeline"]  # the NaN loss


def test_every_run_figure_decodes_as_a_png_of_its_stated_size(
    run_log: tuple[Path, list[Finding]],
) -> None:
    found = run_plots(RunLog.from_rows(load_run(run_log[0]), thresholds=THRESHOLDS))
    assert [p.key for p in found] == ["loss", "grad_norm", "update_ratio", "findings_timeline"]
    for plot in found:
        assert decode(plot)[..., :3].std() > 0.05


def test_drawing_never_imports_pyplot(
    monkeypatch: pytest.MonkeyPatch, run_log: tuple[Path, list[Finding]]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # importing it now fails
    with pytest.raises(ImportError):
        import matplotlib.pyplot  # noqa: F401
    assert len(diagnosis_plots(fixed_diagnosis())) == 3
    assert len(run_plots(RunLog.from_rows(load_run(run_log[0]), thresholds=THRESHOLDS))) == 4
