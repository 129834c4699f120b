"""Helpers shared by the lint tests."""

from __future__ import annotations

import torch

from stabletrain.findings import Finding


def of_rule(findings: list[Finding], rule: str) -> list[Finding]:
    """The findings of one rule, in the order lint returned them."""
    return [f for f in findings if f.rule == rule]


def example_input(*shape: int) -> torch.Tensor:
    """Standard normal inputs from their own generator (seed 0).

    A module-level input drawn from the global generator would change with the modules that
    were imported before it, and with it the second moment the first layer is judged against.
    """
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))
