"""The monitor's rules run again over a log's rows, step by step: which fired, where and when.

For a log without recorded findings (rows from ``MemorySink.rows`` alone, or a log written
before the monitor recorded them) or a report with other thresholds, a report recomputes them
with :data:`stabletrain.monitoring.rules.RULES`. What the rows do not record is inferred:

- ``depth`` (position among the weight layers, for the depth rules): as the monitor recorded it
  in the log's meta line when there is one; else every layer with a ``grad_norm`` row, in the
  order the monitor wrote them (its execution or registration order). The monitor leaves
  normalization and embedding layers out of its depth count; rows alone do not say which
  layers those are, so with them the depth rules see a few more layers.
- ``losses`` (for ``loss_plateau``): the losses of the logged steps only, so the rule's window
  counts logged steps rather than every step.
- ``window_batches`` (the dead-unit window): the logged steps with activation rows so far.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import replace

from stabletrain.findings import Finding, FindingKey, fold_findings, ordered_findings
from stabletrain.monitoring.rules import RULES, LayerMeta, StepMetrics, Thresholds
from stabletrain.monitoring.sinks.base import Row

_ACTIVATION_METRICS = ("act_mean", "act_std", "dead_fraction", "saturation_fraction")


def layer_order(rows: Sequence[Row]) -> tuple[str, ...]:
    """The layers of the log (None excluded), in the order the monitor first wrote them."""
    return tuple(dict.fromkeys(r.layer for r in rows if r.layer is not None))


def _metas(rows: Sequence[Row], layers: tuple[str, ...]) -> tuple[LayerMeta, ...]:
    with_grad = {r.layer for r in rows if r.metric == "grad_norm"}
    metas, depth = [], 0
    for name in layers:
        if name in with_grad:
            metas.append(LayerMeta(name, depth))
            depth += 1
        else:
            metas.append(LayerMeta(name))
    return tuple(metas)


def by_step(rows: Sequence[Row]) -> dict[int, list[Row]]:
    """The rows grouped by step, steps ascending."""
    steps: dict[int, list[Row]] = {}
    for row in rows:
        steps.setdefault(row.step, []).append(row)
    return dict(sorted(steps.items()))


def replay(
    rows: Sequence[Row],
    thresholds: Thresholds,
    depths: Mapping[str, int | None] | None = None,
) -> list[Finding]:
    """Every firing of every rule, step by step (``step == last_step``, ``count == 1``);
    ``depths``: each layer's depth as the monitor recorded it (else inferred from the rows)."""
    layers = layer_order(rows)
    if depths is None:
        metas = _metas(rows, layers)
    else:
        metas = tuple(LayerMeta(name, depths.get(name)) for name in layers)
    losses: deque[float] = deque(maxlen=thresholds.loss_window)
    batches = 0
    events = []
    for step, step_rows in by_step(rows).items():
        values = {(r.layer, r.metric): r.value for r in step_rows}
        if (None, "loss") in values:
            losses.append(values[(None, "loss")])
        if any(r.metric in _ACTIVATION_METRICS for r in step_rows):
            batches += 1
        metrics = StepMetrics(step, metas, values, tuple(losses), batches, None)
        for name, rule in RULES.items():
            for finding in rule(metrics, thresholds):
                events.append(replace(finding, rule=name, step=step, last_step=step))
    return events


def merge(events: Sequence[Finding], layers: Sequence[str]) -> list[Finding]:
    """The firings merged per (rule, layer, metric) as the monitor merges them
    (:meth:`Finding.merged`), errors first, then by first step and layer order."""
    merged: dict[FindingKey, Finding] = {}
    fold_findings(merged, events)
    return ordered_findings(merged.values(), layers)
