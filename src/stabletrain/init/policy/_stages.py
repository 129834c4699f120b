"""auto_init's stages: initialize by the rules, scale residual branches and queries, calibrate
by measurement, report. Each stage reads the plan the previous ones wrote."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from stabletrain._units import is_hf_conv1d
from stabletrain.graph import Graph
from stabletrain.init._calibrate import calibrate
from stabletrain.init.looks_linear import relu_chains
from stabletrain.init.policy._apply import (
    apply_rule,
    following_of,
    looks_linear_record,
    std_of,
)
from stabletrain.init.policy._roles import Roles, find_roles, fitted_logit_std
from stabletrain.init.policy.report import InitReport, ParamRecord
from stabletrain.init.policy.rules import CATEGORIES, Rule
from stabletrain.init.residual import (
    ResidualMode,
    residual_factors,
    scale_layer_,
    zero_keeps_gradient,
)

# tanh/sigmoid are left out on purpose: see `calibrate_layers` in auto_init's docstring
CALIBRATED_CATEGORIES = ("relu_family", "smooth")
_HOMOGENEOUS = (nn.Linear, nn.modules.conv._ConvNd, nn.Bilinear)
_NO_CALIBRATION = (nn.RNNBase, nn.RNNCellBase, nn.MultiheadAttention, nn.Embedding, nn.EmbeddingBag)


@dataclass
class Plan:
    """What the stages decided so far."""

    report: InitReport
    roles: Roles
    calibrated: dict[str, nn.Module] = field(default_factory=dict)  # fit to target_std
    frozen_layers: set[str] = field(default_factory=set)  # hold a frozen parameter: never scaled
    fitted: dict[str, str] = field(default_factory=dict)  # layer -> why it was fitted


def _calibrates(
    following: str, seen: Any, module: nn.Module, p: torch.Tensor, rule: Rule | None
) -> bool:
    return (
        p.dim() >= 2
        and rule is not None
        and rule.scheme not in ("keep", "zeros")
        and not any(f.kind == "norm" for f in seen or ())
        and not isinstance(module, _NO_CALIBRATION)
        and any(following in CATEGORIES[c] for c in CALIBRATED_CATEGORIES)
    )


def _sole_norm(seen: Any) -> str | None:
    """The normalization op that alone consumes a layer's output (every use goes into it)."""
    ops: set[str] = {f.op for f in seen or ()}
    if seen and len(ops) == 1 and all(f.kind == "norm" for f in seen):
        return ops.pop()
    return None


def initialize(
    model: nn.Module,
    graph: Graph,
    rules: Sequence[Rule],
    looks_linear: bool,
    include_frozen: bool,
    generator: torch.Generator | None,
) -> Plan:
    """Every parameter by the first rule that matches (or its role), frozen ones kept."""
    plan = Plan(InitReport(forward_passes=1), find_roles(graph, model))
    modules = dict(model.named_modules(remove_duplicate=False))
    params = dict(model.named_parameters())
    frozen = {n for n, p in params.items() if not (p.requires_grad or include_frozen)}
    plan.frozen_layers = {n.rpartition(".")[0] for n in frozen}
    stream_std = plan.roles.stream_std(params)
    chains = relu_chains(graph, model) if looks_linear else {}
    for name, p in params.items():
        layer, _, pname = name.rpartition(".")
        module = modules[layer]
        if name in frozen:
            plan.report.params.append(
                ParamRecord(
                    name, layer, tuple(p.shape), "", "keep", "frozen: kept", std_of(p), std_of(p)
                )
            )
            continue
        if layer in chains and pname in ("weight", "bias"):
            plan.report.params.append(looks_linear_record(name, layer, p, chains[layer], generator))
            continue
        info, use = graph.layers.get(layer), graph.params.get(name)
        seen = use.following if use else (info.following if info else None)
        following, act_gain, described = following_of(seen)
        ops = use.ops if use else ()
        norm = _sole_norm(seen)
        rule = next(
            (r for r in rules if r.matches(module, pname, p.dim(), following, ops, norm)), None
        )
        record = ParamRecord(
            name,
            layer,
            tuple(p.shape),
            described,
            rule.scheme if rule else "keep",
            rule.name if rule else "no rule matched: kept the module's own init",
            std_of(p),
            fallback=rule is None,
        )
        if rule is not None and rule.scheme != "keep":
            record.gain, record.scheme, record.rule = apply_rule(
                rule, module, name, p, act_gain, ops, plan.roles, stream_std, generator
            )
        plan.report.params.append(record)
        # calibration fits the layer's output: what follows the output must be the activation
        # (a mixture of experts applies its activation inside, between two weights)
        if info is not None and _calibrates(
            following_of(info.following)[0], info.following, module, p, rule
        ):
            plan.calibrated[layer] = module
    plan.calibrated = {n: m for n, m in plan.calibrated.items() if n not in plan.frozen_layers}
    if chains:
        plan.report.notes.append(
            f"looks-linear: {len(chains)} layer(s) in ReLU chains compute an isometric linear map "
            "at init (mirrored orthogonal weights)"
        )
    return plan


def scale_branches_and_queries(
    model: nn.Module, graph: Graph, plan: Plan, residual: ResidualMode | None
) -> dict[str, float]:
    """``residual=`` factors (those of calibrated layers are applied inside the calibration
    pass) and the ``1/sqrt(d)`` of attention queries whose scores are not scaled."""
    factors = residual_factors(model, graph.residuals, residual) if residual is not None else {}
    factors = {n: f for n, f in factors.items() if n not in plan.frozen_layers}
    for name, factor in factors.items():
        if name not in plan.calibrated:
            scale_layer_(model, name, factor)
    for layer, (factor, head_dim) in plan.roles.query_factors.items():
        if layer in plan.frozen_layers:
            continue
        scale_layer_(model, layer, factor)
        for record in plan.report.params:
            if record.layer == layer and record.scheme not in ("keep", "zeros"):
                record.rule += (
                    f" + attention scores reach the softmax without 1/√d: query ×{factor:.3g} "
                    f"(d={head_dim})"
                )
    return factors


def _last_read(graph: Graph, model: nn.Module, layer: str) -> list[nn.Parameter]:
    """The parameters the last op of ``layer``'s first call read (its output is linear in
    them: a mixture of experts' down projection, a Linear's weight and bias)."""
    module = model.get_submodule(layer)
    if isinstance(module, nn.MultiheadAttention):  # one op reads all; the output is out_proj's
        return list(module.out_proj.parameters())
    call = next((c for c in graph.recording.calls if c.module == layer), None)
    ops = graph.recording.ops[call.first_op : call.last_op] if call else []
    last = next((op for op in reversed(ops) if op.params), None)
    if last is None:
        return list(model.get_submodule(layer).parameters(recurse=False))
    return [model.get_parameter(n) for n in dict.fromkeys(last.params)]


@dataclass
class Fits:
    """What the calibration pass fits, decided from the graph before any measurement."""

    layers: dict[str, nn.Module] = field(default_factory=dict)
    post: dict[str, float] = field(default_factory=dict)  # residual factor applied in the pass
    relative: dict[str, tuple[nn.Module, float]] = field(default_factory=dict)
    own: dict[str, list[nn.Parameter]] = field(default_factory=dict)
    goal_of: dict[str, Callable[[torch.Tensor], float]] = field(default_factory=dict)
    centre: set[str] = field(default_factory=set)
    tails: int = 0  # Pre-LN branch ends fitted relative to their stream
    exact: bool = True  # each layer called once, linear in its parameters, no tied reuse


def plan_fits(
    model: nn.Module,
    graph: Graph,
    plan: Plan,
    factors: dict[str, float],
    residual: ResidualMode | None,
) -> Fits:
    """The layers the calibration pass will fit and to what: layers before an activation,
    logits layers, the last layers of Pre-LN branches (recorded in ``plan.fitted``)."""
    fits = Fits(layers=dict(plan.calibrated))
    fits.post = {n: f for n, f in factors.items() if n in fits.layers}
    drawn = {r.layer for r in plan.report.params if r.scheme == "logits"}
    for name, role in plan.roles.logits.items():
        owner = name.rpartition(".")[0]
        if owner not in drawn or role.layer not in graph.layers:
            continue  # not drawn as logits (another rule, looks-linear, frozen)
        fits.layers[role.layer] = model.get_submodule(role.layer)
        fits.own.setdefault(role.layer, []).append(model.get_parameter(name))  # its weight only
        bias = getattr(fits.layers[role.layer], "bias", None)
        if not role.tied and isinstance(bias, torch.Tensor) and bias.shape == (role.classes,):
            fits.centre.add(role.layer)  # no class preferred at step 0: the bias takes the means
        fits.goal_of[role.layer] = functools.partial(
            fitted_logit_std,
            classes=role.classes,
            excess=role.fit_excess,
            per_class=role.layer in fits.centre,
        )
        plan.fitted[role.layer] = "logits"
        fits.exact = fits.exact and not role.tied
    tails = plan.roles.prenorm_tails if residual is None else {}
    fits.tails = len(tails)
    for tail, norm in tails.items():
        if tail in fits.layers or tail in plan.frozen_layers or tail not in graph.layers:
            continue
        fits.layers[tail] = model.get_submodule(tail)
        fits.relative[tail] = (model.get_submodule(norm), 1 / math.sqrt(len(tails)))
        fits.own[tail] = _last_read(graph, model, tail)
        plan.fitted[tail] = f"Pre-LN branch end: output std = stream std/√{len(tails)}"
    fits.exact = fits.exact and all(
        graph.layers[n].calls == 1 and (isinstance(m, _HOMOGENEOUS) or is_hf_conv1d(m))
        for n, m in fits.layers.items()
    )
    return fits


def _fit_notes(
    plan: Plan, fits: Fits, target_std: float, *, measured: bool, worst: float | None = None
) -> None:
    """The report's notes on what the calibration pass fits (``worst``: the largest correction
    of a layer before an activation; ``measured=False`` for a plan that ran no pass)."""
    notes = plan.report.notes
    if plan.calibrated and (worst is not None or not measured):
        done = f"; largest correction ×{worst:.3g}" if worst is not None else ""
        notes.append(
            f"calibrated {len(plan.calibrated)} layer(s) followed by a ReLU-family or smooth "
            "activation and no normalization "
            f"to output std {target_std:g} on example_input{done}"
        )
    if fits.relative:
        notes.append(
            f"Pre-LN residual stream: the last layer of each of {fits.tails} branch(es) fitted "
            f"to 1/√{fits.tails} of the stream it adds into (GPT-2's 1/√(2·n_layer) rule, "
            "relative to the stream's measured scale)"
        )
    if any(v == "logits" for v in plan.fitted.values()):
        notes.append(
            "logits layers fitted on example_input so the step-0 loss against uniform random "
            "targets is 1.025·ln C (the 5% bound, less what other batches add); a logits "
            "bias takes minus each class's mean logit on the batch: no class is preferred"
        )


def _note_fitted_rules(plan: Plan, layers: Any) -> None:
    """Append why each fitted layer's weight is fitted to its record's rule (not for logits:
    their role already says it)."""
    for record in plan.report.params:
        why = plan.fitted.get(record.layer)
        fitted = record.layer in layers and record.scheme not in ("keep", "frozen")
        if fitted and why and why != "logits" and record.name.endswith("weight"):
            record.rule += f" + {why}"


def describe_calibration(
    model: nn.Module,
    graph: Graph,
    plan: Plan,
    factors: dict[str, float],
    target_std: float,
    residual: ResidualMode | None,
) -> None:
    """What :func:`calibrate_stage` would fit, written into the report without measuring
    (``plan_init``): the records' rules and the notes name each fit; no forward pass."""
    fits = plan_fits(model, graph, plan, factors, residual)
    _note_fitted_rules(plan, fits.layers)
    _fit_notes(plan, fits, target_std, measured=False)


def calibrate_stage(
    model: nn.Module,
    example_input: Any,
    graph: Graph,
    plan: Plan,
    factors: dict[str, float],
    target_std: float,
    residual: ResidualMode | None,
) -> None:
    """One forward pass (plus checks where needed) fitting: layers before an activation to
    ``target_std`` (times their residual factor), logits layers to their logit std, and the
    last layers of Pre-LN branches to ``1/sqrt(N)`` of the stream they add into."""
    fits = plan_fits(model, graph, plan, factors, residual)
    if not fits.layers:
        return
    fitted, passes = calibrate(
        model,
        example_input,
        fits.layers,
        target_std=target_std,
        check=not fits.exact,
        post_scale=fits.post,
        relative=fits.relative,
        params=fits.own,
        goal_of=fits.goal_of,
        centre=fits.centre,
    )
    plan.report.forward_passes += passes
    for record in plan.report.params:
        if record.layer in fitted and record.scheme not in ("keep", "frozen"):
            factor = fits.post.get(record.layer, 1.0) if record.layer in factors else 1.0
            record.calibration = fitted[record.layer].scale / factor if factor else None
            record.output_std = fitted[record.layer].std_after
    _note_fitted_rules(plan, fitted)
    corrections = [
        r.calibration for r in plan.report.params if r.calibration and r.layer in plan.calibrated
    ]
    worst = max(corrections, key=lambda c: abs(math.log(c)), default=None)
    _fit_notes(plan, fits, target_std, measured=True, worst=worst)


def finish(
    model: nn.Module,
    graph: Graph,
    plan: Plan,
    residual: ResidualMode | None,
    factors: dict[str, float],
) -> None:
    """Notes on residual scaling, fallbacks, frozen and unused parameters; stds after."""
    report = plan.report
    if residual is not None:
        for record in report.params:
            if record.layer in factors and not (
                record.name.endswith("bias") and factors[record.layer]
            ):
                record.rule += f" + residual {residual} ×{factors[record.layer]:.3g}"
        in_pass = any(n in plan.calibrated for n in factors)
        report.notes.append(
            f"residual={residual!r}: rescaled {len(factors)} layer(s) of "
            f"{len(graph.residuals)} residual branch(es)"
            + (" (their factor applied inside the calibration pass)" if in_pass else "")
        )
        dead = [b for b in graph.residuals if not zero_keeps_gradient(b.tail_activation)]
        if residual != "scaled" and dead:
            report.notes.append(
                f"{len(dead)} branch(es) end in {dead[0].tail_activation} (e.g. "
                f"{dead[0].last_layer}): a zero last layer would never get a gradient there, "
                f"so it was scaled by 1/sqrt({len(graph.residuals)}) instead of zeroed"
            )
    params = dict(model.named_parameters())
    for record in report.params:
        record.std_after = std_of(params[record.name])
    frozen = [r.name for r in report.params if r.rule == "frozen: kept"]
    if frozen:
        report.notes.append(
            f"{len(frozen)} frozen parameter(s) (requires_grad=False) kept as they were: "
            + ", ".join(frozen[:8])
            + " (include_frozen=True re-initializes them)"
        )
    if report.fallbacks:
        report.notes.append(
            f"{len(report.fallbacks)} parameter(s) matched no rule and were kept "
            "as initialized by their module: " + ", ".join(p.name for p in report.fallbacks[:8])
        )
    if graph.unused:
        report.notes.append(
            "never called by the forward pass (initialized by type only): "
            + ", ".join(graph.unused[:8])
        )
