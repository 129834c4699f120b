"""``stabletrain``: the root command; it only wires the subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stabletrain import __version__
from stabletrain.cli import demo, diagnose, gains, lab, report, schemes
from stabletrain.cli._load import CLIError

_SUBCOMMANDS = (demo, diagnose, report, lab, gains, schemes)


def build_parser() -> argparse.ArgumentParser:
    """The root parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="stabletrain",
        description="Make neural networks train: initialization, regularization, stability.",
    )
    parser.add_argument("--version", action="version", version=f"stabletrain {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except CLIError as err:
        print(f"stabletrain {args.command}: error: {err}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    raise SystemExit(main())
