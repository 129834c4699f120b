"""What auto_init and lsuv_ did to every parameter, and why: a table and JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.text import Text

from stabletrain._fit import Cell, Col, FitTable
from stabletrain._render import render_text


@dataclass
class ParamRecord:
    """One parameter: where it is, what follows its layer, what was done and why."""

    name: str
    layer: str
    shape: tuple[int, ...]
    following: str
    scheme: str
    rule: str
    std_before: float
    std_after: float = float("nan")
    gain: float | None = None
    calibration: float | None = None  # the factor the calibration pass multiplied it by
    output_std: float | None = None  # the layer's output std on the batch, after calibration
    fallback: bool = False  # no rule matched: the module's own init was kept


@dataclass
class InitReport:
    """Every parameter with its scheme, the rule that chose it, and its std before/after.

    Prints as a table; :meth:`to_json` serializes it. ``notes`` says what was corrected by
    measurement (calibration, residual scaling) and what could not be classified.
    """

    params: list[ParamRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    forward_passes: int = 0
    planned: bool = False  # a plan (:func:`plan_init`): nothing was changed or measured

    def __getitem__(self, name: str) -> ParamRecord:
        for record in self.params:
            if record.name == name:
                return record
        raise KeyError(f"no parameter {name!r} in this report")

    @property
    def fallbacks(self) -> list[ParamRecord]:
        """Parameters no rule classified (kept as they were)."""
        return [p for p in self.params if p.fallback]

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``{"params": [...], "notes": [...], "forward_passes": n, "planned": b}``
        (a std not known, in a plan, is ``None``: JSON has no NaN)."""
        return {
            "params": [
                {
                    k: None if isinstance(v, float) and math.isnan(v) else v
                    for k, v in asdict(p).items()
                }
                for p in self.params
            ],
            "notes": list(self.notes),
            "forward_passes": self.forward_passes,
            "planned": self.planned,
        }

    def to_json(self, **kwargs: Any) -> str:
        """The report as JSON (NaN for stds that were not measured)."""
        return json.dumps(self.to_dict(), **kwargs)

    def __rich__(self) -> FitTable:
        columns = (  # on a narrow terminal the higher ``drop`` levels give way first
            Col("parameter", justify="left", key=True),
            Col("shape", justify="left", drop=2),
            Col("followed by", justify="left"),
            Col("scheme", justify="left"),
            Col("gain", drop=3),
            Col("std before", drop=4, short="before"),
            Col("std after", short="after"),
            Col("calibration", drop=5, short="calib"),
            Col("output std", drop=5, short="out std"),
            Col("rule", justify="left", drop=1),
        )
        rows: list[list[Cell]] = [
            [
                Text(p.name),
                "×".join(map(str, p.shape)) or "scalar",
                Text(p.following),
                Text(p.scheme),
                "" if p.gain is None else f"{p.gain:.4g}",
                _std(p.std_before),
                _std(p.std_after),
                "" if p.calibration is None else f"×{p.calibration:.4g}",
                "" if p.output_std is None else f"{p.output_std:.4g}",
                Text(p.rule + (" (fallback)" if p.fallback else "")),
            ]
            for p in self.params
        ]
        caption = Text("\n".join(self.notes)) if self.notes else None
        title = (
            "stabletrain init plan (nothing changed)" if self.planned else "stabletrain init report"
        )
        return FitTable(columns, rows, title=title, caption=caption)

    def __str__(self) -> str:
        return render_text(self)


def _std(value: float) -> str:
    """A std for the table; empty where not known (a plan, a meta tensor)."""
    return "" if math.isnan(value) else f"{value:.4g}"
