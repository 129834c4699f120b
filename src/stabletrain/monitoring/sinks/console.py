"""A sink that prints a table of the layers furthest from healthy, now and then; the table
fits the terminal (layer names whole, the later metrics give way at 80 columns)."""

from __future__ import annotations

import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from stabletrain._checks import check_positive_int
from stabletrain._fit import Cell, Col, FitTable
from stabletrain.monitoring.schedules import Schedule, check_schedule, every
from stabletrain.monitoring.sinks.base import Row, Sink, layer_label

__all__ = ["ConsoleSink"]

_EVERY_100 = every(100)
_COLUMNS = (
    "grad_norm",
    "weight_norm",
    "update_ratio",
    "act_std",
    "dead_fraction",
    "saturation_fraction",
    "max_row_cosine",
)
# on a narrow terminal the later columns give way first; short headers in the compact layout
_DROP = {"weight_norm": 2, "act_std": 3, "saturation_fraction": 4, "max_row_cosine": 5}
_SHORT = {
    "grad_norm": "grad",
    "weight_norm": "weight",
    "update_ratio": "update",
    "dead_fraction": "dead",
    "saturation_fraction": "sat",
    "max_row_cosine": "cos",
}


def _badness(values: dict[str, float], median: float) -> float:
    """How far a layer is from the others: non-finite first, then |log10(‖g‖ / median)|."""
    if values.get("grad_nonfinite", 0) > 0 or values.get("weight_nonfinite", 0) > 0:
        return math.inf
    g = values.get("grad_norm")
    if g is None or median <= 0:
        return 0.0
    if not math.isfinite(g):
        return math.inf
    return abs(math.log10(max(g, 1e-300) / median))


class ConsoleSink(Sink):
    """Print, on the logged steps of ``schedule``, the ``top`` layers whose gradient norm is
    furthest (in decades) from the median layer's, non-finite ones first.

    Args:
        schedule: on which steps to print (those the monitor logs).
        top: how many layers per table.
        console: the rich console to print to; stderr by default.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> sink = ConsoleSink(every(1), console=Console(file=out, width=100))
        >>> sink.write(1, [Row(1, "fc1", "grad_norm", 1e-6), Row(1, "fc2", "grad_norm", 0.1)])
        >>> "fc1" in out.getvalue()
        True
    """

    def __init__(
        self, schedule: Schedule = _EVERY_100, *, top: int = 8, console: Console | None = None
    ) -> None:
        self.schedule = check_schedule(schedule, where="ConsoleSink")
        self.top = check_positive_int("top", top, where="ConsoleSink")
        if console is not None and not isinstance(console, Console):
            raise TypeError(f"ConsoleSink: console must be a rich Console, got {type(console)}.")
        self.console = console or Console(file=sys.stderr)

    def write(self, step: int, rows: Sequence[Row]) -> None:
        if not self.schedule(step):
            return
        layers: dict[str, dict[str, float]] = defaultdict(dict)
        model: dict[str, float] = {}
        for row in rows:
            if row.layer is None:
                model[row.metric] = row.value
            else:
                layers[row.layer][row.metric] = row.value
        norms = [v["grad_norm"] for v in layers.values() if math.isfinite(v.get("grad_norm", -1))]
        median = statistics.median(norms) if norms else 0.0
        ranked = sorted(layers.items(), key=lambda kv: -_badness(kv[1], median))[: self.top]
        columns = [c for c in _COLUMNS if any(c in v for _, v in ranked)]
        totals = ", ".join(f"{k} {v:.4g}" for k, v in model.items())
        cols = [Col("layer", justify="left", key=True)] + [
            Col(c, drop=_DROP.get(c, 1), short=_SHORT.get(c)) for c in columns
        ]
        cells: list[list[Cell]] = [
            [Text(layer_label(name)), *(f"{values[c]:.3g}" if c in values else "" for c in columns)]
            for name, values in ranked
        ]
        title = f"step {step}: {totals}" if totals else f"step {step}"
        self.console.print(FitTable(cols, cells, title=title))
