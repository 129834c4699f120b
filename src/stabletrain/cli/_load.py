"""What the subcommands share: a model from ``MODULE:FACTORY``, an input from a file or a shape,
the report options.

Every failure raises :class:`CLIError` with a one-line message; the root command prints it and
exits with status 2 (never a traceback for bad input).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

__all__ = [
    "FORMATS",
    "CLIError",
    "add_report_options",
    "load_factory",
    "load_input",
    "parse_formats",
    "parse_shape",
    "print_written",
    "random_input",
]

FORMATS = ("html", "md", "json")


class CLIError(Exception):
    """Bad input on the command line: the message is shown as is, the exit status is 2."""


def _module_from_file(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise CLIError(f"cannot import {path}: not a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(path.stem, module)
    spec.loader.exec_module(module)
    return module


def load_factory(spec: str) -> tuple[nn.Module, str]:
    """Build the model named by ``spec``: ``package.module:factory`` or ``path/file.py:factory``.

    The factory is called with no arguments and must return an ``nn.Module``. Returns the model
    and a display name.
    """
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise CLIError(
            f"model {spec!r} is not MODULE:FACTORY; e.g. mypkg.models:build or ./net.py:build."
        )
    try:
        if module_name.endswith(".py") or "/" in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise CLIError(f"model file {path} does not exist.")
            module = _module_from_file(path)
        else:
            sys.path.insert(0, str(Path.cwd()))
            try:
                module = importlib.import_module(module_name)
            finally:
                sys.path.remove(str(Path.cwd()))
    except CLIError:
        raise
    except Exception as err:  # an import runs arbitrary code: report whatever it raised
        raise CLIError(f"cannot import {module_name!r}: {type(err).__name__}: {err}") from err
    factory: Callable[[], Any] | None = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise CLIError(f"{module_name!r} has no callable {attr!r}.")
    try:
        model = factory()
    except Exception as err:
        raise CLIError(f"{spec}() raised {type(err).__name__}: {err}") from err
    if not isinstance(model, nn.Module):
        raise CLIError(f"{spec}() returned {type(model).__name__}, not an nn.Module.")
    return model, spec


def parse_formats(text: str) -> tuple[str, ...]:
    """``"html,md"`` → ``("html", "md")``: report formats, each one of :data:`FORMATS`."""
    chosen = tuple(f.strip() for f in text.split(",") if f.strip())
    if not chosen or any(f not in FORMATS for f in chosen):
        raise CLIError(f"--format {text!r}: use a comma-separated subset of {', '.join(FORMATS)}.")
    return chosen


def parse_shape(text: str) -> tuple[int, ...]:
    """``"3,32,32"`` → ``(3, 32, 32)``: one sample's shape, positive integers."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise CLIError(
            f"--input-shape {text!r} is not a comma-separated list of positive integers "
            "(one sample's shape, e.g. 3,224,224)."
        )
    return shape


def random_input(model: nn.Module, shape: tuple[int, ...], batch: int, seed: int) -> torch.Tensor:
    """A seeded batch of ``shape``: token ids when the model starts with an embedding."""
    g = torch.Generator().manual_seed(seed)
    first = next((m for m in model.modules() if isinstance(m, nn.Embedding | nn.Linear)), None)
    if isinstance(first, nn.Embedding):
        return torch.randint(0, first.num_embeddings, (batch, *shape), generator=g)
    return torch.randn(batch, *shape, generator=g)


def load_input(path: Path) -> Any:
    """A tensor, a tuple/list of tensors or a dict of tensors saved with ``torch.save``.

    Loaded with ``torch.load(weights_only=True)``: no code in the file is run.
    """
    if not path.is_file():
        raise CLIError(f"--input-file {path} does not exist.")
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:
        raise CLIError(
            f"--input-file {path} is not a tensor file saved with torch.save: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    values = data.values() if isinstance(data, dict) else data
    if isinstance(data, torch.Tensor) or (
        isinstance(data, tuple | list | dict)
        and data
        and all(isinstance(v, torch.Tensor) for v in values)
    ):
        return tuple(data) if isinstance(data, list) else data
    raise CLIError(
        f"--input-file {path} holds a {type(data).__name__}; save a tensor, a tuple of tensors "
        "or a dict of tensors (keyword inputs)."
    )


def add_report_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    """``--out DIR`` and ``--format html,md,json``, parsed by :func:`parse_formats`."""
    parser.add_argument("--out", default=default_out, help=f"report folder (default {default_out})")
    parser.add_argument(
        "--format", default=",".join(FORMATS), help="report formats, e.g. html,md (default all)"
    )


def print_written(console: Console, paths: dict[str, Path]) -> None:
    """One line per report written: its format and path."""
    for fmt, path in paths.items():
        console.print(f"{fmt} report: {path}")
