"""Applying one rule to one parameter: schemes, role schemes and fans."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from stabletrain.graph import Following, first_activation
from stabletrain.graph.ops import ACTIVATION_OPS
from stabletrain.init.fans import is_batched_weight, layer_fans
from stabletrain.init.gain import gain
from stabletrain.init.looks_linear import looks_linear_
from stabletrain.init.policy._registry import REGISTRY, Draw, resolved_gain
from stabletrain.init.policy._roles import Roles
from stabletrain.init.policy.report import ParamRecord
from stabletrain.init.policy.rules import ROLE_SCHEMES, Rule
from stabletrain.init.schemes import (
    constant_,
    normal_,
    zeros_,
)


def following_of(following: tuple[Following, ...] | None) -> tuple[str, float | None, str]:
    """(category or activation name, its exact forward gain or None, readable description)."""
    if following is None:
        return "unknown", None, "never called"
    if not following:
        return "unknown", None, "nothing"
    described = ", ".join(dict.fromkeys(f.describe() for f in following))
    act = first_activation(following)
    if act is not None:
        name = ACTIVATION_OPS[act.op][0]
        params = dict(act.params)
        if act.op in ("prelu", "rrelu"):  # PReLU's initial slope; RReLU's mean slope
            params = {"negative_slope": 0.25 if act.op == "prelu" else (1 / 8 + 1 / 3) / 2}
        return name, gain(name, "forward", convention="exact", **params), described
    if any(f.kind == "output" for f in following):
        return "output", None, described
    return "linear", None, described


# plan_init's meta twin: each meta parameter points to the model's own tensor, whose values
# decide where a rule reads them (a zero-initialized norm weight is kept)
PLAN_SOURCE = "_stabletrain_plan_source"


def values_of(t: torch.Tensor) -> torch.Tensor:
    """The tensor whose values stand for ``t``: its source in the model for a plan's twin."""
    return getattr(t, PLAN_SOURCE, t)


def std_of(t: torch.Tensor) -> float:
    """The std of ``t``'s entries (the mean magnitude of a single entry); NaN on ``meta``."""
    t = values_of(t)
    if t.is_meta:
        return math.nan
    return (
        float(t.detach().float().std()) if t.numel() > 1 else float(t.detach().float().abs().mean())
    )


def _fans(module: nn.Module, pname: str, p: torch.Tensor, ops: tuple[str, ...]) -> Any:
    if p.dim() < 2:
        return None
    # batched expert weights: (experts, out, in) when read through a transpose or by F.linear
    transposed = is_batched_weight(module, p) and not {"transpose", "t", "linear"} & set(ops)
    return layer_fans(module, pname, transposed=transposed)


def _apply_role(
    scheme: str,
    name: str,
    p: torch.Tensor,
    roles: Roles,
    stream_std: float | None,
    generator: torch.Generator | None,
) -> tuple[bool, str] | None:
    """The role schemes: (whether ``p`` was drawn, what decided), or None where the role is
    absent (a plain output layer: not logits over two or more classes)."""
    if scheme == "norm_weight":
        own = values_of(p)
        if p.numel() and not own.is_meta and not bool(own.detach().any()):
            return False, (
                "zero-initialized by the model: the residual branch it ends starts as the "
                "identity (Goyal et al. 2017), kept"
            )
        constant_(p, 1.0)
        return True, "1"
    if scheme == "logits":
        role = roles.logits.get(name)
        if role is None:
            return None
        normal_(p, 0.0, role.std / math.sqrt(role.fan_in), generator=generator)
        return True, role.describe()
    table = roles.tables.get(name, "stream")
    if table == "stream" or not 0 < std_of(p) < float("inf"):
        normal_(p, 0.0, stream_std or p.shape[-1] ** -0.5, generator=generator)
        source = "the tied table's std" if stream_std else "N(0, 1/dim), rows of unit norm"
        return True, f"feeds a residual stream unnormalized: {source}"
    if table == "normalized":
        return False, "a normalization follows before any residual addition: its scale is free"
    return False, "an attention bias: kept as the model initialized it"


def _apply(
    rule: Rule,
    module: nn.Module,
    pname: str,
    p: torch.Tensor,
    act_gain: float | None,
    generator: torch.Generator | None,
    ops: tuple[str, ...] = (),
) -> float | None:
    """Initialize ``p`` by ``rule``'s scheme (:data:`~._registry.REGISTRY`; the role schemes'
    fallback is Xavier); returns the gain used, if the scheme has one."""
    options = dict(rule.options)
    g = resolved_gain(options.pop("gain", 1.0), act_gain)
    name = "xavier_uniform" if rule.scheme in ROLE_SCHEMES else rule.scheme
    draw = Draw(module, pname, g, options, _fans(module, pname, p, ops), generator)
    return REGISTRY[name](p, draw)


def looks_linear_record(
    name: str,
    layer: str,
    p: torch.Tensor,
    mirror: tuple[bool, bool],
    generator: torch.Generator | None,
) -> ParamRecord:
    record = ParamRecord(
        name,
        layer,
        tuple(p.shape),
        "relu -> layer" if mirror[1] else "linear",
        "looks_linear" if p.dim() >= 2 else "zeros",
        "ReLU chain: looks-linear (Balduzzi et al. 2017)",
        std_of(p),
    )
    if p.dim() >= 2:
        looks_linear_(p, mirror_in=mirror[0], mirror_out=mirror[1], generator=generator)
        record.gain = 1.0
    else:
        zeros_(p)
    return record


def apply_rule(
    rule: Rule,
    module: nn.Module,
    name: str,
    p: torch.Tensor,
    act_gain: float | None,
    ops: tuple[str, ...],
    roles: Roles,
    stream_std: float | None,
    generator: torch.Generator | None,
) -> tuple[float | None, str, str]:
    """Initialize ``p`` by ``rule``: (gain used, scheme, the reason for the report)."""
    pname = name.rpartition(".")[2]
    if rule.scheme in ROLE_SCHEMES:
        decided = _apply_role(rule.scheme, name, p, roles, stream_std, generator)
        if decided is not None:
            applied, why = decided
            drawn = "ones" if rule.scheme == "norm_weight" else rule.scheme
            return None, drawn if applied else "keep", f"{rule.name}: {why}"
        gain = _apply(rule, module, pname, p, act_gain, generator, ops)
        return gain, "xavier_uniform", f"{rule.name}: not logits over 2+ classes, Xavier"
    return _apply(rule, module, pname, p, act_gain, generator, ops), rule.scheme, rule.name
