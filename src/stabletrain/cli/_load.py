"""What the subcommands share: a model from ``MODULE:FACTORY``, an input from a file or a shape,
the report options.

Every failure raises :class:`CLIError` with a one-line message; the root command prints it and
exits with status 2 (never a traceback for bad input).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import math
import pickletools
import reprlib
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:  # torch is imported by the functions that need it: --help starts fast
    import torch
    from torch import nn

__all__ = [
    "FORMATS",
    "INTERRUPTED",
    "MAX_INPUT_GB",
    "SEED_MAX",
    "CLIError",
    "add_report_options",
    "check_int",
    "check_seed",
    "load_factory",
    "load_input",
    "parse_formats",
    "parse_shape",
    "print_written",
    "random_input",
    "split_spec",
]

FORMATS = ("html", "md", "json")
INTERRUPTED = 130  # the exit status of Ctrl-C: 128 + SIGINT, as shells report it
SEED_MAX = 2**32 - 1  # numpy's limit, the narrowest of the seeded generators
MAX_INPUT_GB = 4.0


class CLIError(Exception):
    """Bad input on the command line: the message is shown as is, the exit status is 2."""


def _module_from_file(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise CLIError(f"cannot import {path}: not a Python file; give path/file.py:FACTORY.")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(path.stem, module)
    spec.loader.exec_module(module)
    return module


def _raised(err: BaseException) -> str:
    """What user code raised, in words: ``sys.exit(3)``, ``KeyboardInterrupt``, ``Type: text``."""
    if isinstance(err, SystemExit):
        return f"called sys.exit({err.code!r})"
    text = str(err).splitlines()[0] if str(err) else ""
    return f"raised {type(err).__name__}" + (f": {text}" if text else "")


def _import(module_name: str) -> Any:
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name)
        if path.is_dir():
            raise CLIError(
                f"model file {module_name!r} is a folder, not a Python file; give "
                "path/file.py:FACTORY or package.module:FACTORY."
            )
        if not path.is_file():
            raise CLIError(f"model file {path} does not exist; give path/file.py:FACTORY.")
        return _module_from_file(path)
    sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path.remove(str(Path.cwd()))


def split_spec(spec: str) -> tuple[str, str]:
    """``"pkg.models:build"`` → ``("pkg.models", "build")``; :class:`CLIError` otherwise."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise CLIError(
            f"model {spec!r} is not MODULE:FACTORY; e.g. mypkg.models:build or ./net.py:build."
        )
    return module_name, attr


def load_factory(spec: str) -> tuple[nn.Module, str]:
    """Build the model named by ``spec``: ``package.module:factory`` or ``path/file.py:factory``.

    The factory is called with no arguments and must return an ``nn.Module``. Returns the model
    and a display name. Whatever the import or the factory raises, ``sys.exit`` and
    ``KeyboardInterrupt`` included, becomes a :class:`CLIError` naming it.
    """
    module_name, attr = split_spec(spec)
    try:
        module = _import(module_name)
    except CLIError:
        raise
    except (Exception, SystemExit, KeyboardInterrupt) as err:  # an import runs arbitrary code
        raise CLIError(
            f"cannot import {module_name!r} (MODULE of {spec!r}): it {_raised(err)}."
        ) from err
    factory: Callable[[], Any] | None = getattr(module, attr, None)
    if factory is None or not callable(factory):
        found = (
            f"{module_name!r} has no function {attr!r}"
            if factory is None
            else f"{module_name}.{attr} = {reprlib.repr(factory)} is not a function"
        )
        raise CLIError(f"{found}; name a function that returns the model (MODULE:FACTORY).")
    try:
        inspect.signature(factory).bind()
    except TypeError as err:
        raise CLIError(
            f"{spec} cannot be called with no arguments ({err}); give a factory that takes "
            "no arguments, e.g. def build(): return Net(width=256)."
        ) from err
    except ValueError:  # no signature to inspect (a builtin): call it and see
        pass
    try:
        model = factory()
    except (Exception, SystemExit, KeyboardInterrupt) as err:
        raise CLIError(
            f"{spec}() {_raised(err)}; fix the factory so it returns the model."
        ) from err
    from torch import nn

    if not isinstance(model, nn.Module):
        raise CLIError(
            f"{spec}() returned {type(model).__name__}, not an nn.Module; return the model."
        )
    return model, spec


def check_int(name: str, value: int, *, low: int, high: int | None = None, why: str = "") -> int:
    """``value`` if ``low <= value <= high``, else a :class:`CLIError` naming the option."""
    if value < low:
        raise CLIError(f"{name} must be an int >= {low}, got {value}.")
    if high is not None and value > high:
        raise CLIError(f"{name} must be an int <= {high}{why}, got {value}.")
    return value


def check_seed(value: int, name: str = "--seed") -> int:
    """A seed every generator takes: ``0 <= value <= 2**32 - 1``."""
    return check_int(name, value, low=0, high=SEED_MAX, why=" (2**32 - 1)")


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


def _size(n_bytes: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if n_bytes < 1000 or unit == "PB":
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def random_input(
    model: nn.Module,
    shape: tuple[int, ...],
    batch: int,
    seed: int,
    *,
    max_gb: float = MAX_INPUT_GB,
) -> torch.Tensor:
    """A seeded batch of ``shape``: token ids when the model starts with an embedding.

    Raises :class:`CLIError` before allocating when the batch would take more than ``max_gb``
    gigabytes (10**9 bytes), with the size it would need.
    """
    import torch
    from torch import nn

    first = next((m for m in model.modules() if isinstance(m, nn.Embedding | nn.Linear)), None)
    tokens = isinstance(first, nn.Embedding)
    dtype = torch.int64 if tokens else torch.float32
    numel = batch * math.prod(shape)
    need = numel * dtype.itemsize
    if need > max_gb * 1e9:
        raise CLIError(
            f"--input-shape {','.join(map(str, shape))} with --batch-size {batch} needs a "
            f"{_size(need)} input ({numel:,} {str(dtype).removeprefix('torch.')} values), above "
            f"--max-input-gb {max_gb:g}; give a smaller --input-shape or --batch-size, or raise "
            "--max-input-gb."
        )
    g = torch.Generator().manual_seed(seed)
    if isinstance(first, nn.Embedding):
        return torch.randint(0, first.num_embeddings, (batch, *shape), generator=g)
    return torch.randn(batch, *shape, generator=g)


def _is_pickle(head: bytes) -> bool:
    """Whether ``head`` parses as a pickle (read, never run)."""
    try:
        for _ in pickletools.genops(head):
            pass
    except Exception:
        return False
    return bool(head)


def _unreadable(path: Path) -> CLIError:
    with path.open("rb") as f:
        head = f.read(1 << 20)
    if head.startswith(b"PK") or _is_pickle(head):
        why = "it holds Python objects other than tensors, which could run code: refused"
    else:
        why = "it is not in torch.save's format" + (" (the file is empty)" if not head else "")
    return CLIError(
        f"--input-file {path} cannot be loaded: {why}; save the input with torch.save(x, "
        f"{path.name!r}) (a tensor, a tuple or a dict of tensors)."
    )


def load_input(path: Path) -> Any:
    """A tensor, a tuple/list of tensors or a dict of tensors saved with ``torch.save``.

    Loaded with ``torch.load(weights_only=True)``: no code in the file is run.
    """
    import torch

    from stabletrain._checks import check_finite_tensors

    if path.is_dir():
        raise CLIError(f"--input-file {path} is a folder; give a file saved with torch.save.")
    if not path.is_file():
        raise CLIError(f"--input-file {path} does not exist; give a file saved with torch.save.")
    try:
        with warnings.catch_warnings():  # torch warns on pickle protocols; the error says it all
            warnings.simplefilter("ignore")
            data = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:
        raise _unreadable(path) from err
    values = data.values() if isinstance(data, dict) else data
    if isinstance(data, torch.Tensor) or (
        isinstance(data, tuple | list | dict)
        and data
        and all(isinstance(v, torch.Tensor) for v in values)
    ):
        tensors = [data] if isinstance(data, torch.Tensor) else list(values)
        try:
            check_finite_tensors(f"--input-file {path}", tensors, where="diagnose")
        except ValueError as err:
            raise CLIError(str(err).removeprefix("diagnose: ")) from err
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
    """One line per report written: its format and path (never wrapped, so it can be copied)."""
    for fmt, path in paths.items():
        console.print(f"{fmt} report: {path}", soft_wrap=True, markup=False, highlight=False)
