"""Architecture lint: smells that make a model hard to train, each with a concrete fix.

:func:`lint` reads the model's structure from one traced forward pass
(:func:`stabletrain.graph.trace`; or a ``graph`` already traced) and runs every rule, a pure
function ``LintContext -> list[Finding]``. Rules (severity in brackets; thresholds in
:class:`LintThresholds`; claim IDs from the tutorials):

=========================  =========  =========================================================
rule                       severity   fires on
=========================  =========  =========================================================
``bias_before_bn``         info       a Linear/Conv bias read only by BatchNorm/InstanceNorm,
                                      which subtracts the mean and cancels it
``dropout_before_bn``      warning    dropout reaching a BatchNorm through linear ops only: the
                                      train/eval variance shift (R10; Li et al. 2019)
``deep_plain_stack``       warning    more than ``plain_depth`` weight layers in a row with no
                                      normalization and no residual connection (S5)
``deep_saturating``        warning    more than ``saturating_depth`` layers in a row feeding
                                      tanh/sigmoid with no normalization (S1)
``deep_post_ln``           warning    at least ``post_ln_sublayers`` residual additions read
                                      only by a LayerNorm: a deep Post-LN Transformer (R13;
                                      Xiong et al. 2020)
``constant_weights``       error      a trainable weight matrix with all entries equal (I1);
                                      zero output layers and zero last layers of residual
                                      branches are deliberate and pass
``init_mismatch``          warning    a weight std off the He/Xavier std of its following
                                      activation by more than the band (I10); info inside a
                                      residual branch
``decay_on_norm_or_bias``  warning    a param group with weight_decay > 0 holding biases, norm
                                      weights, gains, embeddings or positional parameters (R6)
``lstm_forget_gate_bias``  warning    an LSTM whose forget-gate bias averages below
                                      ``forget_bias_min`` (Jozefowicz et al. 2015)
=========================  =========  =========================================================

Without ``example_input`` (and ``graph``) a model built only of ``nn.Sequential`` containers is
read from its module order, which is its forward pass, and the messages say so; for any other
model the rules that need the forward pass are skipped and one ``info`` finding with rule
``"needs_example_input"`` lists them (``deep_post_ln`` then still recognizes
``nn.TransformerEncoderLayer(norm_first=False)`` and ``TransformerBlock(norm_position="post")``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from stabletrain._wrappers import unwrap_model
from stabletrain.diagnostics.lint._context import LintContext, Source
from stabletrain.diagnostics.lint._decay import check_param_groups, decay_on_norm_or_bias
from stabletrain.diagnostics.lint._depth import deep_plain_stack, deep_post_ln, deep_saturating
from stabletrain.diagnostics.lint._norm import bias_before_bn, dropout_before_bn
from stabletrain.diagnostics.lint._static import sequential_graph
from stabletrain.diagnostics.lint._thresholds import LintThresholds
from stabletrain.diagnostics.lint._weights import (
    constant_weights,
    init_mismatch,
    lstm_forget_gate_bias,
)
from stabletrain.findings import SEVERITIES, Finding
from stabletrain.graph import STRUCTURE_ROWS, Graph, trace
from stabletrain.regularization.classify import classify

__all__ = ["LINT_RULES", "LintRule", "LintThresholds", "lint"]

LintRule = Callable[[LintContext], list[Finding]]

_RULES: dict[str, LintRule] = {
    "bias_before_bn": bias_before_bn,
    "dropout_before_bn": dropout_before_bn,
    "deep_plain_stack": deep_plain_stack,
    "deep_saturating": deep_saturating,
    "deep_post_ln": deep_post_ln,
    "constant_weights": constant_weights,
    "init_mismatch": init_mismatch,
    "decay_on_norm_or_bias": decay_on_norm_or_bias,
    "lstm_forget_gate_bias": lstm_forget_gate_bias,
}
LINT_RULES: tuple[str, ...] = tuple(_RULES)
"""The rule names a :class:`Finding` from :func:`lint` carries (plus ``"needs_example_input"``)."""

# rules that read the forward pass and have nothing to go on without a graph
_NEED_GRAPH = (
    "bias_before_bn",
    "dropout_before_bn",
    "deep_plain_stack",
    "deep_saturating",
    "init_mismatch",
)


def _check_graph(graph: Any, model: nn.Module) -> Graph:
    if not isinstance(graph, Graph):
        raise TypeError(
            f"lint: graph must be a stabletrain.graph.Graph (graph=stabletrain.trace(model, x)), "
            f"got {type(graph).__name__}."
        )
    own = {id(m) for m in model.modules()}
    foreign = next(
        (name for name, info in graph.layers.items() if id(info.module) not in own), None
    )
    if foreign is not None:
        raise ValueError(
            f"lint: graph was traced from another model (its layer {foreign!r} is not a module "
            "of this model); pass graph=stabletrain.trace(model, x) of this model."
        )
    return graph


def _mean_square(example_input: Any) -> float | None:
    """E[x²] of a single floating-point input tensor, else None."""
    x = example_input
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel() > 0:
        return float(x.detach().double().square().mean())
    return None


def _skipped(ctx: LintContext) -> Finding:
    return Finding(
        severity="info",
        layer=None,
        metric="skipped_rules",
        value=float(len(_NEED_GRAPH)),
        threshold=0.0,
        message=f"without example_input the forward pass of this {type(ctx.model).__name__} (not "
        "a plain "
        f"nn.Sequential) is unknown, so {', '.join(_NEED_GRAPH)} were not checked.",
        fix="pass an input: stabletrain.diagnostics.lint(model, example_input)",
        rule="needs_example_input",
    )


def lint(
    model: nn.Module,
    example_input: Any = None,
    *,
    graph: Graph | None = None,
    param_groups: Any = None,
    thresholds: LintThresholds | None = None,
) -> list[Finding]:
    """Architecture smells of ``model``, each a :class:`Finding` with the stabletrain fix.

    Args:
        model: the model; it is run once on ``example_input`` (no gradients, buffers and
            train/eval modes restored), never trained.
        example_input: a tensor, a tuple of positional inputs or a dict of keyword inputs.
        graph: a graph already traced from ``model`` (``stabletrain.trace(model, x)``); used
            instead of tracing again, ``example_input`` is then not needed.
        param_groups: an optimizer or its list of param-group dicts, to check what decays.
        thresholds: when the rules fire (:class:`LintThresholds`).

    Returns:
        The findings, errors first, then warnings, then info; in rule order within each.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, or ``graph``, ``param_groups``,
            ``thresholds`` or ``example_input`` is of the wrong type.
        ValueError: the model raised on ``example_input``, ``graph`` comes from another model,
            or no parameter of ``param_groups`` belongs to the model.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(),
        ...                       nn.Dropout(0.2), nn.Linear(16, 16), nn.BatchNorm1d(16))
        >>> [(f.rule, f.layer) for f in lint(model, torch.randn(4, 8))]
        [('dropout_before_bn', '3'), ('bias_before_bn', '0'), ('bias_before_bn', '4')]
        >>> print(lint(model, torch.randn(4, 8))[1].fix)  # doctest: +ELLIPSIS
        build 0 with bias=False (nn.Linear(..., bias=False); ...
    """
    model = unwrap_model(model)
    if not isinstance(model, nn.Module):
        raise TypeError(f"lint: expected an nn.Module, got {type(model).__name__}.")
    if thresholds is None:
        thresholds = LintThresholds()
    elif not isinstance(thresholds, LintThresholds):
        raise TypeError(
            f"lint: thresholds must be a LintThresholds, got {type(thresholds).__name__}; e.g. "
            "thresholds=LintThresholds(plain_depth=30)."
        )
    source: Source
    if graph is not None:
        graph, source = _check_graph(graph, model), "graph"
    elif example_input is not None:
        graph, source = trace(model, example_input, rows=STRUCTURE_ROWS), "trace"
    else:
        graph = sequential_graph(model)
        source = "module order" if graph is not None else "modules"
    groups = check_param_groups(param_groups, model) if param_groups is not None else None
    params = tuple(classify(model, graph))
    ctx = LintContext(model, graph, source, params, thresholds, groups, _mean_square(example_input))
    findings = [finding for rule in _RULES.values() for finding in rule(ctx)]
    if graph is None:
        findings.append(_skipped(ctx))
    return sorted(findings, key=lambda f: -SEVERITIES.index(f.severity))
