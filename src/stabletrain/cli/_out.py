"""Where the subcommands write: the output folder and the optional report extra, both checked
before any work, so bad input never leaves a half-made folder behind.

:func:`check_out_dir` refuses a folder that cannot be written (a file, a path under a file, no
permission, a read-only file system) without creating anything; :func:`writing_into` creates it
when the results are ready and removes what it created if writing fails.
:func:`check_report_extra` says which extra to install when the HTML report cannot be drawn.
:func:`check_kind` refuses a folder that holds another kind of report (a diagnosis, a run
report, the lab's) unless ``--force``: ``diagnose`` and ``report`` share file names.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from stabletrain.cli._load import CLIError

__all__ = [
    "add_output_options",
    "check_kind",
    "check_out_dir",
    "check_report_extra",
    "folder_kind",
    "mark",
    "print_json",
    "writing_into",
]

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


KINDS = {
    "diagnosis": "a diagnosis report (stabletrain diagnose)",
    "run": "a run report (stabletrain report)",
    "lab": "a lab report (stabletrain lab)",
    "demo": "a demo's reports (stabletrain demo)",
}
"""The kinds of report folder the commands write, as the refusal message names them."""

MARKER = ".stabletrain-report"
"""The file in each report folder that says which kind of report it holds."""


def folder_kind(path: Path) -> str | None:
    """Which kind of report ``path`` holds: its marker file, else read from its files (a
    folder written before markers existed); None when it holds no stabletrain report."""
    if not path.is_dir():
        return None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        kind = json.loads((path / MARKER).read_text(encoding="utf-8")).get("kind")
        if kind in KINDS:
            return str(kind)
    if (path / "results.json").is_file():
        return "lab"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        schema = json.loads((path / "report.json").read_text(encoding="utf-8")).get("schema")
        return "diagnosis" if schema == "stabletrain.diagnosis" else "run"
    if (path / "diagnosis").is_dir() and (path / "training").is_dir():
        return "demo"
    return None


def check_kind(path: Path, kind: str, *, force: bool, option: str = "--out") -> None:
    """Refuse (:class:`CLIError`, exit 2) to write ``kind`` into a folder that holds another
    kind of report, unless ``force``; the same kind is replaced (a command run again)."""
    found = folder_kind(path)
    if force or found is None or found == kind:
        return
    raise CLIError(
        f"{option} {str(path)!r} holds {KINDS[found]}; writing {KINDS[kind]} there would "
        "replace it: give another folder, or --force to replace it."
    )


def mark(path: Path, kind: str) -> None:
    """Record in ``path`` that it holds a report of ``kind`` (read by :func:`folder_kind`)."""
    (path / MARKER).write_text(json.dumps({"kind": kind}) + "\n", encoding="utf-8")


def add_output_options(
    parser: argparse.ArgumentParser, *, json_help: str | None, force: bool = False
) -> None:
    """``--json`` (when ``json_help``), ``--quiet`` and, for commands that write a report
    folder, ``--force``."""
    if json_help is not None:
        parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing but errors (and --json output); no progress bar",
    )
    if force:
        parser.add_argument(
            "--force",
            action="store_true",
            help="write into --out even if it holds another kind of report (replacing it)",
        )
