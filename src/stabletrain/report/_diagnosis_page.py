"""A Diagnosis as a page of text: summary, before/after, findings, per-layer and init tables."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from stabletrain.findings import SEVERITIES, Finding
from stabletrain.report._format import Page, Table, finding_views, num, pct
from stabletrain.report._format import ratio as fmt_ratio

if TYPE_CHECKING:
    from stabletrain.diagnostics import Diagnosis, LayerStats


def before_of(d: Diagnosis) -> Diagnosis | None:
    """The diagnosis before a fix was applied, if the diagnosis carries one."""
    from stabletrain.diagnostics import Diagnosis

    before = getattr(d, "before", None)
    return before if isinstance(before, Diagnosis) else None


def severity_counts(findings: list[Finding]) -> str:
    """``"1 error, 2 warnings"``, or ``"none"``."""
    counts = Counter(f.severity for f in findings)
    parts = []
    for severity in reversed(SEVERITIES):
        n = counts.get(severity, 0)
        if n:
            plural = "s" if n > 1 and severity != "info" else ""
            parts.append(f"{n} {severity}{plural}")
    return ", ".join(parts) or "none"


def _shape(d: Diagnosis) -> str:
    return "n/a" if d.input_shape is None else "×".join(map(str, d.input_shape)) or "scalar"


def _facts(d: Diagnosis) -> list[tuple[str, str]]:
    return [
        ("forward gain (output std / input std)", num(d.forward_gain)),
        ("backward gain (grad std first / last layer)", num(d.backward_gain)),
        ("loss", f"{d.loss} = {num(d.loss_value, 4)}" if d.loss else num(d.loss_value, 4)),
        ("findings", severity_counts(d.findings)),
    ]


def _layer_table(d: Diagnosis) -> Table:
    rows = tuple(
        (
            x.name,
            x.kind,
            x.activation or "",
            x.scheme or "",
            str(x.fan_in) if x.fan_in else "",
            num(x.out_std),
            num(x.predicted_out_std),
            fmt_ratio(x.forward_ratio),
            num(x.grad_out_std),
            num(x.predicted_grad_out_std),
            fmt_ratio(x.backward_ratio),
            pct(x.zero_fraction),
            pct(x.saturated_fraction),
        )
        for x in d.layers
    )
    columns = (
        "layer",
        "kind",
        "activation",
        "init",
        "fan-in",
        "out std",
        "out theory",
        "out ratio",
        "grad std",
        "grad theory",
        "grad ratio",
        "zero",
        "saturated",
    )
    return Table(
        "Layers: measured against theory",
        columns,
        rows,
        (False,) * 4 + (True,) * 9,
        "Pre-activation output std and dL/d(output) std on the example batch; theory chains "
        "Var(z) = n_in·Var(w)·E[x²] forward and Var(g_in) = n_out·Var(w)·E[f'(z)²]·Var(g_out) "
        "backward; a ratio near ×1 is on theory.",
    )


def _comparison_table(before: Diagnosis, after: Diagnosis) -> Table:
    old: dict[str, LayerStats] = {x.name: x for x in before.layers}
    rows = []
    for x in after.layers:
        b = old.get(x.name)
        rows.append(
            (
                x.name,
                num(b.out_std) if b else "",
                num(x.out_std),
                fmt_ratio(b.forward_ratio) if b else "",
                fmt_ratio(x.forward_ratio),
                num(b.grad_out_std) if b else "",
                num(x.grad_out_std),
                fmt_ratio(b.backward_ratio) if b else "",
                fmt_ratio(x.backward_ratio),
            )
        )
    columns = (
        "layer",
        "out std before",
        "after",
        "out ratio before",
        "after",
        "grad std before",
        "after",
        "grad ratio before",
        "after",
    )
    return Table("Before and after the fix", columns, tuple(rows), (False,) + (True,) * 8)


def _init_table(report: dict[str, Any]) -> Table:
    params = list(report.get("params", []))
    rows = []
    for p in params:
        shape = "×".join(str(s) for s in p.get("shape", ())) or "scalar"
        rule = str(p.get("rule", "")) + (" (fallback)" if p.get("fallback") else "")
        rows.append(
            (
                str(p.get("name", "")),
                shape,
                str(p.get("following", "")),
                str(p.get("scheme", "")),
                num(p.get("gain")),
                num(p.get("std_before")),
                num(p.get("std_after")),
                rule,
            )
        )
    schemes = Counter(str(p.get("scheme", "")) for p in params)
    fallbacks = sum(1 for p in params if p.get("fallback"))
    summary = (
        f"{len(params)} parameter(s): "
        + ", ".join(f"{s} ×{n}" for s, n in schemes.most_common())
        + f"; {fallbacks} kept as they were (no rule matched)"
        + f"; {report.get('forward_passes', 0)} forward pass(es)."
    )
    notes = " ".join(str(n) for n in report.get("notes", []))
    columns = (
        "parameter",
        "shape",
        "followed by",
        "scheme",
        "gain",
        "std before",
        "std after",
        "rule",
    )
    return Table(
        "Initialization applied",
        columns,
        tuple(rows),
        (False,) * 4 + (True,) * 3 + (False,),
        f"{summary} {notes}".strip(),
    )


def diagnosis_page(d: Diagnosis) -> Page:
    """The text of a diagnosis report."""
    from stabletrain.diagnostics import Diagnosis

    if not isinstance(d, Diagnosis):
        raise TypeError(
            f"expected a stabletrain.diagnostics.Diagnosis, got {type(d).__name__}; for a "
            "monitor log pass its rows (read_jsonl(path)) to the run_* functions."
        )
    before = before_of(d)
    summary = [
        ("model", d.model),
        ("input shape", _shape(d)),
        ("layers", str(len(d.layers))),
        *_facts(d),
    ]
    compare: list[tuple[str, str, str]] = []
    if before is not None:
        compare = [
            (label, old, new)
            for (label, old), (_, new) in zip(_facts(before), _facts(d), strict=True)
        ]
    tables = [_layer_table(d)]
    if before is not None:
        tables.append(_comparison_table(before, d))
    if d.init_report is not None:
        tables.append(_init_table(d.init_report))
    return Page(
        kind="diagnosis",
        title=f"stabletrain diagnose: {d.model}",
        subtitle="Signal propagation on one example batch, layer by layer, against theory"
        + ("; before and after the fix." if before is not None else "."),
        summary=tuple(summary),
        compare=tuple(compare),
        findings=finding_views(d.findings, steps=False),
        tables=tuple(tables),
        notes=tuple(d.notes),
    )
