"""auto_init: observe what follows every layer, then initialize each parameter by the policy."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from stabletrain._checks import check_choice, check_real
from stabletrain.graph import Following, Graph, check_example_input, first_activation, trace
from stabletrain.graph._ops import ACTIVATION_OPS
from stabletrain.init._calibrate import calibrate
from stabletrain.init.fans import layer_fans, recurrent_gates
from stabletrain.init.gain import gain
from stabletrain.init.looks_linear import looks_linear_, relu_chains
from stabletrain.init.policy._report import InitReport, ParamRecord
from stabletrain.init.policy._rules import (
    CATEGORIES,
    VARIANCE_SCHEMES,
    Rule,
    check_rules,
    default_rules,
)
from stabletrain.init.residual import (
    RESIDUAL_MODES,
    ResidualMode,
    residual_factors,
    scale_layer_,
    zero_keeps_gradient,
)
from stabletrain.init.schemes import (
    Distribution,
    constant_,
    normal_,
    orthogonal_,
    standard_,
    trunc_normal_,
    variance_scaling_,
    zeros_,
)

# tanh/sigmoid are left out on purpose: see `calibrate_layers` in auto_init's docstring
CALIBRATED_CATEGORIES = ("relu_family", "smooth")
_HOMOGENEOUS = (nn.Linear, nn.modules.conv._ConvNd, nn.Bilinear)
_NO_CALIBRATION = (nn.RNNBase, nn.RNNCellBase, nn.MultiheadAttention, nn.Embedding, nn.EmbeddingBag)


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


def _std(t: torch.Tensor) -> float:
    return (
        float(t.detach().float().std()) if t.numel() > 1 else float(t.detach().float().abs().mean())
    )


def _apply(
    rule: Rule,
    module: nn.Module,
    pname: str,
    p: torch.Tensor,
    act_gain: float | None,
    generator: torch.Generator | None,
) -> float | None:
    """Initialize ``p`` by ``rule``; returns the gain used, if the scheme has one."""
    opts = dict(rule.options)
    g = opts.pop("gain", 1.0)
    g = (act_gain if act_gain is not None else 1.0) if g == "auto" else float(g)
    fans = layer_fans(module, pname) if p.dim() >= 2 else None
    s = rule.scheme
    if s in VARIANCE_SCHEMES:
        mode = opts.get("mode", "fan_avg" if s.startswith("xavier") else "fan_in")
        dist: Distribution = "uniform" if s.endswith("uniform") else "normal"
        g = 1.0 if s.startswith("lecun") else g
        variance_scaling_(p, g * g, mode, dist, fans=fans, generator=generator)
        return g
    if s == "orthogonal":
        blocks = recurrent_gates(module) if isinstance(module, nn.RNNBase | nn.RNNCellBase) else 1
        orthogonal_(p, g, blocks=blocks, generator=generator)
        return g
    if s == "zeros":
        zeros_(p)
    elif s == "ones":
        constant_(p, 1.0)
    elif s == "constant" and "forget_bias" in opts:  # LSTM gates i, f, g, o
        zeros_(p)
        forget = opts["forget_bias"]
        if forget is not None and pname.startswith("bias_ih"):
            hidden = p.shape[0] // 4
            constant_(p[hidden : 2 * hidden], forget)
    elif s == "constant":
        constant_(p, opts.get("value", 0.0))
    elif s == "normal":
        normal_(p, opts.get("mean", 0.0), opts.get("std", 0.02), generator=generator)
    elif s == "trunc_normal":
        std = opts.get("std", 0.02)
        trunc_normal_(p, 0.0, std, -2 * std, 2 * std, generator=generator)
    elif s == "standard":
        standard_(p, fans=fans, generator=generator)
    return None


def _looks_linear(
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
        _std(p),
    )
    if p.dim() >= 2:
        looks_linear_(p, mirror_in=mirror[0], mirror_out=mirror[1], generator=generator)
        record.gain = 1.0
    else:
        zeros_(p)
    return record


def auto_init(
    model: nn.Module,
    example_input: Any,
    policy: Sequence[Rule | Mapping[str, Any]] | None = None,
    *,
    residual: ResidualMode | None = None,
    calibrate_layers: bool = True,
    target_std: float = 1.0,
    looks_linear: bool = False,
    generator: torch.Generator | None = None,
) -> InitReport:
    """Initialize every parameter of ``model`` for the operation that actually follows its layer.

    One traced forward pass (:func:`stabletrain.graph.trace`) observes what consumes each
    layer's output; the first matching rule of ``policy`` (default: :func:`default_rules`, the
    tutorials' decision tree, claim I10) picks the scheme, with the exact gain of the following
    activation (:func:`stabletrain.init.gain`). A static gain is exact for one layer with
    unit-variance input but drifts with depth for activations without a stable fixed point
    (GELU, SiLU, Mish); so layers followed by an activation and no normalization are then
    calibrated by measurement on ``example_input`` (one forward pass fits all of them, LSUV-style;
    ``calibrate_layers=False`` turns it off), and the report says by how much. ``residual``
    rescales residual branches (:func:`stabletrain.init.residual.init_residual_`) before that
    measurement, so each calibrated layer is fitted to the signal of the final model: a layer
    of a branch that Fixup scales by ``s`` ends at output std ``s · target_std``, and a zeroed
    branch adds nothing to the stream the later layers are fitted on.

    Args:
        model: the model; its train/eval mode and buffers are left as they were.
        example_input: a tensor, a tuple of positional inputs or a dict of keyword inputs.
        policy: ordered rules (:class:`Rule` or dicts); replaces the default. Extend it with
            ``[my_rule, *default_rules()]``.
        residual: ``None``, ``"zero"``, ``"scaled"`` or ``"fixup"``.
        calibrate_layers: calibrate layers followed by a ReLU-family or smooth activation
            (GELU, SiLU, ...) and no normalization. Saturating activations (tanh, sigmoid)
            keep Xavier's gain 1: scaling their pre-activations to std 1 puts a deep tanh net in
            the chaotic regime (gradients grow ~1.18x per layer), which trains worse.
        target_std: the output std calibration aims for (pre-activations ~ N(0, 1)).
        looks_linear: initialize chains of Linear/Conv layers joined by plain ReLUs (no
            normalization, no skip) with mirrored orthogonal weights, so the chain computes an
            isometric linear map at init (:func:`stabletrain.init.looks_linear_`, Balduzzi et
            al. 2017): what makes a depth-100 plain ReLU MLP trainable, where He init's
            gradients shatter. Other layers follow ``policy``.
        generator: random generator for every draw.

    Returns:
        An :class:`InitReport` listing every parameter, its scheme, gain, std before and after
        and the rule that fired; unclassified parameters are listed as fallbacks (kept as they
        were).

    Example:
        >>> model = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 10))
        >>> report = auto_init(model, torch.randn(32, 16))
        >>> report["0.weight"].scheme, round(report["0.weight"].gain, 4)
        ('he_normal', 1.5335)
        >>> report["2.weight"].rule
        'output layer'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"auto_init: expected an nn.Module, got {type(model).__name__}.")
    check_example_input(example_input, where="auto_init")
    if residual is not None:
        check_choice("residual", residual, RESIDUAL_MODES, where="auto_init")
    target_std = check_real("target_std", target_std, where="auto_init", positive=True)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"auto_init: generator must be a torch.Generator, got {type(generator).__name__}."
        )
    rules = default_rules() if policy is None else check_rules(policy)
    graph = trace(model, example_input)
    report = InitReport(forward_passes=1)
    calibrated: dict[str, nn.Module] = {}
    modules = dict(model.named_modules(remove_duplicate=False))
    params = dict(model.named_parameters())
    chains = relu_chains(graph, model) if looks_linear else {}
    for name, p in params.items():
        layer, _, pname = name.rpartition(".")
        module = modules[layer]
        if layer in chains and pname in ("weight", "bias"):
            report.params.append(_looks_linear(name, layer, p, chains[layer], generator))
            continue
        info, use = graph.layers.get(layer), graph.params.get(name)
        seen = use.following if use else (info.following if info else None)
        following, act_gain, described = following_of(seen)
        ops = use.ops if use else ()
        rule = next((r for r in rules if r.matches(module, pname, p.dim(), following, ops)), None)
        record = ParamRecord(
            name,
            layer,
            tuple(p.shape),
            described,
            rule.scheme if rule else "keep",
            rule.name if rule else "no rule matched: kept the module's own init",
            _std(p),
            fallback=rule is None,
        )
        if rule is not None and rule.scheme != "keep":
            record.gain = _apply(rule, module, pname, p, act_gain, generator)
        report.params.append(record)
        if (
            calibrate_layers
            and info is not None
            and p.dim() >= 2
            and rule is not None
            and rule.scheme not in ("keep", "zeros")
            and not any(f.kind == "norm" for f in seen or ())
            and not isinstance(module, _NO_CALIBRATION)
            and any(following in CATEGORIES[c] for c in CALIBRATED_CATEGORIES)
        ):
            calibrated[layer] = module
    if chains:
        report.notes.append(
            f"looks-linear: {len(chains)} layer(s) in ReLU chains compute an isometric linear map "
            "at init (mirrored orthogonal weights)"
        )
    # residual factors go in before calibration measures, so every calibrated layer is fitted
    # to the signal of the final model (a zeroed branch adds nothing to the stream there)
    factors = residual_factors(model, graph.residuals, residual) if residual is not None else {}
    in_pass = {n: f for n, f in factors.items() if n in calibrated}
    for name, factor in factors.items():
        if name not in in_pass:
            scale_layer_(model, name, factor)
    if calibrated:
        # one call each, linear in its parameters: the fitting pass is exact, skip the check
        called_once = all(
            graph.layers[n].calls == 1 and isinstance(m, _HOMOGENEOUS)
            for n, m in calibrated.items()
        )
        fitted, passes = calibrate(
            model,
            example_input,
            calibrated,
            target_std=target_std,
            check=not called_once,
            post_scale=in_pass,
        )
        report.forward_passes += passes
        for record in report.params:
            if record.layer in fitted:
                factor = in_pass.get(record.layer, 1.0)
                scale = fitted[record.layer].scale
                record.calibration = scale / factor if factor else None
                record.output_std = fitted[record.layer].std_after
        corrections = [r.calibration for r in report.params if r.calibration]
        worst = max(corrections, key=lambda c: abs(math.log(c)), default=1.0)
        report.notes.append(
            f"calibrated {len(fitted)} layer(s) followed by a ReLU-family or smooth activation and "
            "no normalization "
            f"to output std {target_std:g} on example_input; largest correction ×{worst:.3g}"
        )
    if residual is not None:
        for record in report.params:
            if record.layer in factors and not (
                record.name.endswith("bias") and factors[record.layer]
            ):
                record.rule += f" + residual {residual} ×{factors[record.layer]:.3g}"
        report.notes.append(
            f"residual={residual!r}: rescaled {len(factors)} layer(s) of "
            f"{len(graph.residuals)} residual branch(es)"
            + (" (their factor applied inside the calibration pass)" if in_pass else "")
        )
        frozen = [b for b in graph.residuals if not zero_keeps_gradient(b.tail_activation)]
        if residual != "scaled" and frozen:
            report.notes.append(
                f"{len(frozen)} branch(es) end in {frozen[0].tail_activation} (e.g. "
                f"{frozen[0].last_layer}): a zero last layer would never get a gradient there, "
                f"so it was scaled by 1/sqrt({len(graph.residuals)}) instead of zeroed"
            )
    for record in report.params:
        record.std_after = _std(params[record.name])
    if report.fallbacks:
        report.notes.append(
            f"{len(report.fallbacks)} parameter(s) matched no rule and were kept "
            "as initialized by their module: " + ", ".join(p.name for p in report.fallbacks[:8])
        )
    _note_unused(graph, report)
    return report


def _note_unused(graph: Graph, report: InitReport) -> None:
    if graph.unused:
        report.notes.append(
            "never called by the forward pass (initialized by type only): "
            + ", ".join(graph.unused[:8])
        )
