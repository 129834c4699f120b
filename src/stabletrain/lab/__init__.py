"""Every claim of the tutorials reproduced by an experiment with a measured verdict.

Experiments register themselves by claim ID (see ``../CLAIMS.md`` of the project's tutorials);
:mod:`stabletrain.lab.experiment` holds the building blocks, :mod:`stabletrain.lab.verdicts` the
comparisons that decide a verdict.
"""

from stabletrain.lab import verdicts
from stabletrain.lab.experiment import (
    OUTCOMES,
    REGISTRY,
    Context,
    Experiment,
    Figure,
    Outcome,
    Result,
    Table,
    Verdict,
    experiment,
)

__all__ = [
    "OUTCOMES",
    "REGISTRY",
    "Context",
    "Experiment",
    "Figure",
    "Outcome",
    "Result",
    "Table",
    "Verdict",
    "experiment",
    "verdicts",
]
