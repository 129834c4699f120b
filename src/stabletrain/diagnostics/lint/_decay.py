"""The optimizer's parameter groups: weight decay on what should not decay."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from stabletrain._checks import check_real
from stabletrain.diagnostics.lint._context import LintContext, ParamGroup
from stabletrain.findings import Finding
from stabletrain.regularization.param_groups import DEFAULT_NO_DECAY

__all__ = ["check_param_groups", "decay_on_norm_or_bias"]

_WHERE = "lint"
_EXPECTED = (
    "an optimizer or a list of its param-group dicts, e.g. "
    "[{'params': [...], 'weight_decay': 0.01}] (stabletrain.param_groups(...))"
)


def _tensors(params: Any, index: int) -> tuple[torch.Tensor, ...]:
    """The tensors of one group's ``"params"``: a tensor, or tensors / (name, tensor) pairs."""
    if isinstance(params, torch.Tensor):
        return (params,)
    if isinstance(params, str | Mapping) or not hasattr(params, "__iter__"):
        raise TypeError(
            f"{_WHERE}: param_groups[{index}]['params'] must be a list of tensors, got "
            f"{type(params).__name__}."
        )
    out = []
    for p in params:
        tensor = p[1] if isinstance(p, tuple) and len(p) == 2 else p  # named parameters
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"{_WHERE}: param_groups[{index}]['params'] holds a {type(tensor).__name__}; "
                "expected tensors (model parameters)."
            )
        out.append(tensor)
    return tuple(out)


def check_param_groups(param_groups: Any, model: nn.Module) -> tuple[ParamGroup, ...]:
    """Validate an optimizer or a list of group dicts; a group without ``"weight_decay"`` is
    taken as undecayed (an optimizer's own groups always carry it: pass the optimizer)."""
    if isinstance(param_groups, torch.optim.Optimizer):
        param_groups = param_groups.param_groups
    if isinstance(param_groups, Mapping):
        param_groups = [param_groups]
    if isinstance(param_groups, str) or not isinstance(param_groups, Sequence):
        raise TypeError(
            f"{_WHERE}: param_groups must be {_EXPECTED}, got {type(param_groups).__name__}."
        )
    groups = []
    for i, group in enumerate(param_groups):
        if isinstance(group, torch.Tensor):
            raise TypeError(
                f"{_WHERE}: param_groups is a list of tensors, which carries no weight decay; "
                f"pass {_EXPECTED}."
            )
        if not isinstance(group, Mapping) or "params" not in group:
            raise TypeError(
                f"{_WHERE}: param_groups[{i}] must be a dict with a 'params' key, got "
                f"{type(group).__name__}; pass {_EXPECTED}."
            )
        wd = check_real(
            f"param_groups[{i}]['weight_decay']",
            group.get("weight_decay", 0.0),
            where=_WHERE,
            non_negative=True,
        )
        groups.append(ParamGroup(i, wd, _tensors(group["params"], i)))
    own = {id(p) for p in model.parameters()}
    if groups and not any(id(p) in own for g in groups for p in g.params):
        raise ValueError(
            f"{_WHERE}: none of the {sum(len(g.params) for g in groups)} parameters in "
            "param_groups belongs to the model; pass the optimizer (or its groups) built for "
            "this model."
        )
    return tuple(groups)


def decay_on_norm_or_bias(ctx: LintContext) -> list[Finding]:
    """A group with ``weight_decay > 0`` holding biases, norm weights, gains, embeddings or
    positional parameters.

    Decay pulls a parameter toward 0; for a normalization weight (a gain that should sit near
    1), a bias, an embedding row updated only when its token appears, or a positional
    parameter that pull is a bias the model must fight, not a capacity control (claim R6;
    Loshchilov & Hutter 2019). Categories come from the structural classification of
    :func:`stabletrain.param_groups` (its ``DEFAULT_NO_DECAY``).
    """
    if not ctx.groups:
        return []
    by_id = {id(info.param): info for info in ctx.params}
    found = []
    for group in ctx.groups:
        if group.weight_decay <= 0:
            continue
        wrong = [
            by_id[id(p)]
            for p in group.params
            if id(p) in by_id and by_id[id(p)].category in DEFAULT_NO_DECAY
        ]
        if not wrong:
            continue
        counts: dict[str, int] = {}
        for info in wrong:
            counts[info.category] = counts.get(info.category, 0) + 1
        kinds = ", ".join(f"{n} {c}" for c, n in counts.items())
        names = ", ".join(info.name for info in wrong[:3]) + (", ..." if len(wrong) > 3 else "")
        found.append(
            ctx.finding(
                "warning",
                None,
                "decayed_params",
                float(len(wrong)),
                0.0,
                f"param group {group.index} applies weight_decay={group.weight_decay:g} to "
                f"{kinds} parameter(s) ({names}), pulling them toward 0 for no capacity "
                "control (a norm weight belongs near 1).",
                "stabletrain.param_groups(model, weight_decay=λ) decays the weight matrices only",
                "decay_on_norm_or_bias",
            )
        )
    return found
