"""plan_init: the report auto_init would write, with nothing changed and nothing allocated."""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map_only

from stabletrain.graph import STRUCTURE_ROWS, Graph, snapshot_of, trace
from stabletrain.init.policy._apply import PLAN_SOURCE, std_of
from stabletrain.init.policy._auto import checked_arguments
from stabletrain.init.policy._stages import (
    describe_calibration,
    finish,
    initialize,
    scale_branches_and_queries,
)
from stabletrain.init.policy.report import InitReport
from stabletrain.init.policy.rules import Rule
from stabletrain.init.residual import ResidualMode

__all__ = ["plan_init"]

META_TRACE_PARAMETERS = 10_000_000
"""From this many parameters on, ``plan_init`` traces a model with values as its meta twin
(each op's cost is then the meta kernel's Python, not the arithmetic of a real row)."""


def plan_init(
    model: nn.Module,
    example_input: Any,
    policy: Sequence[Rule | Mapping[str, Any]] | None = None,
    *,
    residual: ResidualMode | None = None,
    calibrate_layers: bool = True,
    target_std: float = 1.0,
    looks_linear: bool = False,
    include_frozen: bool = False,
) -> InitReport:
    """The plan :func:`auto_init` would carry out, as its report; the model is not changed.

    Every parameter is listed with the scheme, gain and rule ``auto_init`` would give it with
    the same arguments, the layers its calibration pass would fit and why (logits fitted to a
    step-0 loss near ``ln C``, Pre-LN branch ends to ``1/sqrt(N)`` of their stream, layers
    before an activation to ``target_std``), and the notes. What only a measurement gives is
    left empty: the std after, the calibration factors, the output stds.

    The plan is made on a ``meta``-device twin of the model (same modules and tied parameters,
    tensors without storage): no parameter is allocated or drawn. A model with values is traced
    on the first row of ``example_input`` (its buffers, modes and random state restored) and the
    twin's stages read that graph, so data-dependent control flow (``if mask.any():``) plans
    too; a model built on the ``meta`` device (``with torch.device("meta"):``,
    ``init_empty_weights``) is traced as its twin on a ``meta`` copy of ``example_input``, so it
    is planned before it exists (a 1.1B-parameter Llama in about 0.3 s on a CPU), and raises
    ``ValueError`` if its forward pass needs values. A model that cannot be copied (it holds a
    lock, a C handle) is planned on itself under a snapshot (one copy of its parameters,
    buffers and gradients) restored bit for bit afterwards.

    Args:
        model: the model, on any device including ``meta``; it is not modified.
        example_input: a tensor, a tuple of positional inputs or a dict of keyword inputs
            (on any device: only shapes and dtypes are read on the twin).
        policy: ordered rules, as for :func:`auto_init` (default: its default rules).
        residual: ``None``, ``"zero"``, ``"scaled"`` or ``"fixup"``, as for :func:`auto_init`.
        calibrate_layers: name the fits of the calibration pass (``False``: none, as
            ``auto_init(calibrate_layers=False)`` makes none).
        target_std: the output std the layers before an activation would be fitted to.
        looks_linear: plan the looks-linear init of ReLU chains, as :func:`auto_init` does.
        include_frozen: plan re-initializing frozen parameters too (default: listed as kept).

    Returns:
        An :class:`InitReport` with ``planned=True`` and ``forward_passes == 0``: the trace
        ran on the twin (or on the model, restored), never a calibration pass.

    Example:
        >>> with torch.device("meta"):
        ...     model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 10))
        >>> plan = plan_init(model, torch.randn(8, 16))
        >>> plan["0.weight"].scheme, plan["2.weight"].scheme, plan.planned
        ('he_normal', 'logits', True)
        >>> model[0].weight.is_meta  # nothing was materialized
        True
    """
    model, rules, target_std = checked_arguments(
        "plan_init", model, example_input, policy, residual, target_std
    )
    stages = functools.partial(
        _plan,
        rules=rules,
        residual=residual,
        calibrate_layers=calibrate_layers,
        target_std=target_std,
        looks_linear=looks_linear,
        include_frozen=include_frozen,
    )
    with torch.random.fork_rng(devices=[]):  # the draws on the model itself use the CPU RNG
        report = _planned(model, example_input, stages)
    real = dict(model.named_parameters())
    for record in report.params:
        record.std_before, record.std_after = std_of(real[record.name]), math.nan
    report.forward_passes = 0
    return report


def _planned(
    model: nn.Module, example_input: Any, stages: Callable[[nn.Module, Any], InitReport]
) -> InitReport:
    """``stages`` on the meta twin, or on the model itself under a snapshot where no twin can
    be made.

    How the twin's graph is traced: a meta tensor costs no arithmetic but each op runs meta
    kernels written in Python, so a small model is traced faster on one real row (an LSTM over
    200 steps: 3 ms against 0.4 s) and a large one as its twin (BERT-base: 0.1 s against 0.26 s
    for one real row of 128 tokens); :data:`META_TRACE_PARAMETERS` is the line. A model with
    values whose twin cannot run (data-dependent control flow) is traced on one real row; a
    ``meta`` model whose twin cannot run raises ``ValueError``."""
    twin = _meta_twin(model)
    if twin is None:
        return _planned_on_itself(model, example_input, stages)
    meta, graph = _is_meta(model), None
    if meta or sum(p.numel() for p in model.parameters()) >= META_TRACE_PARAMETERS:
        try:
            graph = trace(twin, _to_meta(example_input))
        except Exception as err:  # the forward pass reads values: data-dependent control flow
            if meta:
                raise ValueError(
                    f"plan_init: {type(model).__name__}'s forward pass needs values, which a "
                    f"model on the meta device does not have ({type(err).__name__}: {err}); "
                    'materialize it first (model.to_empty(device="cpu")) and plan again.'
                ) from err
    if graph is None:
        graph = _on_twin(trace(model, example_input, rows=STRUCTURE_ROWS), twin)
    return stages(twin, graph)


def _planned_on_itself(
    model: nn.Module, example_input: Any, stages: Callable[[nn.Module, Any], InitReport]
) -> InitReport:
    """``stages`` on ``model`` itself (no twin could be made), every tensor restored after."""
    restore = snapshot_of(model)
    try:
        report = stages(model, trace(model, example_input, rows=STRUCTURE_ROWS))
    finally:
        restore()
    report.notes.append(
        "planned on the model itself (it could not be copied to a meta-device twin); every "
        "tensor was restored as it was"
    )
    return report


def _on_twin(graph: Graph, twin: nn.Module) -> Graph:
    """``graph``, traced on the model, with every layer's module replaced by the twin's of the
    same name: the stages then change the twin only."""
    layers = {
        name: replace(info, module=twin.get_submodule(name)) for name, info in graph.layers.items()
    }
    return replace(graph, layers=layers)


def _plan(
    model: nn.Module,
    graph: Any,
    *,
    rules: list[Rule],
    residual: ResidualMode | None,
    calibrate_layers: bool,
    target_std: float,
    looks_linear: bool,
    include_frozen: bool,
) -> InitReport:
    """auto_init's stages on ``model`` (the twin, or the model under a snapshot), with the
    calibration pass described instead of run."""
    plan = initialize(model, graph, rules, looks_linear, include_frozen, None)
    factors = scale_branches_and_queries(model, graph, plan, residual)
    if calibrate_layers:
        describe_calibration(model, graph, plan, factors, target_std, residual)
    finish(model, graph, plan, residual, factors)
    plan.report.planned = True
    return plan.report


def _is_meta(model: nn.Module) -> bool:
    return any(t.is_meta for t in (*model.parameters(), *model.buffers()))


def _meta_twin(model: nn.Module) -> nn.Module | None:
    """A deep copy of ``model`` whose parameters and buffers are ``meta`` tensors of the same
    shapes, dtypes and ``requires_grad`` (shared tensors stay shared): no storage is copied.
    ``None`` where the model cannot be copied."""
    memo: dict[int, Any] = {}
    for p in model.parameters():
        twin = nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
        setattr(twin, PLAN_SOURCE, p)  # its values still decide (a zero norm weight is kept)
        memo[id(p)] = twin
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    try:
        return copy.deepcopy(model, memo)
    except Exception:  # a module holding a lock, a C handle, a compiled graph ...
        return None


def _to_meta(value: Any) -> Any:
    """``value`` with every tensor replaced by a ``meta`` tensor of its shape and dtype."""
    return tree_map_only(torch.Tensor, lambda t: torch.empty_like(t, device="meta"), value)
