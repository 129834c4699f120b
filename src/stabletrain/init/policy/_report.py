"""What auto_init and lsuv_ did to every parameter, and why: a table and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

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
        """Plain data: ``{"params": [...], "notes": [...], "forward_passes": n}``."""
        return {
            "params": [asdict(p) for p in self.params],
            "notes": list(self.notes),
            "forward_passes": self.forward_passes,
        }

    def to_json(self, **kwargs: Any) -> str:
        """The report as JSON (NaN for stds that were not measured)."""
        return json.dumps(self.to_dict(), **kwargs)

    def __rich__(self) -> Table:
        table = Table(title="stabletrain init report", title_justify="left")
        for column in (
            "parameter",
            "shape",
            "followed by",
            "scheme",
            "gain",
            "std before",
            "std after",
            "calibration",
            "output std",
            "rule",
        ):
            numeric = column.startswith(("std", "gain", "cal", "output"))
            table.add_column(column, justify="right" if numeric else "left")
        for p in self.params:
            table.add_row(
                p.name,
                "×".join(map(str, p.shape)) or "scalar",
                p.following,
                p.scheme,
                "" if p.gain is None else f"{p.gain:.4g}",
                f"{p.std_before:.4g}",
                f"{p.std_after:.4g}",
                "" if p.calibration is None else f"×{p.calibration:.4g}",
                "" if p.output_std is None else f"{p.output_std:.4g}",
                p.rule + (" (fallback)" if p.fallback else ""),
            )
        if self.notes:
            table.caption = "\n".join(self.notes)
        return table

    def __str__(self) -> str:
        return render_text(self)
