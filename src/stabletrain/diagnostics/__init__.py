"""Before training: signal propagation checked against theory, architecture lint, reports."""

from stabletrain.diagnostics.diagnosis import SCHEMA_NAME, SCHEMA_VERSION, Diagnosis, LayerStats
from stabletrain.diagnostics.lint import LINT_RULES, LintThresholds, lint
from stabletrain.diagnostics.propagation import diagnose
from stabletrain.report import (
    RunLog,
    diagnosis_html,
    diagnosis_markdown,
    load_run,
    render_run,
    run_html,
    run_markdown,
    write_report,
)

__all__ = [
    "LINT_RULES",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "Diagnosis",
    "LayerStats",
    "LintThresholds",
    "RunLog",
    "diagnose",
    "diagnosis_html",
    "diagnosis_markdown",
    "lint",
    "load_run",
    "render_run",
    "run_html",
    "run_markdown",
    "write_report",
]
