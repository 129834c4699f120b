"""Before training: signal propagation checked against theory, architecture lint, reports."""

from stabletrain.diagnostics.diagnosis import SCHEMA_NAME, SCHEMA_VERSION, Diagnosis, LayerStats

__all__ = ["SCHEMA_NAME", "SCHEMA_VERSION", "Diagnosis", "LayerStats"]
