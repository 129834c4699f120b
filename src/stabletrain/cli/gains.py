"""``stabletrain gains``: the variance-preserving gain of each activation, next to torch's."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from stabletrain.cli._load import CLIError
from stabletrain.init.gain import ACTIVATIONS, gain


def gain_table(activations: tuple[str, ...] = ACTIVATIONS) -> Table:
    """A table of forward, backward and torch gains for ``activations``."""
    table = Table(title="Gains: std(w) = gain / sqrt(fan), z ~ N(0, 1)")
    table.add_column("activation")
    table.add_column("forward 1/√E[f(z)²]", justify="right")
    table.add_column("backward 1/√E[f'(z)²]", justify="right")
    table.add_column("torch calculate_gain", justify="right")
    for name in activations:
        try:
            torch_gain = f"{gain(name, convention='torch'):.4f}"
        except ValueError:
            torch_gain = "unsupported"
        table.add_row(name, f"{gain(name):.4f}", f"{gain(name, 'backward'):.4f}", torch_gain)
    return table


def run(args: argparse.Namespace) -> int:
    """Print the gain table for the requested activations (all by default)."""
    unknown = [a for a in args.activations if a not in ACTIVATIONS]
    if unknown:
        close = [a.lower() for a in unknown if a.lower() in ACTIVATIONS]
        hint = f" (names are lower case: {', '.join(close)})" if close else ""
        raise CLIError(
            f"unknown activation(s) {', '.join(unknown)}{hint}; valid: {', '.join(ACTIVATIONS)}."
        )
    Console().print(gain_table(tuple(args.activations) or ACTIVATIONS))
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gains``."""
    parser = sub.add_parser("gains", help="print the variance-preserving gain of activations")
    parser.add_argument(
        "activations",
        nargs="*",
        metavar="ACTIVATION",
        help=f"activation names (default: all of {', '.join(ACTIVATIONS)})",
    )
    parser.set_defaults(handler=run)
