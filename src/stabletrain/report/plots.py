"""The reports' figures as PNG images; the only module of the reports that imports matplotlib.

Figures are drawn on :class:`matplotlib.figure.Figure` objects rendered by the Agg backend, never
through ``pyplot``, so no global state changes and nothing needs a display. Each function returns
a :class:`Plot` (PNG bytes with a title and a caption; :attr:`Plot.data_uri` embeds it in a
page), or None when the data it draws was not measured.

Diagnosis figures (before/after overlays when the diagnosis carries ``before``):

- :func:`forward_std_plot`: output std per layer against depth, with the theory's prediction.
- :func:`backward_std_plot`: std of dL/d(output) per layer against depth, with the theory's.
- :func:`activation_heatmap`: each layer's signed output histogram (layers × bins, log counts).

Monitor-log figures: :func:`loss_plot`, :func:`grad_norm_plot` (per-layer gradient norms over
steps), :func:`update_ratio_plot` (``‖Δθ‖/‖θ‖`` over steps, with the ~1e-3 rule of thumb of
Karpathy's CS231n notes) and :func:`findings_timeline` (which rule fired on which step).

Needs matplotlib: ``pip install 'stabletrain[report]'``; imported when a figure is drawn.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from stabletrain.findings import SEVERITIES
from stabletrain.monitoring.rules import RULES
from stabletrain.monitoring.sinks.base import layer_label
from stabletrain.report._diagnosis_page import before_of
from stabletrain.report.run import RunLog

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from stabletrain.diagnostics import Diagnosis, LayerStats

__all__ = [
    "RULE_OF_THUMB_UPDATE_RATIO",
    "Plot",
    "activation_heatmap",
    "backward_std_plot",
    "diagnosis_plots",
    "findings_timeline",
    "forward_std_plot",
    "grad_norm_plot",
    "loss_plot",
    "run_plots",
    "update_ratio_plot",
]

RULE_OF_THUMB_UPDATE_RATIO = 1e-3
"""The healthy ``‖Δθ‖/‖θ‖`` per step, by rule of thumb (Karpathy, CS231n)."""

DPI = 100
_WIDE = (7.5, 3.8)  # inches; at DPI, 750 × 380 pixels
_MAX_TICK_LABELS = 30  # more layers than this: depth numbers instead of names
_MAX_LEGEND_LAYERS = 10  # more layers than this: a colour bar instead of a legend
_SEVERITY_COLOURS = {"error": "#c62828", "warning": "#ef8f00", "info": "#1f77b4"}


@dataclass(frozen=True)
class Plot:
    """One figure: PNG bytes, its size in pixels, a title and a caption."""

    key: str
    title: str
    caption: str
    png: bytes
    width: int
    height: int

    @property
    def data_uri(self) -> str:
        """The PNG as a ``data:image/png;base64,...`` URI, for a self-contained page."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _new_figure(size: tuple[float, float] = _WIDE) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - matplotlib is in the report extra
        raise ImportError(
            "stabletrain's report figures need matplotlib, which is not installed: pip install "
            f"'stabletrain[report]' (or pip install matplotlib). ({err})"
        ) from err
    return Figure(figsize=size, dpi=DPI, layout="constrained")


def _plot(key: str, title: str, caption: str, fig: Figure) -> Plot:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    width, height = (round(v * DPI) for v in fig.get_size_inches())
    return Plot(key, title, caption, buffer.getvalue(), width, height)


def _label(text: str, limit: int = 28) -> str:
    """A name as plain text in a figure: ``$`` escaped (no mathtext), long names shortened."""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _positive(values: Sequence[float | None]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Values for a log axis: NaN where not finite and positive (matplotlib leaves a gap)."""
    out = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    out[~(np.isfinite(out) & (out > 0))] = np.nan
    return out


def _layer_ticks(ax: Axes, names: Sequence[str], axis: str = "x") -> None:
    if not names or len(names) > _MAX_TICK_LABELS:
        return
    labels = [_label(n) for n in names]
    if axis == "x":
        ax.set_xticks(range(len(names)), labels, rotation=60, ha="right", fontsize=7)
    else:
        ax.set_yticks([i + 0.5 for i in range(len(names))], labels, fontsize=7)


# --------------------------------------------------------------------------- diagnosis


def _depth_plot(
    d: Diagnosis,
    *,
    key: str,
    title: str,
    caption: str,
    ylabel: str,
    measured: Callable[[LayerStats], float],
    predicted: Callable[[LayerStats], float | None],
) -> Plot | None:
    before = before_of(d)
    runs = (
        [(before, "before", "#9e9e9e"), (d, "after", "#1f77b4")] if before else [(d, "", "#1f77b4")]
    )
    if all(np.isnan(_positive([measured(x) for x in g.layers])).all() for g, _, _ in runs if g):
        return None
    fig = _new_figure()
    ax = fig.add_subplot()
    for diag, when, colour in runs:
        if diag is None:
            continue
        depth = [x.depth for x in diag.layers]
        suffix = f" ({when})" if when else ""
        ax.plot(
            depth,
            _positive([measured(x) for x in diag.layers]),
            "o-",
            color=colour,
            ms=4,
            label=f"measured{suffix}",
        )
        theory = _positive([predicted(x) for x in diag.layers])
        if not np.isnan(theory).all():
            ax.plot(
                depth,
                theory,
                "--" if when != "before" else ":",
                color="black" if when != "before" else "#616161",
                label=f"theory{suffix}",
            )
    ax.set_yscale("log")
    ax.set_xlabel("depth (execution order)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    _layer_ticks(ax, [x.name for x in d.layers])
    ax.legend(fontsize=8)
    return _plot(key, title, caption, fig)


def forward_std_plot(d: Diagnosis) -> Plot | None:
    """Each layer's output std against depth, with the theory line (log scale).

    Theory: ``Var(z_l) = n_in·Var(w_l)·E[x_l²]``, chained from the input through the gains of
    the activations (He et al., 2015; Glorot and Bengio, 2010). None when no std was measured.

    Example:
        >>> from stabletrain.diagnostics import Diagnosis, LayerStats
        >>> layers = tuple(LayerStats(name=str(i), kind="Linear", depth=i, out_std=0.5**i,
        ...     predicted_out_std=1.0) for i in range(4))
        >>> plot = forward_std_plot(Diagnosis(model="MLP", layers=layers))
        >>> plot.png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", plot.width, plot.height
        (True, 750, 380)
    """
    return _depth_plot(
        d,
        key="forward_std",
        title="Forward: output std per layer",
        caption="Std of each layer's pre-activation output on the example batch (markers) and "
        "the theory's prediction (dashed); a flat line at a constant std is healthy, a "
        "geometric fall or rise with depth is vanishing or exploding signal.",
        ylabel="std of the layer's output",
        measured=lambda x: x.out_std,
        predicted=lambda x: x.predicted_out_std,
    )


def backward_std_plot(d: Diagnosis) -> Plot | None:
    """The std of dL/d(output) per layer against depth, with the theory line (log scale).

    Theory: ``Var(g_in) = n_out·Var(w)·E[f'(z)²]·Var(g_out)``, from the last layer back.

    Example:
        >>> from stabletrain.diagnostics import Diagnosis, LayerStats
        >>> layers = tuple(LayerStats(name=str(i), kind="Linear", depth=i, grad_out_std=2.0**i)
        ...     for i in range(4))
        >>> backward_std_plot(Diagnosis(model="MLP", layers=layers)).key
        'backward_std'
    """
    return _depth_plot(
        d,
        key="backward_std",
        title="Backward: gradient std per layer",
        caption="Std of dL/d(output) of each layer (markers) and the theory's prediction "
        "(dashed); gradients that shrink towards depth 0 vanish, that grow explode.",
        ylabel="std of dL/d(output)",
        measured=lambda x: x.grad_out_std,
        predicted=lambda x: x.predicted_grad_out_std,
    )


def _histogram_matrix(d: Diagnosis) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None:
    """(edges, log10(1 + counts) of shape layers × bins, NaN rows where not taken)."""
    bins = len(d.histogram_edges) - 1
    if bins < 1 or not any(len(x.histogram) == bins for x in d.layers):
        return None
    edges = np.asarray(d.histogram_edges, dtype=np.float64)
    if not (np.isfinite(edges).all() and (np.diff(edges) > 0).all()):
        edges = np.arange(bins + 1, dtype=np.float64)  # unusable edges: bin numbers
    counts = np.full((len(d.layers), bins), np.nan)
    for i, x in enumerate(d.layers):
        if len(x.histogram) == bins:
            counts[i] = np.log10(1.0 + np.clip(np.asarray(x.histogram, dtype=np.float64), 0, None))
    return edges, counts


def activation_heatmap(d: Diagnosis) -> Plot | None:
    """Every layer's signed output histogram as a heatmap: layers (rows) × bins, log counts.

    Shows at a glance which layers collapse to 0, saturate at ±bounds or spread out. Before and
    after a fix side by side, on one colour scale. None when no histogram was taken.

    Example:
        >>> from stabletrain.diagnostics import Diagnosis, LayerStats
        >>> layers = tuple(LayerStats(name=str(i), kind="Linear", depth=i,
        ...     histogram=(1.0, 5.0, 9.0, 5.0)) for i in range(3))
        >>> d = Diagnosis(model="MLP", layers=layers, histogram_edges=(-2, -1, 0, 1, 2))
        >>> activation_heatmap(d).key
        'activation_heatmap'
    """
    before = before_of(d)
    panels = [(before, "before"), (d, "after")] if before is not None else [(d, "")]
    matrices = [(_histogram_matrix(g), g, when) for g, when in panels]
    if all(m is None for m, _, _ in matrices):
        return None
    # a matrix that is not None has a measured row; one colour scale for before and after
    vmax = max([1e-12] + [float(np.nanmax(m[1])) for m, _, _ in matrices if m is not None])
    rows = max(len(g.layers) for _, g, _ in matrices)
    height = min(9.0, 2.0 + 0.22 * rows)
    fig = _new_figure((_WIDE[0] * (1.6 if before is not None else 1.0), height))
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    mesh = None
    for ax, (matrix, diag, when) in zip(axes, matrices, strict=True):
        ax.set_title(f"{when}: output histograms" if when else "Output histogram per layer")
        ax.set_xlabel("layer output (pre-activation)")
        if matrix is None:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            continue
        edges, counts = matrix
        mesh = ax.pcolormesh(
            edges,
            np.arange(len(diag.layers) + 1),
            counts,
            cmap="magma",
            vmin=0.0,
            vmax=vmax,
            shading="flat",
        )
        ax.set_ylim(len(diag.layers), 0)  # input at the top
        _layer_ticks(ax, [x.name for x in diag.layers], axis="y")
    if mesh is not None:
        fig.colorbar(mesh, ax=list(axes), label="log10(1 + count)")
    title = "Activation histograms per layer"
    caption = (
        "Signed histogram of each layer's output over the same bins (rows: layers in "
        "execution order, input at the top; colour: log10(1 + count)); a row "
        "concentrated at 0 has collapsed, mass at the edges saturates."
    )
    return _plot("activation_heatmap", title, caption, fig)


def diagnosis_plots(d: Diagnosis) -> list[Plot]:
    """The figures of a diagnosis report that have data to show."""
    found = (forward_std_plot(d), backward_std_plot(d), activation_heatmap(d))
    return [p for p in found if p is not None]


# --------------------------------------------------------------------------- monitor logs


def _layer_colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def _per_layer_plot(
    run: RunLog, metric: str, *, title: str, ylabel: str
) -> tuple[Figure, Axes] | None:
    """Axes with one line per layer of ``metric`` over the steps (log scale), or None."""
    from matplotlib.transforms import blended_transform_factory

    layers = [name for name in run.layers if run.series(name, metric)[0]]
    series = {name: run.series(name, metric) for name in layers}
    if not any(v == 0 or v > 0 for _, values in series.values() for v in values):
        return None  # nothing but NaN, inf and negative numbers: nothing to draw
    fig = _new_figure()
    ax = fig.add_subplot()
    colours = _layer_colours(len(layers))
    bottom = blended_transform_factory(ax.transData, ax.transAxes)
    zeros = False
    legend = len(layers) <= _MAX_LEGEND_LAYERS  # else a colour bar; "_" labels stay out
    for colour, name in zip(colours, layers, strict=True):
        steps, values = series[name]
        label = _label(layer_label(name)) if legend else "_layer"
        ax.plot(steps, _positive(values), "-", color=colour, lw=1.2, label=label)
        at_zero = [s for s, v in zip(steps, values, strict=True) if v == 0]
        if at_zero:  # not on a log scale: marked along the bottom edge
            ax.plot(at_zero, [0.02] * len(at_zero), "v", color=colour, ms=4, transform=bottom)
            zeros = True
    if zeros:
        ax.plot([], [], "v", color="grey", ms=4, label="exactly 0 (bottom edge)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if not legend:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        mappable = ScalarMappable(Normalize(0, len(layers) - 1), "viridis")
        fig.colorbar(mappable, ax=ax, label="layer (input → output)")
    return fig, ax


def _legend(ax: Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")


def grad_norm_plot(run: RunLog) -> Plot | None:
    """Each layer's gradient norm ``‖∂L/∂θ‖`` over the logged steps, and the total (dashed).

    Example:
        >>> from stabletrain.monitoring import Row
        >>> rows = [Row(s, n, "grad_norm", 0.1 * s) for s in (1, 2, 3) for n in ("a", "b")]
        >>> grad_norm_plot(RunLog.from_rows(rows)).key
        'grad_norm'
    """
    title = "Gradient norm per layer"
    caption = (
        "‖∂L/∂θ‖ of each layer's parameters at every logged step (colour: input to "
        "output), and over all parameters (dashed); layers far below the others learn "
        "nothing, a sudden rise is an explosion."
    )
    drawn = _per_layer_plot(run, "grad_norm", title=title, ylabel="gradient norm")
    if drawn is None:
        return None
    fig, ax = drawn
    steps, total = run.series(None, "grad_norm")
    if steps:
        ax.plot(steps, _positive(total), "--", color="black", lw=1.2, label="total")
    _legend(ax)
    return _plot("grad_norm", title, caption, fig)


def update_ratio_plot(run: RunLog) -> Plot | None:
    """Each layer's relative update ``‖θ_t − θ_{t−1}‖ / ‖θ_t‖`` over the logged steps, with the
    1e-3 rule of thumb and the band the ``update_ratio`` rule accepts. None if not logged
    (preset ``minimal``).

    Example:
        >>> from stabletrain.monitoring import Row
        >>> rows = [Row(s, "a", "update_ratio", 1e-3) for s in (1, 2, 3)]
        >>> update_ratio_plot(RunLog.from_rows(rows)).key
        'update_ratio'
    """
    title = "Update / weight ratio per layer"
    t = run.thresholds
    caption = (
        f"‖Δθ‖/‖θ‖ of each layer per step; the rule of thumb is about "
        f"{RULE_OF_THUMB_UPDATE_RATIO:g} (dashed), the shaded band "
        f"[{t.update_ratio_low:g}, {t.update_ratio_high:g}] is what the update_ratio rule "
        "accepts: above it the learning rate is too high, below it the layer barely "
        "learns."
    )
    drawn = _per_layer_plot(run, "update_ratio", title=title, ylabel="‖Δθ‖ / ‖θ‖")
    if drawn is None:
        return None
    fig, ax = drawn
    ax.axhspan(t.update_ratio_low, t.update_ratio_high, color="#4caf50", alpha=0.08, lw=0)
    ax.axhline(
        RULE_OF_THUMB_UPDATE_RATIO,
        color="black",
        ls="--",
        lw=1.0,
        label=f"rule of thumb {RULE_OF_THUMB_UPDATE_RATIO:g}",
    )
    _legend(ax)
    return _plot("update_ratio", title, caption, fig)


def loss_plot(run: RunLog) -> Plot | None:
    """The loss at the logged steps (log scale when every value is positive).

    Example:
        >>> from stabletrain.monitoring import Row
        >>> loss_plot(RunLog.from_rows([Row(s, None, "loss", 1 / s) for s in (1, 2)])).key
        'loss'
    """
    steps, values = run.series(None, "loss")
    finite = np.array([v for v in values if math.isfinite(v)])
    if not finite.size:
        return None
    fig = _new_figure((_WIDE[0], 3.0))
    ax = fig.add_subplot()
    shown = np.array(values, dtype=np.float64)
    shown[~np.isfinite(shown)] = np.nan
    ax.plot(steps, shown, "-", color="#1f77b4", lw=1.2)
    if (finite > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss at the logged steps")
    ax.grid(True, which="major", alpha=0.3)
    return _plot(
        "loss", "Loss", "The loss passed to TrainingMonitor.step on each logged step.", fig
    )


def findings_timeline(run: RunLog) -> Plot | None:
    """On which logged steps each rule fired: one row per rule, one marker per step, coloured by
    severity and sized by the number of layers it fired for. None when nothing fired.

    Example:
        >>> from stabletrain.monitoring import Row
        >>> run = RunLog.from_rows([Row(s, "fc", "grad_norm", 1e4) for s in (1, 2)])
        >>> findings_timeline(run).key
        'findings_timeline'
    """
    if not run.events:
        return None
    rules = [name for name in RULES if any(e.rule == name for e in run.events)]
    rules += sorted({e.rule for e in run.events} - set(rules))
    rank: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}
    cells: dict[tuple[str, int], list[str]] = {}
    for e in run.events:
        cells.setdefault((e.rule, e.step), []).append(e.severity)
    fig = _new_figure((_WIDE[0], 1.4 + 0.35 * len(rules)))
    ax = fig.add_subplot()
    for severity in SEVERITIES:
        points = [
            (step, rules.index(rule), len(sev))
            for (rule, step), sev in cells.items()
            if max(sev, key=rank.__getitem__) == severity
        ]
        if points:
            xs, ys, ns = zip(*points, strict=True)
            ax.scatter(
                xs,
                ys,
                s=[18 + 10 * min(n, 12) for n in ns],
                color=_SEVERITY_COLOURS[severity],
                label=severity,
                zorder=3,
            )
    ax.set_yticks(range(len(rules)), [_label(r) for r in rules], fontsize=8)
    ax.set_ylim(len(rules) - 0.5, -0.5)
    if run.steps:
        pad = max(1.0, 0.02 * (run.steps[-1] - run.steps[0]))
        ax.set_xlim(run.steps[0] - pad, run.steps[-1] + pad)
    ax.set_xlabel("step")
    ax.set_title("Findings over the run")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    caption = (
        "Each marker: a rule that fired on a logged step (colour: severity; size: how "
        "many layers); the findings table says where and how to fix it."
    )
    return _plot("findings_timeline", "Findings over time", caption, fig)


def run_plots(run: RunLog) -> list[Plot]:
    """The figures of a run report that have data to show."""
    found = (loss_plot(run), grad_norm_plot(run), update_ratio_plot(run), findings_timeline(run))
    return [p for p in found if p is not None]
