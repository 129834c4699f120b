"""``stabletrain gains``: the variance-preserving gain of each activation, next to torch's."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.text import Text

from stabletrain._fit import Col, FitTable
from stabletrain.cli._commands import COMMANDS
from stabletrain.cli._load import CLIError
from stabletrain.cli._out import add_output_options, print_json
from stabletrain.init.gain import ACTIVATIONS, gain


def gain_table(activations: tuple[str, ...] = ACTIVATIONS) -> FitTable:
    """A table of forward, backward and torch gains for ``activations`` (fits the terminal:
    short headers at 80 columns)."""
    columns = (
        Col("activation", justify="left", key=True),
        Col("forward 1/√E[f(z)²]", short="forward"),
        Col("backward 1/√E[f'(z)²]", short="backward"),
        Col("torch calculate_gain", short="torch"),
    )
    return FitTable(
        columns,
        [[Text(name), *gain_row(name)] for name in activations],
        title="Gains: std(w) = gain / sqrt(fan), z ~ N(0, 1)",
    )


def gain_row(name: str) -> list[str]:
    """Forward, backward and torch's gain of ``name`` to 4 decimals (torch: "unsupported")."""
    try:
        torch_gain = f"{gain(name, convention='torch'):.4f}"
    except ValueError:
        torch_gain = "unsupported"
    return [f"{gain(name):.4f}", f"{gain(name, 'backward'):.4f}", torch_gain]


def run(args: argparse.Namespace) -> int:
    """Print the gain table for the requested activations (all by default)."""
    unknown = [a for a in args.activations if a not in ACTIVATIONS]
    if unknown:
        close = [a.lower() for a in unknown if a.lower() in ACTIVATIONS]
        hint = f" (names are lower case: {', '.join(close)})" if close else ""
        raise CLIError(
            f"unknown activation(s) {', '.join(unknown)}{hint}; valid: {', '.join(ACTIVATIONS)}."
        )
    names = tuple(args.activations) or ACTIVATIONS
    if args.json:
        print_json(gains_json(names))
    else:
        Console(quiet=args.quiet).print(gain_table(names))
    return 0


def gains_json(activations: tuple[str, ...]) -> list[dict[str, object]]:
    """``--json``: per activation its forward, backward and torch gain (None: torch has none)."""
    rows = []
    for name in activations:
        try:
            torch_gain: float | None = gain(name, convention="torch")
        except ValueError:
            torch_gain = None
        rows.append(
            {
                "activation": name,
                "forward": gain(name),
                "backward": gain(name, "backward"),
                "torch": torch_gain,
            }
        )
    return rows


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gains``."""
    parser = sub.add_parser("gains", help=COMMANDS["gains"])
    parser.add_argument(
        "activations",
        nargs="*",
        metavar="ACTIVATION",
        help=f"activation names (default: all of {', '.join(ACTIVATIONS)})",
    )
    add_output_options(parser, json_help="the gains as JSON on stdout")
    parser.set_defaults(handler=run)
