"""Helpers shared by the lint tests."""

from __future__ import annotations

from stabletrain.monitoring.rules import Finding


def of_rule(findings: list[Finding], rule: str) -> list[Finding]:
    """The findings of one rule, in the order lint returned them."""
    return [f for f in findings if f.rule == rule]
