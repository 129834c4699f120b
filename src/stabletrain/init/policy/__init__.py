"""Automatic initialization from what the model computes: rules, auto_init and its report."""

from stabletrain.init.policy._auto import auto_init, following_of
from stabletrain.init.policy._plan import plan_init
from stabletrain.init.policy.report import InitReport, ParamRecord
from stabletrain.init.policy.rules import (
    CATEGORIES,
    FOLLOWING_VALUES,
    RULE_KEYS,
    SCHEMES,
    Rule,
    default_rules,
)

__all__ = [
    "CATEGORIES",
    "FOLLOWING_VALUES",
    "RULE_KEYS",
    "SCHEMES",
    "InitReport",
    "ParamRecord",
    "Rule",
    "auto_init",
    "default_rules",
    "following_of",
    "plan_init",
]
