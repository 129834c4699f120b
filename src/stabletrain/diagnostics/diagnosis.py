"""What ``diagnose`` measured, layer by layer, next to what theory predicts: the data model.

A :class:`Diagnosis` is plain data: the propagation pass fills it, the lint adds findings, the
reports render it, and it round-trips through JSON (:meth:`Diagnosis.to_dict` /
:meth:`Diagnosis.from_dict`). The JSON schema, version :data:`SCHEMA_VERSION`::

    {
      "schema": "stabletrain.diagnosis", "version": 1,
      "model": str, "input_shape": [int, ...] | null, "loss": str, "loss_value": float,
      "forward_gain": float, "backward_gain": float,
      "histogram_edges": [float, ...],
      "layers": [LayerStats as a dict, in execution order],
      "findings": [Finding as a dict],
      "init_report": InitReport.to_dict() | null,
      "notes": [str, ...],
      "before": Diagnosis as a dict | null    (optional: the diagnosis before a fix)
    }

Floats that were not measured are ``NaN`` (JSON ``NaN``, as Python's ``json`` writes it).
Histograms are fractions of a layer's output (they sum to 1) over ``histogram_edges``, which
are in units of that layer's output RMS ``sqrt(E[z²])``, symmetric around 0; values beyond the
edges count in the end bins.

Example:
    >>> layer = LayerStats(name="0", kind="Linear", depth=0, activation="relu",
    ...     out_std=1.2, predicted_out_std=1.0, grad_out_std=0.5, predicted_grad_out_std=0.5)
    >>> round(layer.forward_ratio, 2), layer.backward_ratio
    (1.2, 1.0)
    >>> d = Diagnosis(model="Sequential", layers=(layer,))
    >>> Diagnosis.from_dict(d.to_dict()) == d
    True
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from rich.console import RenderableType

from stabletrain._render import render_text
from stabletrain.diagnostics._table import diagnosis_table
from stabletrain.findings import Finding

__all__ = ["SCHEMA_NAME", "SCHEMA_VERSION", "Diagnosis", "LayerStats"]

SCHEMA_NAME = "stabletrain.diagnosis"
SCHEMA_VERSION = 1
_NAN = float("nan")


def _ratio(measured: float, predicted: float | None) -> float:
    if predicted is None or not math.isfinite(predicted) or predicted == 0.0:
        return _NAN
    return measured / predicted


@dataclass(frozen=True)
class LayerStats:
    """One layer's measurements on the example batch, and the theory's prediction for them.

    Attributes:
        name: the qualified module name (``"blocks.3.fc1"``).
        kind: the module's class name (``"Linear"``, ``"Conv2d"``, ``"LayerNorm"``).
        depth: position in execution order among the layers listed (0 = first).
        activation: the activation observed to follow the layer (``"relu"``), or None.
        scheme: the initialization the weights look like (``"he"``, ``"xavier"``,
            ``"standard"``, ``"constant"``, ...) or None when unknown.
        fan_in: the weight's fan-in (0 for layers without a weight matrix).
        weight_std: standard deviation of the weight.
        out_mean: mean of the layer's output (pre-activation).
        out_std: standard deviation of the layer's output (pre-activation).
        act_std: standard deviation after the following activation (NaN when none).
        zero_fraction: fraction of the activation's outputs that are exactly 0.
        saturated_fraction: fraction of a bounded activation's outputs within 1% of a bound.
        grad_out_std: standard deviation of dL/d(output) of the layer.
        grad_weight_std: standard deviation of dL/d(weight).
        predicted_out_std: what theory predicts for ``out_std`` (Var(z) = n_in·Var(w)·E[x²],
            chained from the input through the gains of the activations in use).
        predicted_grad_out_std: what theory predicts for ``grad_out_std`` (the backward chain,
            Var(g_in) = n_out·Var(w)·E[f'(z)²]·Var(g_out), from the last layer back).
        histogram: the fraction of the layer's output in each bin of
            :attr:`Diagnosis.histogram_edges` (signed, in units of the output's RMS), for the
            heatmap; empty when not taken.
    """

    name: str
    kind: str
    depth: int
    activation: str | None = None
    scheme: str | None = None
    fan_in: int = 0
    weight_std: float = _NAN
    out_mean: float = _NAN
    out_std: float = _NAN
    act_std: float = _NAN
    zero_fraction: float = _NAN
    saturated_fraction: float = _NAN
    grad_out_std: float = _NAN
    grad_weight_std: float = _NAN
    predicted_out_std: float | None = None
    predicted_grad_out_std: float | None = None
    histogram: tuple[float, ...] = ()

    @property
    def forward_ratio(self) -> float:
        """``out_std / predicted_out_std`` (NaN without a prediction); 1 is on theory."""
        return _ratio(self.out_std, self.predicted_out_std)

    @property
    def backward_ratio(self) -> float:
        """``grad_out_std / predicted_grad_out_std`` (NaN without a prediction)."""
        return _ratio(self.grad_out_std, self.predicted_grad_out_std)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, with the two ratios added (they are ignored by ``from_dict``)."""
        data = asdict(self)
        data["histogram"] = list(self.histogram)
        data["forward_ratio"] = self.forward_ratio
        data["backward_ratio"] = self.backward_ratio
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerStats:
        """The inverse of :meth:`to_dict`."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["histogram"] = tuple(float(v) for v in data.get("histogram", ()))
        return cls(**kwargs)


@dataclass
class Diagnosis:
    """Per-layer statistics against theory, whole-network gains, and findings with fixes.

    Attributes:
        model: the model's class name (or the factory it came from).
        layers: per-layer statistics in execution order.
        input_shape: the example input's shape, when it is one tensor.
        loss: which loss the backward pass used (``"cross_entropy(random labels)"``, ...).
        loss_value: its value on the example batch.
        forward_gain: std of the network output / std of the input.
        backward_gain: grad std at the first layer's output / at the last layer's output
            (below 1: gradients shrink on their way back; far below: they vanish).
        histogram_edges: the bin edges of every layer's ``histogram``, in units of each
            layer's output RMS ``sqrt(E[z²])`` (the same edges for every layer, so a heatmap
            shows each layer's shape; ``out_std`` gives its scale).
        findings: problems found (lint and propagation), each with its fix.
        init_report: the ``InitReport.to_dict()`` of a fix, when one was applied.
        notes: what the diagnosis could not measure, and why.
        before: the diagnosis of the model before a fix was applied (``diagnose(...,
            fix=True)``), for a side-by-side view; None otherwise.

    Prints as a table (layer, kind, activation, measured and predicted stds and their ratios,
    zero and saturated fractions) followed by the findings.
    """

    model: str
    layers: tuple[LayerStats, ...] = ()
    input_shape: tuple[int, ...] | None = None
    loss: str = ""
    loss_value: float = _NAN
    forward_gain: float = _NAN
    backward_gain: float = _NAN
    histogram_edges: tuple[float, ...] = ()
    findings: list[Finding] = field(default_factory=list)
    init_report: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    before: Diagnosis | None = None

    def __getitem__(self, name: str) -> LayerStats:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(
            f"no layer {name!r} in this diagnosis; layers: {[x.name for x in self.layers]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data following the schema in this module's docstring."""
        return {
            "schema": SCHEMA_NAME,
            "version": SCHEMA_VERSION,
            "model": self.model,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "loss": self.loss,
            "loss_value": self.loss_value,
            "forward_gain": self.forward_gain,
            "backward_gain": self.backward_gain,
            "histogram_edges": list(self.histogram_edges),
            "layers": [layer.to_dict() for layer in self.layers],
            "findings": [asdict(f) for f in self.findings],
            "init_report": self.init_report,
            "notes": list(self.notes),
            "before": None if self.before is None else self.before.to_dict(),
        }

    def to_json(self, **kwargs: Any) -> str:
        """The diagnosis as JSON (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnosis:
        """Read back :meth:`to_dict`'s output; raises ValueError on another schema or version."""
        if data.get("schema") != SCHEMA_NAME or data.get("version") != SCHEMA_VERSION:
            raise ValueError(
                f"Diagnosis.from_dict: expected schema {SCHEMA_NAME!r} version {SCHEMA_VERSION}, "
                f"got {data.get('schema')!r} version {data.get('version')!r}; write it with this "
                "version of stabletrain."
            )
        shape = data.get("input_shape")
        before = data.get("before")
        return cls(
            model=data["model"],
            layers=tuple(LayerStats.from_dict(x) for x in data["layers"]),
            input_shape=None if shape is None else tuple(shape),
            loss=data["loss"],
            loss_value=data["loss_value"],
            forward_gain=data["forward_gain"],
            backward_gain=data["backward_gain"],
            histogram_edges=tuple(data["histogram_edges"]),
            findings=[Finding(**f) for f in data["findings"]],
            init_report=data["init_report"],
            notes=list(data["notes"]),
            before=None if before is None else cls.from_dict(before),
        )

    def __rich__(self) -> RenderableType:
        return diagnosis_table(self)

    def __str__(self) -> str:
        return render_text(self)
