"""Parameter groups that know what not to decay: plain dicts for any ``torch.optim`` optimizer.

The rule, in one sentence: **decay the weights that multiply inputs; do not decay biases,
normalization parameters, elementwise gains, embeddings or positional parameters** (each of the
last five configurable), decided by structure (see :mod:`stabletrain.regularization.classify`),
not by name patterns that miss BatchNorm, RMSNorm or layer-scale gammas; plus what the model
declares itself (``no_weight_decay()``, as timm's and Swin's models do).

Against timm's ``param_groups_weight_decay`` / ``param_groups_layer_decay`` and the Hugging Face
Trainer's ``get_decay_parameter_names``, every decision is the same except where
``docs/param_groups.md`` lists the difference and its reason: gains stored as ``C×1×1`` or
``heads×1×1`` (timm decays them, its rule being ``ndim <= 1``), embedding tables, positional
parameters and gains (the Trainer decays them), the final norm's depth (BEiT's top, where timm
puts it with the last block) and stems made of numbered units.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Collection, Mapping
from typing import Any, TypeAlias

from rich.console import Console
from torch import nn

from stabletrain._checks import check_choice, check_real
from stabletrain._wrappers import unwrap_model
from stabletrain.graph import STRUCTURE_ROWS, trace
from stabletrain.regularization._declared import declared_no_decay
from stabletrain.regularization._depth import depths
from stabletrain.regularization._explain import ParamGroupReport, ParamGroupRow
from stabletrain.regularization.classify import CATEGORIES, Category, ParamInfo, classify

__all__ = [
    "DEFAULT_NO_DECAY",
    "OVERRIDE_OPTIONS",
    "OverrideKey",
    "decay_parameters",
    "explain_param_groups",
    "param_groups",
]

DEFAULT_NO_DECAY: tuple[Category, ...] = ("bias", "norm", "gain", "embedding", "positional")
OVERRIDE_OPTIONS = ("weight_decay", "lr_scale")
OverrideKey: TypeAlias = "type[nn.Module] | tuple[type[nn.Module], ...] | str | nn.Module"
_WHERE = "param_groups"


def _check_overrides(
    overrides: Mapping[Any, Mapping[str, Any]], model: nn.Module, infos: list[ParamInfo]
) -> list[tuple[Any, dict[str, float]]]:
    """Validated ``(key, options)`` pairs; every key must select something in ``model``."""
    checked = []
    names = [n for info in infos for n in (info.name, *info.aliases)]
    for key, options in overrides.items():
        if not isinstance(options, Mapping):
            raise TypeError(
                f"{_WHERE}: overrides[{key!r}] must be a dict such as {{'weight_decay': 0.0}}, "
                f"got {type(options).__name__}."
            )
        values = {}
        for option, value in options.items():
            check_choice("override option", option, OVERRIDE_OPTIONS, where=_WHERE)
            values[option] = check_real(
                f"overrides[{key!r}][{option!r}]",
                value,
                where=_WHERE,
                non_negative=option == "weight_decay",
                positive=option == "lr_scale",
            )
        if isinstance(key, nn.Parameter):
            if not any(info.param is key for info in infos):
                raise ValueError(
                    f"{_WHERE}: the override parameter of shape {tuple(key.shape)} is not a "
                    "parameter of the model; pass one of model.parameters() or a name glob."
                )
        elif isinstance(key, nn.Module):
            if not any(m is key for m in model.modules()):
                raise ValueError(
                    f"{_WHERE}: the override module {type(key).__name__} is not part of the "
                    "model; pass one of model.modules(), a module type or a name glob."
                )
        elif isinstance(key, str):
            if not fnmatch.filter(names, key):
                raise ValueError(
                    f"{_WHERE}: the override pattern {key!r} matches no parameter name; names "
                    f"look like {', '.join(names[:3])}."
                )
        elif not (
            isinstance(key, type)
            or (isinstance(key, tuple) and all(isinstance(k, type) for k in key))
        ):
            raise TypeError(
                f"{_WHERE}: an override key must be a module type, a parameter-name glob, a "
                f"module or a parameter of the model, got {type(key).__name__}."
            )
        checked.append((key, values))
    return checked


def _layer_power(multipliers: Mapping[str, float], name: str, below_top: int) -> float:
    """``multipliers[name] ** below_top`` (1 without one), refused if it leaves (0, inf)."""
    base = multipliers.get(name, 1.0)
    try:
        value = base**below_top
    except OverflowError:  # a float ** int that exceeds the float range raises
        value = math.inf
    if not 0.0 < value < math.inf:
        raise ValueError(
            f"{_WHERE}: {name}={base:g} to the power {below_top} (the blocks below the top) is "
            f"{value:g}, so a group would get a multiplier of 0 or inf; pick a {name} closer to "
            "1 (e.g. 0.75)."
        )
    return value


def _finite(what: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(
            f"{_WHERE}: {what} overflows to {value}; lower weight_decay, lr or the multipliers."
        )
    return value


def _matches(key: Any, info: ParamInfo, owner: nn.Module) -> bool:
    if isinstance(key, nn.Parameter):
        return info.param is key
    if isinstance(key, nn.Module):
        return any(p is info.param for p in key.parameters())
    if isinstance(key, str):
        return any(fnmatch.fnmatchcase(n, key) for n in (info.name, *info.aliases))
    return isinstance(owner, key)


def explain_param_groups(
    model: nn.Module,
    weight_decay: float,
    *,
    no_decay: Collection[Category] = DEFAULT_NO_DECAY,
    overrides: Mapping[Any, Mapping[str, float]] | None = None,
    layer_decay: float | None = None,
    layer_wd_decay: float | None = None,
    example_input: Any = None,
    model_no_decay: bool = True,
) -> ParamGroupReport:
    """The table behind :func:`param_groups`: parameter, shape, group, decay, lr scale, reason.

    Takes the same arguments as :func:`param_groups` (less ``lr`` and ``explain``).

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
        >>> report = explain_param_groups(model, 0.1)
        >>> report["1.weight"].weight_decay, report["1.weight"].category
        (0.0, 'norm')
    """
    model = unwrap_model(model)
    if not isinstance(model, nn.Module):
        raise TypeError(f"{_WHERE}: expected an nn.Module, got {type(model).__name__}.")
    weight_decay = check_real("weight_decay", weight_decay, where=_WHERE, non_negative=True)
    if isinstance(no_decay, str):
        raise TypeError(f"{_WHERE}: no_decay must be a collection of categories, e.g. ('bias',).")
    for category in no_decay:
        check_choice("no_decay category", category, CATEGORIES, where=_WHERE)
    multipliers = {}
    for name, value in (("layer_decay", layer_decay), ("layer_wd_decay", layer_wd_decay)):
        if value is not None:
            multipliers[name] = check_real(name, value, where=_WHERE, positive=True)
    graph = trace(model, example_input, rows=STRUCTURE_ROWS) if example_input is not None else None
    infos = classify(model, graph)
    checked = _check_overrides(overrides or {}, model, infos)
    modules = dict(model.named_modules(remove_duplicate=False))
    depth = depths(infos, modules, graph)
    top = max(depth, default=0)
    declared = declared_no_decay(model, where=_WHERE) if model_no_decay else None
    rows = []
    groups: dict[tuple[float, float], int] = {}
    for info, d in zip(infos, depth, strict=True):
        decayed = info.category not in no_decay
        reason = info.reason + ("" if decayed else " -> no decay")
        owners = [declared(n) for n in (info.name, *info.aliases)] if declared else []
        owner = next((o for o in owners if o is not None), None)
        if decayed and owner is not None:
            decayed = False
            kind = type(modules[owner]).__name__
            reason += f" -> no decay: the model declares it ({kind}.no_weight_decay)"
        wd = weight_decay if decayed else 0.0
        wd = _finite(
            "weight_decay × layer_wd_decay^depth",
            wd * _layer_power(multipliers, "layer_wd_decay", top - d),
        )
        lr_scale = _layer_power(multipliers, "layer_decay", top - d)
        for key, values in checked:
            if _matches(key, info, modules[info.module]):
                wd = values.get("weight_decay", wd)
                lr_scale = values.get("lr_scale", lr_scale)
                label = key.__name__ if isinstance(key, type) else repr(key)
                reason += f"; override {label}"
        group = None
        if info.trainable:
            group = groups.setdefault((wd, lr_scale), len(groups))
        else:
            reason = "frozen (requires_grad=False): not given to the optimizer"
        rows.append(
            ParamGroupRow(
                info.name,
                tuple(info.param.shape),
                info.category,
                group,
                wd,
                lr_scale,
                d,
                reason,
                info.aliases,
            )
        )
    return ParamGroupReport(rows)


def param_groups(
    model: nn.Module,
    weight_decay: float,
    *,
    lr: float | None = None,
    no_decay: Collection[Category] = DEFAULT_NO_DECAY,
    overrides: Mapping[Any, Mapping[str, float]] | None = None,
    layer_decay: float | None = None,
    layer_wd_decay: float | None = None,
    example_input: Any = None,
    model_no_decay: bool = True,
    explain: bool = False,
) -> list[dict[str, Any]]:
    """Parameter groups for any ``torch.optim`` optimizer, with no decay where it does not belong.

    Every trainable parameter appears in exactly one group, once even when tied; frozen ones in
    none. Each group is ``{"params", "param_names", "weight_decay"}`` plus ``"lr"`` (= ``lr`` ×
    scale) and ``"lr_scale"`` when ``lr`` is given.

    Layer-wise decay (Bao et al. 2021, "BEiT"; Clark et al. 2020, "ELECTRA"): a parameter at
    depth d of D gets ``lr × layer_decay^(D − d)`` and ``weight_decay × layer_wd_decay^(D − d)``;
    depth counts blocks in execution order (see :mod:`stabletrain.regularization._depth`).

    Args:
        model: the model.
        weight_decay: λ for the parameters that decay (the optimizer's own convention: coupled
            L2 for SGD/Adam, decoupled for AdamW).
        lr: base learning rate; required with ``layer_decay`` or an ``lr_scale`` override.
        no_decay: categories that get no decay, from ``"bias"``, ``"norm"``, ``"gain"``,
            ``"embedding"``, ``"positional"`` (and ``"weight"``).
        overrides: ``{key: {"weight_decay": λ, "lr_scale": s}}``; a key is a module type, a
            parameter-name glob, a module or a parameter of the model. Later keys win. A glob,
            module or parameter that selects nothing raises (a typo would otherwise be silent).
        layer_decay: lr multiplier per block of depth below the top (e.g. 0.75).
        layer_wd_decay: weight-decay multiplier per block of depth below the top.
        example_input: if given, one traced forward pass classifies custom modules' parameters
            by the operations that read them and orders blocks by execution.
        model_no_decay: also exempt the parameters that the model (or any of its modules)
            declares in ``no_weight_decay()`` / ``no_weight_decay_keywords()``, as timm's and
            Swin's models do (see :mod:`stabletrain.regularization._declared`).
        explain: print the table of :func:`explain_param_groups`.

    Raises:
        ValueError: a negative λ, an unknown category or override option, an override that
            selects nothing, layer decay without ``lr``, a multiplier or learning rate that
            overflows (or underflows to 0) at some depth.
        TypeError: a model that is not an ``nn.Module``, a bad override key.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
        >>> groups = param_groups(model, weight_decay=0.05)
        >>> [(g["weight_decay"], g["param_names"]) for g in groups]
        [(0.05, ['0.weight', '2.weight']), (0.0, ['0.bias', '1.weight', '1.bias', '2.bias'])]
        >>> opt = torch.optim.AdamW(groups, lr=1e-3)
    """
    model = unwrap_model(model)
    report = explain_param_groups(
        model,
        weight_decay,
        no_decay=no_decay,
        overrides=overrides,
        layer_decay=layer_decay,
        layer_wd_decay=layer_wd_decay,
        example_input=example_input,
        model_no_decay=model_no_decay,
    )
    if lr is not None:
        lr = check_real("lr", lr, where=_WHERE, positive=True)
    elif any(row.lr_scale != 1.0 for row in report.rows if row.group is not None):
        raise ValueError(
            f"{_WHERE}: layer_decay or an lr_scale override needs the base learning rate: pass "
            "lr=... so that each group gets lr × its scale (optimizers ignore 'lr_scale')."
        )
    if explain:
        Console().print(report)
    params = dict(model.named_parameters())
    groups: dict[int, dict[str, Any]] = {}
    for row in report.rows:
        if row.group is None:
            continue
        group = groups.setdefault(
            row.group,
            {"params": [], "param_names": [], "weight_decay": row.weight_decay},
        )
        if lr is not None:
            group.update(lr=_finite("lr × lr_scale", lr * row.lr_scale), lr_scale=row.lr_scale)
        group["params"].append(params[row.name])
        group["param_names"].append(row.name)
    return [groups[i] for i in sorted(groups)]


def decay_parameters(
    model: nn.Module,
    *,
    no_decay: Collection[Category] = DEFAULT_NO_DECAY,
    example_input: Any = None,
    model_no_decay: bool = True,
) -> list[nn.Parameter]:
    """The trainable parameters :func:`param_groups` would decay (the weights, by default).

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8))
        >>> [tuple(p.shape) for p in decay_parameters(model)]
        [(8, 4)]
    """
    model = unwrap_model(model)
    report = explain_param_groups(
        model,
        1.0,
        no_decay=no_decay,
        example_input=example_input,
        model_no_decay=model_no_decay,
    )
    params = dict(model.named_parameters())
    return [params[r.name] for r in report.rows if r.group is not None and r.weight_decay > 0]
