"""``stabletrain``: the root command; it only wires the subcommands.

Exit status: 0 done, 1 a finding or a failed experiment (``--fail-on``, ``lab``), 2 bad input
(one line on stderr naming the value and the fix, nothing written), 130 interrupted (Ctrl-C).

Only the module of the subcommand being run is imported (the others get a stand-in parser
that only names them, from :data:`~stabletrain.cli._commands.COMMANDS`), so ``stabletrain
--help`` imports none and ``stabletrain lab --list`` starts without PyTorch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from stabletrain import __version__
from stabletrain.cli._commands import COMMANDS
from stabletrain.cli._load import INTERRUPTED, CLIError


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: what is wrong and where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help.\n")


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is not an option), if it is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The root parser with every subcommand registered: ``only``'s own parser (its module
    imported), stand-ins for the others that only name them and say what they do."""
    parser = OneLineParser(
        prog="stabletrain",
        description="Make neural networks train: initialization, regularization, stability.",
    )
    parser.add_argument("--version", action="version", version=f"stabletrain {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_line in COMMANDS.items():
        if name == only:
            importlib.import_module(f"stabletrain.cli.{name}").add_parser(sub)
        else:
            sub.add_parser(name, help=help_line)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command(words)).parse_args(words)
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
