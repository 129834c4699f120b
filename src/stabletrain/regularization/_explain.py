"""Which parameter went to which group, with which decay and learning-rate scale, and why."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.text import Text

from stabletrain._fit import Cell, Col, FitTable
from stabletrain._render import render_text


@dataclass(frozen=True)
class ParamGroupRow:
    """One distinct parameter: its group (None: frozen, not given to the optimizer) and why."""

    name: str
    shape: tuple[int, ...]
    category: str
    group: int | None
    weight_decay: float
    lr_scale: float
    depth: int
    reason: str
    aliases: tuple[str, ...] = ()


@dataclass
class ParamGroupReport:
    """Every parameter of a model with its group, decay, lr scale, depth and reason.

    Prints as a table; :meth:`to_json` serializes it.
    """

    rows: list[ParamGroupRow] = field(default_factory=list)

    def __getitem__(self, name: str) -> ParamGroupRow:
        for row in self.rows:
            if row.name == name or name in row.aliases:
                return row
        raise KeyError(f"no parameter {name!r} in this report")

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``{"params": [...]}``, one dict per row."""
        return {"params": [asdict(row) for row in self.rows]}

    def to_json(self, **kwargs: Any) -> str:
        """The report as JSON."""
        return json.dumps(self.to_dict(), **kwargs)

    def __rich__(self) -> FitTable:
        columns = (  # on a narrow terminal depth, lr scale and shape give way; names stay whole
            Col("parameter", justify="left", key=True),
            Col("shape", justify="left", drop=3),
            Col("group"),
            Col("decay"),
            Col("lr scale", drop=2, short="lr×"),
            Col("depth", drop=4),
            Col("reason", justify="left", wrap=True, min_width=24, short=""),
        )
        rows: list[list[Cell]] = []
        for row in self.rows:
            name = row.name + "".join(f"\n= {alias}" for alias in row.aliases)
            frozen = row.group is None
            rows.append(
                [
                    Text(name),
                    "×".join(map(str, row.shape)) or "scalar",
                    "frozen" if frozen else str(row.group),
                    "" if frozen else f"{row.weight_decay:g}",
                    "" if frozen else f"{row.lr_scale:.4g}",
                    str(row.depth),
                    Text(f"{row.category}: {row.reason}"),
                ]
            )
        return FitTable(columns, rows, title="stabletrain parameter groups")

    def __str__(self) -> str:
        return render_text(self)
