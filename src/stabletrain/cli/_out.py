"""Where the subcommands write: the output folder and the optional report extra, both checked
before any work, so bad input never leaves a half-made folder behind.

:func:`check_out_dir` refuses a folder that cannot be written (a file, a path under a file, no
permission, a read-only file system) without creating anything; :func:`writing_into` creates it
when the results are ready and removes what it created if writing fails.
:func:`check_report_extra` says which extra to install when the HTML report cannot be drawn.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from stabletrain.cli._load import CLIError

__all__ = ["check_out_dir", "check_report_extra", "print_json", "writing_into"]

REPORT_EXTRA = ("matplotlib", "jinja2")


def check_out_dir(out: str, *, option: str = "--out") -> Path:
    """``out`` as a path, if a folder can be made or written there; creates nothing.

    Raises:
        CLIError: ``out`` is a file or lies under one, or the nearest existing folder is not
            writable (permissions, read-only file system).
    """
    if not out.strip():
        raise CLIError(f"{option} is empty; give a folder path.")
    path = Path(out)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == path else f"lies under the file {str(existing)!r}"
        raise CLIError(f"{option} {out!r} {where}, not a folder; give a folder path.")
    if not os.access(existing, os.W_OK | os.X_OK):
        below = "" if existing == path else f" (its nearest existing folder {str(existing)!r})"
        raise CLIError(
            f"{option} {out!r}{below} is not writable (permissions or a read-only file system); "
            "give a writable folder."
        )
    return path


@contextlib.contextmanager
def writing_into(path: Path, *, option: str = "--out") -> Iterator[Path]:
    """Create ``path`` (and missing parents) for the ``with`` block; on an ``OSError`` inside
    it, remove the folders this call created and raise :class:`CLIError` naming the folder."""
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        yield path
    except OSError as err:
        if created:
            shutil.rmtree(created[-1], ignore_errors=True)
        reason = err.strerror or str(err)
        raise CLIError(
            f"cannot write into {option} {str(path)!r} ({reason}); give a writable folder."
        ) from err


def check_report_extra(formats: Sequence[str]) -> None:
    """Raise :class:`CLIError` naming the extra to install if ``"html"`` is asked for and its
    libraries (matplotlib, jinja2) cannot be imported."""
    if "html" not in formats:
        return
    missing = []
    for name in REPORT_EXTRA:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise CLIError(
            f"the HTML report needs {' and '.join(missing)} (not installed): "
            "pip install 'stabletrain[report]', or write the other reports with --format md,json."
        )


def print_json(data: object) -> None:
    """``data`` as indented JSON on stdout (``--json``): NaN and infinities written as null."""
    sys.stdout.write(json.dumps(_finite(data), indent=2) + "\n")


def _finite(data: object) -> object:
    if isinstance(data, float):
        return data if data == data and abs(data) != float("inf") else None
    if isinstance(data, dict):
        return {str(k): _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data
