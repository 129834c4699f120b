"""A monitored run as a page of text: summary, findings over the run, the last logged step."""

from __future__ import annotations

import math
from pathlib import Path

from stabletrain.monitoring.sinks.base import layer_label
from stabletrain.report._diagnosis_page import severity_counts
from stabletrain.report._format import Page, Table, finding_views, num, pct
from stabletrain.report.run import RunLog

# (metric, column, formatter) of the last-step table, in order; a column nobody logged is left out
_COLUMNS = (
    ("grad_norm", "grad norm", num),
    ("weight_norm", "weight norm", num),
    ("update_ratio", "update ratio", num),
    ("act_mean", "act mean", num),
    ("act_std", "act std", num),
    ("dead_fraction", "dead", pct),
    ("saturation_fraction", "saturated", pct),
    ("max_row_cosine", "max row cos", lambda v: num(v, 4)),
    ("grad_nonfinite", "grad NaN/inf", lambda v: num(v, 6)),
    ("weight_nonfinite", "weight NaN/inf", lambda v: num(v, 6)),
)


def _last_step_table(run: RunLog) -> Table:
    step = run.steps[-1]
    values = {(r.layer, r.metric): r.value for r in run.rows if r.step == step}
    logged = {metric for _, metric in values}
    columns = [(m, c, f) for m, c, f in _COLUMNS if m in logged]
    rows = tuple(
        (layer_label(layer), *(f(values.get((layer, m))) for m, _, f in columns))
        for layer in run.layers
    )
    return Table(
        f"Layers at the last logged step ({step})",
        ("layer", *(c for _, c, _ in columns)),
        rows,
        (False,) + (True,) * len(columns),
    )


def _loss_text(run: RunLog) -> str:
    _, losses = run.series(None, "loss")
    if not losses:
        return "not logged"
    finite = [v for v in losses if math.isfinite(v)]
    best = f", lowest {num(min(finite), 4)}" if finite else ""
    return f"{num(losses[0], 4)} → {num(losses[-1], 4)}{best}"


def _findings_note(run: RunLog) -> str:
    if run.findings_source == "monitor":
        return (
            "Findings are the ones the monitor recorded while training, with the layer metadata "
            "it had (stabletrain.monitoring.rules)."
        )
    return (
        "Findings are recomputed from the logged rows with the monitor's rules "
        "(stabletrain.monitoring.rules); the loss-plateau window counts logged steps, and "
        "layer depth is inferred from the rows."
    )


def run_page(run: RunLog) -> Page:
    """The text of a run report."""
    steps = run.steps
    span = f"{len(steps)} ({steps[0]}-{steps[-1]})" if steps else "0"
    summary: list[tuple[str, str]] = []
    if run.source is not None:
        summary.append(("log", run.source))
    summary += [
        ("logged steps", span),
        ("layers", str(len(run.layers))),
        ("loss (first → last logged)", _loss_text(run)),
        ("total grad norm (last)", num(run.last(None, "grad_norm"))),
    ]
    skipped = run.last(None, "skipped_steps")
    if skipped is not None:
        summary.append(("skipped steps", num(skipped, 6)))
    summary.append(("findings", severity_counts(list(run.findings))))
    tables = (_last_step_table(run),) if steps else ()
    name = Path(run.source).name if run.source else "rows"
    return Page(
        kind="run",
        title=f"stabletrain training run: {name}",
        subtitle="Per-layer training health over the logged steps, with findings and fixes.",
        summary=tuple(summary),
        compare=(),
        findings=finding_views(run.findings, steps=True),
        tables=tables,
        notes=(_findings_note(run),),
    )
