"""Which parameter went to which group, with which decay and learning-rate scale, and why."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

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

    def __rich__(self) -> Table:
        table = Table(title="stabletrain parameter groups", title_justify="left")
        for column in ("parameter", "shape", "group", "decay", "lr scale", "depth", "reason"):
            numeric = column in ("group", "decay", "lr scale", "depth")
            table.add_column(column, justify="right" if numeric else "left")
        for row in self.rows:
            name = row.name + "".join(f"\n= {alias}" for alias in row.aliases)
            frozen = row.group is None
            table.add_row(
                name,
                "×".join(map(str, row.shape)) or "scalar",
                "frozen" if frozen else str(row.group),
                "" if frozen else f"{row.weight_decay:g}",
                "" if frozen else f"{row.lr_scale:.4g}",
                str(row.depth),
                f"{row.category}: {row.reason}",
            )
        return table

    def __str__(self) -> str:
        return render_text(self)
