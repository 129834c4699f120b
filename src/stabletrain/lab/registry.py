"""Finding the experiments without running them: an index read from the sources, modules
imported only when their experiment is wanted.

:func:`index` reads every module of :mod:`stabletrain.lab.experiments` as text (``ast``, no
import) and maps each ID of an ``@experiment("I5", title=...)`` decorator to its module and
title, so ``stabletrain lab --list`` needs neither the experiments nor what they import (scipy,
the models). :func:`load` imports the modules of the IDs asked for; :func:`load_all` imports
every one.

Example:
    >>> entries = index()
    >>> entries["I5"].module
    'stabletrain.lab.experiments.init_variance'
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

if TYPE_CHECKING:  # the experiments' building blocks import torch: only when one is loaded
    from stabletrain.lab.experiment import Experiment

__all__ = ["LOAD_ERRORS", "Entry", "index", "load", "load_all"]

LOAD_ERRORS: dict[str, str] = {}
"""``{module name: the error}`` for experiment modules that failed to import."""


@dataclass(frozen=True)
class Entry:
    """Where an ID's experiment lives: its module's dotted name and the experiment's title."""

    module: str
    title: str


def _decorated_ids(source: str) -> Iterable[tuple[str, str]]:
    """``(ID, title)`` of every ``@experiment(...)`` decorator in ``source``."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and getattr(deco.func, "id", "") == "experiment"):
                continue
            title = ""
            for kw in deco.keywords:
                if kw.arg == "title":
                    try:
                        title = str(ast.literal_eval(kw.value))
                    except ValueError:  # a computed title: shown once the module is imported
                        title = ""
            for arg in deco.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield arg.value, title


@functools.cache
def index() -> dict[str, Entry]:
    """``{ID: Entry}`` for every experiment of :mod:`stabletrain.lab.experiments`, read from
    the sources (nothing is imported). A module that cannot be read or parsed has no entries;
    :func:`load_all` reports its error."""
    found: dict[str, Entry] = {}
    for info in pkgutil.iter_modules(_package.__path__):
        name = f"{_package.__name__}.{info.name}"
        path = Path(getattr(info.module_finder, "path", "")) / f"{info.name}.py"
        try:
            source = path.read_text(encoding="utf-8")
            for claim_id, title in _decorated_ids(source):
                found.setdefault(claim_id, Entry(name, title))
        except (OSError, SyntaxError, ValueError):
            continue
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
