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

__all__ = ["LOAD_ERRORS", "load_all"]

LOAD_ERRORS: dict[str, str] = {}
"""``{module name: the error}`` for experiment modules that failed to import."""


def load_all() -> dict[str, Experiment]:
    """Import every experiment module (each registers itself); return ``{ID: Experiment}``.

    A module that fails to import does not stop the others: its error is kept in
    :data:`LOAD_ERRORS` and its claims have no experiment (the runner reports them as errors).
    """
    for module in pkgutil.iter_modules(_package.__path__):
        name = f"{_package.__name__}.{module.name}"
        try:
            importlib.import_module(name)
        except Exception as err:  # an experiment's bug must not take the whole lab down
            LOAD_ERRORS[module.name] = f"{type(err).__name__}: {err}"
        else:
            LOAD_ERRORS.pop(module.name, None)
    return dict(REGISTRY)
