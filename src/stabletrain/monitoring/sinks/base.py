"""What the monitor hands to its sinks: rows of measurements and histograms, and the interface.

A :class:`Row` is one number: ``(step, layer, metric, value)``; ``layer`` is None for the
metrics of the whole model (``loss``, total ``grad_norm``, ``skipped_steps``). The metric names:

=======================  =======================================================  ========
metric                   value                                                    preset
=======================  =======================================================  ========
``grad_norm``            ‖∂L/∂θ‖ before clipping (None layer: all parameters)     minimal
``weight_norm``          ‖θ‖ over the layer's parameters                          minimal
``grad_nonfinite``       number of NaN/±inf gradient entries                      minimal
``weight_nonfinite``     number of NaN/±inf weight entries                        minimal
``loss``                 the loss passed to ``step`` (None layer)                 minimal
``skipped_steps``        the guard's count of skipped steps (None layer)          minimal
``update_ratio``         ‖θ_t − θ_{t−1}‖ / ‖θ_t‖ over the trainable parameters    standard
``act_mean``             mean of the layer's activations on the step's batches    standard
``act_std``              std of the same                                          standard
``dead_fraction``        fraction of units never > 0 over the window (ReLU-like)  standard
``saturation_fraction``  fraction of outputs within 1% of a bound (tanh-like)     standard
``max_row_cosine``       largest cosine similarity of two weight rows (units)     full
``clip_ratio``           ‖g as stepped‖ / ‖g after backward‖ (None layer)        minimal
=======================  =======================================================  ========

Histograms (preset ``full``, for sinks that ask for them) are of each layer's main weight
(``weight``) and its gradient (``grad``).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stabletrain.findings import Finding

__all__ = ["METRICS", "SCHEMA_VERSION", "Histogram", "Row", "Sink", "layer_label"]

SCHEMA_VERSION = 1
"""Version of the row schema written by :class:`~stabletrain.monitoring.JSONLSink`."""

METRICS: tuple[str, ...] = (
    "grad_norm",
    "weight_norm",
    "grad_nonfinite",
    "weight_nonfinite",
    "loss",
    "skipped_steps",
    "update_ratio",
    "act_mean",
    "act_std",
    "dead_fraction",
    "saturation_fraction",
    "max_row_cosine",
    "clip_ratio",
)


def layer_label(layer: str | None) -> str:
    """How tables and tags name a layer: ``"(model)"`` for the whole model (None), ``"(root)"``
    for parameters held by the model itself (``""``), else the qualified module name."""
    if layer is None:
        return "(model)"
    return layer or "(root)"


@dataclass(frozen=True, slots=True)
class Row:
    """One measurement: ``metric`` of ``layer`` (None: the whole model) at ``step``."""

    step: int
    layer: str | None
    metric: str
    value: float

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON object of schema :data:`SCHEMA_VERSION`; a non-finite value is
        written as the string ``"nan"``, ``"inf"`` or ``"-inf"`` (JSON has no NaN)."""
        value: float | str = self.value
        if value != value or value in (float("inf"), float("-inf")):
            value = str(value)
        return {
            "schema": SCHEMA_VERSION,
            "step": self.step,
            "layer": self.layer,
            "metric": self.metric,
            "value": value,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Row:
        """Read back a row written by :meth:`to_json`.

        Raises:
            ValueError: the object is of another schema version, misses a field, or a field has
                the wrong type (the message names the field, the value and what it must be).
        """
        if obj.get("schema") != SCHEMA_VERSION:
            raise ValueError(
                f"Row.from_json: schema {obj.get('schema')!r} is not {SCHEMA_VERSION}; read it "
                "with the stabletrain version that wrote it."
            )
        try:
            step, layer, metric, value = obj["step"], obj["layer"], obj["metric"], obj["value"]
        except KeyError as err:
            raise ValueError(f"Row.from_json: the row {obj!r} has no field {err}.") from err
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(
                f"Row.from_json: step must be an int >= 1 (the monitor's step count), got {step!r}."
            )
        if layer is not None and not isinstance(layer, str):
            raise ValueError(
                "Row.from_json: layer must be a module name (a string), or null for the whole "
                f"model, got {layer!r}."
            )
        if not isinstance(metric, str) or not metric:
            raise ValueError(
                f"Row.from_json: metric must be a name such as 'grad_norm', got {metric!r}."
            )
        return cls(step, layer, metric, _number(value))


def _number(value: Any) -> float:
    """A row's value: a JSON number, or the string ``"nan"``, ``"inf"`` or ``"-inf"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf", "+inf"):
        return float(value)
    raise ValueError(
        'Row.from_json: value must be a number, or "nan", "inf" or "-inf" (JSON has no NaN), '
        f"got {value!r}."
    )


@dataclass(frozen=True)
class Histogram:
    """A histogram of one tensor: ``bins`` equal-width buckets from ``low`` to ``high``.

    ``num``, ``total`` and ``sum_squares`` are the count, sum and sum of squares of the values;
    non-finite values are counted as 0.
    """

    step: int
    layer: str
    metric: str  # "weight" or "grad"
    low: float
    high: float
    counts: tuple[float, ...]
    num: int
    total: float
    sum_squares: float

    @property
    def edges(self) -> tuple[float, ...]:
        """The ``bins + 1`` bucket boundaries."""
        bins = len(self.counts)
        return tuple(self.low + (self.high - self.low) * i / bins for i in range(bins + 1))


class Sink(abc.ABC):
    """Where the rows go. Subclasses implement :meth:`write`; the rest is optional.

    The monitor calls :meth:`write_meta` once when its ``with`` block starts (the preset, the
    thresholds and the monitored layers), :meth:`write` once per logged step with all of the
    step's rows (and, for a step the schedule did not log whose loss was NaN or inf, with that
    one ``loss`` row, followed by its finding: at that step when the loss was a number, else
    at the next logged step, before its rows, or when the block ends),
    :meth:`write_histograms` on the logged steps where :meth:`wants_histograms` is true (preset
    ``full`` only), :meth:`write_findings` on the logged steps where a rule fired, and
    :meth:`close` when its ``with`` block ends, exceptions included.
    """

    def wants_histograms(self, step: int) -> bool:
        """Whether this sink takes histograms at ``step``."""
        return False

    @abc.abstractmethod
    def write(self, step: int, rows: Sequence[Row]) -> None:
        """Record the rows of one logged step."""

    def write_histograms(self, step: int, histograms: Sequence[Histogram]) -> None:  # noqa: B027
        """Record the histograms of one logged step (ignored by default)."""

    def write_meta(self, meta: Mapping[str, Any]) -> None:  # noqa: B027
        """Record what the monitor watches with, before any row: ``{"preset": str,
        "thresholds": {field: value}, "layers": [{"name": str, "depth": int | None}, ...]}``
        (``depth``: position among the weight layers; ignored by default)."""

    def write_findings(self, step: int, findings: Sequence[Finding]) -> None:  # noqa: B027
        """Record what the rules found on one logged step, each firing once (``step ==
        last_step``, ``count == 1``), after that step's rows (ignored by default)."""

    def close(self) -> None:  # noqa: B027
        """Flush and release what the sink holds; it may be written to again afterwards."""
