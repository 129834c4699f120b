"""Finding the experiments without running them: an index read from the sources, modules
imported only when their experiment is wanted.

:func:`index` reads every module of :mod:`stabletrain.lab.experiments` as text (``ast``, no
import) and maps each ID of an ``@experiment("I5", ...)`` decorator to its module, with the
claim's title from :mod:`stabletrain.lab.claims`, so ``stabletrain lab --list`` needs neither
the experiments nor what they import (scipy, the models). :func:`declared` lists every
decorator's IDs, repeats included, for the checks that each claim has exactly one experiment.
:func:`load` imports the modules of the IDs asked for; :func:`load_all` imports every one.

Example:
    >>> entries = index()
    >>> entries["I5"].module
    'stabletrain.lab.experiments.i5_i8_variance'
    >>> entries["I5"].title
    'Var(z) = n_in·Var(w)·Var(x)'
    >>> "I5" in load(["I5"])
    True
"""

from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stabletrain.lab import experiments as _package
from stabletrain.lab._extras import describe_import_error
from stabletrain.lab.claims import get_claim

if TYPE_CHECKING:  # the experiments' building blocks import torch: only when one is loaded
    from stabletrain.lab.experiment import Experiment

__all__ = ["LOAD_ERRORS", "Entry", "declared", "index", "load", "load_all"]

LOAD_ERRORS: dict[str, str] = {}
"""``{module name: the error}`` for experiment modules that failed to import."""


@dataclass(frozen=True)
class Entry:
    """Where an ID's experiment lives: its module's dotted name, and the claim's title from
    the claim list (empty for an ID that is not there: its module fails to import)."""

    module: str
    title: str


def _decorated_ids(source: str) -> Iterable[str]:
    """The IDs of every ``@experiment(...)`` decorator in ``source``, in order, repeats kept."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and getattr(deco.func, "id", "") == "experiment"):
                continue
            for arg in deco.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield arg.value


def _title(claim_id: str) -> str:
    try:
        return get_claim(claim_id).title
    except ValueError:
        return ""


@functools.cache
def declared() -> tuple[tuple[str, str], ...]:
    """``(ID, module)`` for each ID of each ``@experiment`` decorator of
    :mod:`stabletrain.lab.experiments`, read from the sources (nothing is imported), modules in
    name order; an ID decorated twice appears twice. A module that cannot be read or parsed
    has none; :func:`load_all` reports its error."""
    found: list[tuple[str, str]] = []
    for info in pkgutil.iter_modules(_package.__path__):
        name = f"{_package.__name__}.{info.name}"
        path = Path(getattr(info.module_finder, "path", "")) / f"{info.name}.py"
        try:
            ids = list(_decorated_ids(path.read_text(encoding="utf-8")))
        except (OSError, SyntaxError, ValueError):
            continue
        found += [(claim_id, name) for claim_id in ids]
    return tuple(found)


@functools.cache
def index() -> dict[str, Entry]:
    """``{ID: Entry}`` for every experiment of :mod:`stabletrain.lab.experiments`, read from
    the sources (nothing is imported; an ID decorated twice keeps its first module)."""
    found: dict[str, Entry] = {}
    for claim_id, module in declared():
        found.setdefault(claim_id, Entry(module, _title(claim_id)))
    return found


def _import(module: str) -> None:
    short = module.rpartition(".")[2]
    try:
        importlib.import_module(module)
    except Exception as err:  # an experiment's bug must not take the whole lab down
        LOAD_ERRORS[short] = describe_import_error(err) or f"{type(err).__name__}: {err}"
    else:
        LOAD_ERRORS.pop(short, None)


def load(ids: Iterable[str]) -> dict[str, Experiment]:
    """Import the modules that hold the experiments of ``ids``; return ``{ID: Experiment}``
    for those registered (IDs without an experiment are left out; a module that fails to
    import is recorded in :data:`LOAD_ERRORS`)."""
    from stabletrain.lab.experiment import REGISTRY

    wanted = list(ids)
    entries = index()
    for module in dict.fromkeys(entries[i].module for i in wanted if i in entries):
        _import(module)
    return {i: REGISTRY[i] for i in wanted if i in REGISTRY}


def load_all() -> dict[str, Experiment]:
    """Import every experiment module (each registers itself); return ``{ID: Experiment}``.

    A module that fails to import does not stop the others: its error is kept in
    :data:`LOAD_ERRORS` and its claims have no experiment (the runner reports them as errors).
    """
    from stabletrain.lab.experiment import REGISTRY

    for info in pkgutil.iter_modules(_package.__path__):
        _import(f"{_package.__name__}.{info.name}")
    return dict(REGISTRY)
