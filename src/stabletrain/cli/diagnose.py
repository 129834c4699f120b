"""``stabletrain diagnose``: signal propagation against theory, lint, findings, a report.

Without a model, a built-in default is diagnosed: a plain 30-layer tanh MLP on 64 inputs with
PyTorch's default initialization, the kind of network the tutorials warn about.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from stabletrain.cli._commands import COMMANDS
from stabletrain.cli._load import (
    MAX_INPUT_GB,
    CLIError,
    add_report_options,
    check_int,
    check_seed,
    load_factory,
    load_input,
    parse_formats,
    parse_shape,
    print_written,
    random_input,
    split_spec,
)
from stabletrain.cli._out import (
    add_output_options,
    check_kind,
    check_out_dir,
    check_report_extra,
    mark,
    print_json,
    writing_into,
)

if TYPE_CHECKING:
    from torch import nn

    from stabletrain.findings import Finding

SEVERITY_ORDER = ("info", "warning", "error")
DEFAULT_SHAPE = (64,)
DEFAULT_OUT = "stabletrain-diagnosis"


def default_model() -> nn.Module:
    """The built-in model: a plain 30-layer tanh MLP, 64 → 10, PyTorch's default init."""
    from stabletrain.models import mlp

    return mlp(64, 10, depth=30, width=128, activation="tanh")


def _check_options(args: argparse.Namespace) -> None:
    """Everything that can be checked before building the model."""
    if args.input_file is not None and args.input_shape is not None:
        raise CLIError("give --input-shape or --input-file, not both.")
    check_int("--batch-size", args.batch_size, low=1)
    check_seed(args.seed)
    if not (math.isfinite(args.max_input_gb) and args.max_input_gb > 0):
        raise CLIError(f"--max-input-gb must be a number > 0 (gigabytes), got {args.max_input_gb}.")
    if args.model is not None:
        split_spec(args.model)
    if args.input_shape is not None:
        parse_shape(args.input_shape)
    elif args.model is not None and args.input_file is None:
        raise CLIError(
            "give the input: --input-shape C,H,W (one sample's shape) or --input-file x.pt."
        )


def _model_and_input(args: argparse.Namespace) -> tuple[nn.Module, str, Any]:
    if args.model is None:
        model, name = default_model(), "default: plain 30-layer tanh MLP (PyTorch default init)"
    else:
        model, name = load_factory(args.model)
    if args.input_file is not None:
        return model, name, load_input(Path(args.input_file))
    shape = DEFAULT_SHAPE if args.input_shape is None else parse_shape(args.input_shape)
    x = random_input(model, shape, args.batch_size, args.seed, max_gb=args.max_input_gb)
    return model, name, x


def fail_on_line(findings: Sequence[Finding], level: str, command: str) -> str | None:
    """The stderr line naming the findings at ``level`` or worse (``--fail-on``), or None."""
    from stabletrain.monitoring.sinks.base import layer_label

    rank = SEVERITY_ORDER.index(level)
    hits = [f for f in findings if SEVERITY_ORDER.index(f.severity) >= rank]
    if not hits:
        return None
    named = ", ".join(f"{f.severity} {f.rule or f.metric} ({layer_label(f.layer)})" for f in hits)
    return f"stabletrain {command}: --fail-on {level}: {len(hits)} finding(s): {named}"


def run(args: argparse.Namespace) -> int:
    """Diagnose, print the table and findings, write the report; exit 1 on ``--fail-on``."""
    from stabletrain.diagnostics.propagation import diagnose
    from stabletrain.report import write_report

    formats = parse_formats(args.format)
    check_report_extra(formats)
    out = check_out_dir(args.out)
    check_kind(out, "diagnosis", force=args.force)
    _check_options(args)
    model, name, x = _model_and_input(args)
    console = Console(quiet=args.quiet or args.json)
    status = Console(stderr=True, quiet=args.quiet)
    try:
        with status.status(f"diagnosing {name}: one forward and one backward pass, lint"):
            diagnosis = diagnose(model, x, fix=args.fix)
    except (ValueError, TypeError) as err:
        raise CLIError(f"cannot diagnose {name}: {str(err).splitlines()[0]}") from err
    diagnosis.model = name
    console.print(diagnosis)
    with writing_into(out) as folder:
        paths = write_report(diagnosis, folder, formats=formats)
        mark(folder, "diagnosis")
    print_written(console, paths)
    if args.json:
        print_json(diagnosis.to_dict())
    if args.fail_on is not None:
        line = fail_on_line(diagnosis.findings, args.fail_on, "diagnose")
        if line is not None:
            print(line, file=sys.stderr)
            return 1
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``diagnose``."""
    parser = sub.add_parser(
        "diagnose",
        help=COMMANDS["diagnose"],
        description=(
            "One forward and one backward pass on an example batch: per-layer statistics next "
            "to what theory predicts for the init in use, architecture lint, findings with "
            "fixes, and an HTML/Markdown/JSON report. Without MODEL, a built-in plain 30-layer "
            "tanh MLP is diagnosed."
        ),
    )
    parser.add_argument(
        "model",
        nargs="?",
        metavar="MODULE:FACTORY",
        help="a function returning the model: mypkg.models:build or ./net.py:build",
    )
    parser.add_argument(
        "--input-shape", metavar="C,H,W", help="one sample's shape; a random batch is drawn"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument(
        "--input-file",
        metavar="X.pt",
        help="a tensor, tuple or dict of tensors saved with torch.save (loaded weights_only)",
    )
    parser.add_argument(
        "--fix", action="store_true", help="apply auto_init, re-diagnose, show before/after"
    )
    add_report_options(parser, DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random batch (default 0)")
    parser.add_argument(
        "--max-input-gb",
        type=float,
        default=MAX_INPUT_GB,
        help=f"refuse a random batch larger than this, in GB (default {MAX_INPUT_GB:g})",
    )
    parser.add_argument(
        "--fail-on",
        choices=SEVERITY_ORDER,
        help="exit with status 1 when a finding of this severity or worse is found (for CI); "
        "one line on stderr names them",
    )
    add_output_options(
        parser, json_help="the diagnosis as JSON on stdout (report.json's schema)", force=True
    )
    parser.set_defaults(handler=run)
