"""The subcommands and their one-line help: what the root command lists without importing
any of them (each imports its own dependencies only when it runs)."""

from __future__ import annotations

__all__ = ["COMMANDS"]

COMMANDS: dict[str, str] = {
    "demo": "the main job: diagnose a deep network on digits, fix it, train it, report",
    "diagnose": "check a model's signal propagation against theory, lint it, write a report",
    "report": "render a TrainingMonitor JSONL log as a report",
    "lab": "reproduce every claim of the tutorials with a measured verdict",
    "gains": "print the variance-preserving gain of activations",
    "schemes": "show initialization schemes at work on a deep MLP",
}
"""``{name: help}`` in the order ``stabletrain --help`` lists them; the module of ``name`` is
``stabletrain.cli.<name>`` with an ``add_parser(sub)`` function."""
