"""Every claim of the tutorials reproduced by an experiment with a measured verdict.

Experiments register themselves by claim ID (see ``../CLAIMS.md`` of the project's tutorials);
:mod:`stabletrain.lab.experiment` holds the building blocks, :mod:`stabletrain.lab.verdicts` the
comparisons that decide a verdict, :mod:`stabletrain.lab.staged` the one shape of an experiment
(measure each seed, decide on the interval, explain) and :mod:`stabletrain.lab.estimate` the
interval of a number measured on several seeds.
"""

from stabletrain.lab import verdicts
from stabletrain.lab.estimate import Estimate, NamedNumber
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
from stabletrain.lab.staged import Explanation, Staged, measured

__all__ = [
    "OUTCOMES",
    "REGISTRY",
    "Context",
    "Estimate",
    "Experiment",
    "Explanation",
    "Figure",
    "NamedNumber",
    "Outcome",
    "Result",
    "Staged",
    "Table",
    "Verdict",
    "experiment",
    "measured",
    "verdicts",
]
