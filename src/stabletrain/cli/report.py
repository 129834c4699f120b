"""``stabletrain report RUN.jsonl``: a TrainingMonitor log rendered as HTML, Markdown, JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from stabletrain.cli._commands import COMMANDS
from stabletrain.cli._load import CLIError, add_report_options, parse_formats, print_written
from stabletrain.cli._out import (
    add_output_options,
    check_kind,
    check_out_dir,
    check_report_extra,
    mark,
    writing_into,
)

DEFAULT_OUT = "stabletrain-run-report"


def run(args: argparse.Namespace) -> int:
    """Render the log into ``--out``."""
    from stabletrain.report import RunLog, write_report

    formats = parse_formats(args.format)
    check_report_extra(formats)
    out = check_out_dir(args.out)
    check_kind(out, "run", force=args.force)
    path = Path(args.log)
    if path.is_dir():
        raise CLIError(f"{path} is a folder; give the log file written by JSONLSink.")
    if not path.is_file():
        raise CLIError(f"{path} does not exist; give a log written by JSONLSink.")
    try:
        run = RunLog.from_file(path)
    except (ValueError, TypeError, OSError) as err:
        raise CLIError(str(err).splitlines()[0]) from err
    with writing_into(out) as folder:
        paths = write_report(run, folder, formats)
        mark(folder, "run")
    print_written(Console(quiet=args.quiet), paths)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``report``."""
    parser = sub.add_parser(
        "report",
        help=COMMANDS["report"],
        description=(
            "Per-layer gradient norms and update/weight ratios over the steps, and the findings "
            "over time, from a log written by stabletrain.monitoring.JSONLSink."
        ),
    )
    parser.add_argument("log", metavar="RUN.jsonl", help="the monitor's JSONL log")
    add_report_options(parser, DEFAULT_OUT)
    add_output_options(parser, json_help=None, force=True)
    parser.set_defaults(handler=run)
