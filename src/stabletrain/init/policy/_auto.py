"""auto_init: observe what follows every layer, then initialize each parameter by the policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from stabletrain._checks import check_choice, check_not_meta, check_real
from stabletrain._wrappers import unwrap_model
from stabletrain.graph import (
    STRUCTURE_ROWS,
    SnapshotDevice,
    check_example_input,
    trace,
    transaction,
)
from stabletrain.init._replicas import replicate_from_rank0
from stabletrain.init.policy._apply import following_of
from stabletrain.init.policy._stages import (
    calibrate_stage,
    finish,
    initialize,
    scale_branches_and_queries,
)
from stabletrain.init.policy.report import InitReport
from stabletrain.init.policy.rules import Rule, check_rules, default_rules
from stabletrain.init.residual import RESIDUAL_MODES, ResidualMode

__all__ = ["auto_init", "following_of"]


def checked_arguments(
    where: str,
    model: nn.Module,
    example_input: Any,
    policy: Sequence[Rule | Mapping[str, Any]] | None,
    residual: ResidualMode | None,
    target_std: float,
) -> tuple[nn.Module, list[Rule], float]:
    """The unwrapped model, the rules and ``target_std``, checked (``TypeError``/``ValueError``
    naming the argument) for :func:`auto_init` and :func:`plan_init`."""
    model = unwrap_model(model)
    if not isinstance(model, nn.Module):
        raise TypeError(f"{where}: expected an nn.Module, got {type(model).__name__}.")
    check_example_input(example_input, where=where)
    if residual is not None:
        check_choice("residual", residual, RESIDUAL_MODES, where=where)
    target_std = check_real("target_std", target_std, where=where, positive=True)
    rules = default_rules() if policy is None else check_rules(policy)
    return model, list(rules), target_std


def auto_init(
    model: nn.Module,
    example_input: Any,
    policy: Sequence[Rule | Mapping[str, Any]] | None = None,
    *,
    residual: ResidualMode | None = None,
    calibrate_layers: bool = True,
    target_std: float = 1.0,
    looks_linear: bool = False,
    include_frozen: bool = False,
    snapshot: SnapshotDevice = "device",
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

    Roles read from the graph decide where a layer type alone cannot (see
    :mod:`stabletrain.init.policy._roles`): a layer whose result is the model's output or goes
    into a softmax (a classifier or LM head, an MoE router) is fitted on ``example_input`` so
    the cross-entropy of its logits against uniform random targets is ``1.025·ln C`` (logits
    of std ``sqrt(0.05·ln C)`` where they are Gaussian); a table that is both
    the input embedding and the LM head (tied weights) is initialized for that output role
    (fitted to ``1.035·ln C``: as large as the bound allows, for its input role);
    tables feeding a residual stream get ``N(0, 1/dim)`` (or the tied table's std), tables
    followed by a normalization keep their scale; in Pre-LN Transformers each branch's last
    layer is fitted to ``1/sqrt(N)`` of the stream it adds into (``N`` branches; GPT-2's
    ``1/sqrt(2·n_layer)``; parallel sub-branches summed into one addition, Phi's
    ``x + attn(ln x) + mlp(ln x)``, count one each); a weight whose output only a BatchNorm
    reads gets He normal with ``fan_out`` (torchvision's and timm's convention: the norm fixes
    the forward scale); a query projection whose scores reach the softmax without
    ``1/sqrt(d)`` takes that factor (T5); a normalization weight the model set to zero (the
    last BatchNorm of a timm ResNet block) is kept. Frozen parameters are never touched by
    default. Under an initialized process group every rank ends with rank 0's parameters
    (broadcast after the init), and the report says so.

    The whole operation is a transaction: if anything raises (the model on the example batch,
    a layer that cannot be fitted), every parameter, buffer, gradient and mode is restored and
    the error says which stage failed.

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
        include_frozen: also re-initialize parameters with ``requires_grad=False`` (usually
            pretrained weights: by default they are kept and listed as "frozen: kept").
        snapshot: where the undo copy lives while it runs: ``"device"`` (fast; one extra copy of
            the parameters, buffers and gradients on their device) or ``"cpu"`` (host memory,
            for models that fill the accelerator).
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
        >>> report["2.weight"].scheme
        'logits'
    """
    model, rules, target_std = checked_arguments(
        "auto_init", model, example_input, policy, residual, target_std
    )
    check_not_meta(model, "auto_init")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"auto_init: generator must be a torch.Generator, got {type(generator).__name__}."
        )
    with transaction(model, "auto_init", snapshot=snapshot) as state:
        state.stage = "tracing the model on example_input"
        graph = trace(model, example_input, rows=STRUCTURE_ROWS)
        state.stage = "initializing the parameters"
        plan = initialize(model, graph, rules, looks_linear, include_frozen, generator)
        state.stage = "scaling residual branches and attention queries"
        factors = scale_branches_and_queries(model, graph, plan, residual)
        if calibrate_layers:
            state.stage = "calibrating layers on example_input"
            calibrate_stage(model, example_input, graph, plan, factors, target_std, residual)
        state.stage = "writing the report"
        finish(model, graph, plan, residual, factors)
    return replicate_from_rank0(model, plan.report)
