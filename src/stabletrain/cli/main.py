"""``stabletrain``: the root command; it only wires the subcommands.

Exit status: 0 done, 1 a finding or a failed experiment (``--fail-on``, ``lab``), 2 bad input
(one line on stderr naming the value and the fix, nothing written), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from stabletrain import __version__
from stabletrain.cli import demo, diagnose, gains, lab, report, schemes
from stabletrain.cli._load import INTERRUPTED, CLIError

_SUBCOMMANDS = (demo, diagnose, report, lab, gains, schemes)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: what is wrong and where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help.\n")


def build_parser() -> argparse.ArgumentParser:
    """The root parser with every subcommand registered."""
    parser = OneLineParser(
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
    except KeyboardInterrupt:
        print(f"stabletrain {args.command}: interrupted; nothing more was done.", file=sys.stderr)
        return INTERRUPTED
    return status


if __name__ == "__main__":
    raise SystemExit(main())
