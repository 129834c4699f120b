"""Before training: signal propagation checked against theory, architecture lint, reports."""

from stabletrain.diagnostics.diagnosis import SCHEMA_NAME, SCHEMA_VERSION, Diagnosis, LayerStats
from stabletrain.diagnostics.lint import LINT_RULES, LintThresholds, lint
from stabletrain.diagnostics.propagation import diagnose

__all__ = [
    "LINT_RULES",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "Diagnosis",
    "LayerStats",
    "LintThresholds",
    "diagnose",
    "lint",
]
