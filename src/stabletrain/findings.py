"""A finding: a problem found in a model or a training run, where, how bad, and its fix.

The monitor (:mod:`stabletrain.monitoring.rules`), the diagnosis and the lint
(:mod:`stabletrain.diagnostics`) all report :class:`Finding` objects, and the reports render
them; this module is their shared home. Build one with keyword arguments:

    >>> f = Finding(severity="warning", layer="fc1", metric="grad_norm", value=1e-9,
    ...             threshold=1e-7, message="The gradient vanishes.", fix="auto_init",
    ...             rule="vanishing")
    >>> f.severity, f.count
    ('warning', 1)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

__all__ = [
    "SEVERITIES",
    "Finding",
    "FindingKey",
    "Severity",
    "fold_findings",
    "ordered_findings",
]

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error")


@dataclass(frozen=True, kw_only=True)
class Finding:
    """A problem found in a model or a run: where, how bad, and which stabletrain call fixes it.

    Every field is a keyword argument (``Finding(severity=..., layer=..., ...)``).

    Attributes:
        severity: ``"error"`` (training is broken), ``"warning"`` (it is impaired) or
            ``"info"``.
        layer: the qualified module name, or None for the whole model.
        metric: the measurement that crossed the threshold (a row's metric name).
        value: its value, on the latest step the finding fired.
        threshold: the threshold it crossed.
        message: what is wrong, in one sentence.
        fix: the stabletrain call or setting that addresses it.
        rule: the rule that fired (a name in :data:`RULES`).
        step: the first logged step on which it fired.
        last_step: the latest.
        count: on how many logged steps it fired.
    """

    severity: Severity
    layer: str | None
    metric: str
    value: float
    threshold: float
    message: str
    fix: str
    rule: str = ""
    step: int = 0
    last_step: int = 0
    count: int = 1

    def merged(self, again: Finding) -> Finding:
        """This finding fired again as ``again`` on a later step: the first step kept, the
        latest value, threshold, message, fix (too high vs too low) and severity, one more count.

        Example:
            >>> first = Finding(severity="warning", layer="fc", metric="grad_norm", value=1e-9,
            ...                 threshold=1e-7, message="small", fix="fix", rule="r", step=5,
            ...                 last_step=5)
            >>> later = replace(first, value=1e-10, step=9, last_step=9)
            >>> m = first.merged(later)
            >>> m.step, m.last_step, m.count, m.value
            (5, 9, 2, 1e-10)
        """
        return replace(
            self,
            value=again.value,
            threshold=again.threshold,
            message=again.message,
            fix=again.fix,
            severity=again.severity,
            last_step=again.last_step,
            count=self.count + again.count,
        )

    def to_json(self) -> dict[str, Any]:
        """The finding as a JSON object; a non-finite number is written as the string ``"nan"``,
        ``"inf"`` or ``"-inf"`` (JSON has no NaN). Every field is a plain value, so a shallow
        copy is ``dataclasses.asdict`` without its recursive deep copy (a monitor writes one
        per finding per logged step)."""
        obj = {name: getattr(self, name) for name in _FIELD_NAMES}
        for key in ("value", "threshold"):
            if not math.isfinite(obj[key]):
                obj[key] = str(obj[key])
        return obj

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Finding:
        """Read back a finding written by :meth:`to_json`.

        Raises:
            ValueError: a field is missing, or the severity is not one of :data:`SEVERITIES`.
        """
        try:
            severity = obj["severity"]
            if severity not in SEVERITIES:
                raise ValueError(
                    f"Finding.from_json: severity {severity!r} is not one of {SEVERITIES}."
                )
            return cls(
                severity=severity,
                layer=obj["layer"],
                metric=str(obj["metric"]),
                value=float(obj["value"]),
                threshold=float(obj["threshold"]),
                message=str(obj["message"]),
                fix=str(obj["fix"]),
                rule=str(obj.get("rule", "")),
                step=int(obj.get("step", 0)),
                last_step=int(obj.get("last_step", 0)),
                count=int(obj.get("count", 1)),
            )
        except KeyError as err:
            raise ValueError(f"Finding.from_json: {dict(obj)!r} has no field {err}.") from err


_FIELD_NAMES = tuple(f.name for f in fields(Finding))

FindingKey = tuple[str, str | None, str]
"""How repeated firings are merged: ``(rule, layer, metric)``."""


def fold_findings(merged: dict[FindingKey, Finding], events: Iterable[Finding]) -> None:
    """Merge each firing of ``events`` into ``merged``, in place, by ``(rule, layer, metric)``
    (:meth:`Finding.merged`): how the monitor and a report merge repeated findings.

    Example:
        >>> f = Finding(severity="info", layer=None, metric="loss", value=1.0, threshold=0.0,
        ...             message="plateau", fix="lr", rule="loss_plateau", step=3, last_step=3)
        >>> merged: dict[FindingKey, Finding] = {}
        >>> fold_findings(merged, [f, replace(f, step=5, last_step=5)])
        >>> [(m.step, m.last_step, m.count) for m in merged.values()]
        [(3, 5, 2)]
    """
    for event in events:
        key = (event.rule, event.layer, event.metric)
        old = merged.get(key)
        merged[key] = event if old is None else old.merged(event)


def ordered_findings(findings: Iterable[Finding], layers: Sequence[str]) -> list[Finding]:
    """``findings`` errors first, then by first step, by position in ``layers`` (the whole
    model's first) and by rule."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    order = {name: i for i, name in enumerate(layers)}
    return sorted(
        findings,
        key=lambda f: (-rank[f.severity], f.step, order.get(f.layer or "", -1), f.rule),
    )
