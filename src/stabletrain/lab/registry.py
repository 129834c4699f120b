"""Finding the experiments: import every module of :mod:`stabletrain.lab.experiments` once.

Example:
    >>> experiments = load_all()
    >>> all(claim_id in experiments for claim_id in experiments)
    True
"""

from __future__ import annotations

import importlib
import pkgutil

from stabletrain.lab import experiments as _package
from stabletrain.lab.experiment import REGISTRY, Experiment

__all__ = ["load_all"]


def load_all() -> dict[str, Experiment]:
    """Import every experiment module (each registers itself); return ``{ID: Experiment}``."""
    for module in pkgutil.iter_modules(_package.__path__):
        importlib.import_module(f"{_package.__name__}.{module.name}")
    return dict(REGISTRY)
