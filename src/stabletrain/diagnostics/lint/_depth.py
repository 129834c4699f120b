"""Rules on depth: long plain chains, deep saturating stacks, deep Post-LN Transformers."""

from __future__ import annotations

from torch import nn

from stabletrain.diagnostics.lint._context import (
    LintContext,
    longest_run,
    readers,
    through_reshapes,
)
from stabletrain.findings import Finding
from stabletrain.graph import LayerInfo
from stabletrain.init.looks_linear import relu_chains
from stabletrain.init.policy import following_of
from stabletrain.init.policy.rules import CATEGORIES
from stabletrain.models import TransformerBlock

__all__ = ["deep_plain_stack", "deep_post_ln", "deep_saturating"]

_POST_NORMS = ("layer_norm", "rms_norm")


def _plain(ctx: LintContext, info: LayerInfo) -> bool | None:
    """A weight layer with no norm after it and no residual around it; norms break chains."""
    if ctx.is_norm(info.name):
        return False
    if info.name not in ctx.weight_layers:
        return None
    return not info.norm_follows and not ctx.in_residual(info.name)


def deep_plain_stack(ctx: LintContext) -> list[Finding]:
    """More than ``plain_depth`` weight layers in a row with neither normalization nor skips.

    Without either, the signal and its gradient pass through every layer's Jacobian in turn;
    gradients of deep plain stacks shatter and vanish, and networks deeper than about 20 layers
    strongly need residual connections (claim S5; He et al. 2016).
    """
    limit = ctx.thresholds.plain_depth
    run = longest_run(ctx.calls(), lambda info: _plain(ctx, info))
    if ctx.graph is None or len(run) <= limit:
        return []
    fix = (
        "add residual connections and normalization "
        '(stabletrain.models.mlp(..., residual=True, norm="layer"))'
    )
    chains = relu_chains(ctx.graph, ctx.model)
    if sum(name in chains for name in run) >= len(run) - 1:
        fix += (
            ", or keep the plain ReLU chain trainable with looks-linear init: "
            "stabletrain.auto_init(model, x, looks_linear=True)"
        )
    return [
        ctx.finding(
            "warning",
            run[0],
            "plain_depth",
            float(len(run)),
            float(limit),
            f"{len(run)} weight layers in a row, {run[0]} to {run[-1]}, have neither "
            "normalization nor residual connections, so gradients vanish or shatter with depth.",
            fix,
            "deep_plain_stack",
        )
    ]


def _saturating(ctx: LintContext, info: LayerInfo) -> bool | None:
    """A weight layer followed by a saturating activation, with no norm and no skip."""
    if ctx.is_norm(info.name):
        return False
    if info.name not in ctx.weight_layers:
        return None
    activation = following_of(info.following)[0]
    return (
        activation in CATEGORIES["saturating"]
        and not info.norm_follows
        and not ctx.in_residual(info.name)
    )


def deep_saturating(ctx: LintContext) -> list[Finding]:
    """More than ``saturating_depth`` layers in a row followed by tanh/sigmoid, unnormalized.

    Backpropagation multiplies one factor ``f'(z) ≤ 1`` per layer (sigmoid's is at most 1/4),
    so gradients vanish geometrically with depth (claim S1; Glorot & Bengio 2010).
    """
    limit = ctx.thresholds.saturating_depth
    run = longest_run(ctx.calls(), lambda info: _saturating(ctx, info))
    if ctx.graph is None or len(run) <= limit:
        return []
    acts = sorted({following_of(ctx.graph.layers[n].following)[0] for n in run})
    return [
        ctx.finding(
            "warning",
            run[0],
            "saturating_depth",
            float(len(run)),
            float(limit),
            f"{len(run)} layers in a row, {run[0]} to {run[-1]}, feed {'/'.join(acts)} with no "
            "normalization, so backpropagation multiplies a factor below 1 per layer and the "
            "first layers' gradients vanish.",
            "switch to a ReLU-family activation with He init (stabletrain.models.mlp(..., "
            'activation="relu"), then stabletrain.auto_init(model, x)), or add normalization '
            '(stabletrain.models.mlp(..., norm="layer"))',
            "deep_saturating",
        )
    ]


def _post_ln_norms(ctx: LintContext) -> list[str]:
    """The norm module after each residual addition whose only reader is a LayerNorm/RMSNorm."""
    if ctx.graph is None:
        return []
    norms = []
    for branch in ctx.graph.residuals:
        add = ctx.graph.recording.ops[branch.add_op]
        found = readers(ctx, add.outputs[0], through_reshapes) if add.outputs else []
        if found and all(op is not None and op.name in _POST_NORMS for op in found):
            first = found[0]
            norms.append(first.module if first is not None else "")
    return norms


def _post_ln_by_type(ctx: LintContext) -> list[str]:
    """Post-LN sublayers known from module types alone (torch's and stabletrain's blocks)."""
    norms = []
    for name, module in ctx.modules.items():
        if isinstance(module, nn.TransformerEncoderLayer | nn.TransformerDecoderLayer):
            if not module.norm_first:
                subs = 3 if isinstance(module, nn.TransformerDecoderLayer) else 2
                norms += [f"{name}.norm{i}" for i in range(1, subs + 1)]
        elif isinstance(module, TransformerBlock) and module.norm_position == "post":
            norms += [f"{name}.ln1", f"{name}.ln2"]
    return norms


def deep_post_ln(ctx: LintContext) -> list[Finding]:
    """At least ``post_ln_sublayers`` residual additions normalized after the add (Post-LN).

    Post-LN, ``x = LN(x + F(x))``, puts a LayerNorm on the residual path itself: at init the
    gradients of the last layers are large and the stack needs learning-rate warmup, while
    Pre-LN, ``x = x + F(LN(x))``, leaves the path an identity and trains without it (claim R13;
    Xiong et al. 2020). Detected structurally: a residual addition whose only reader is a
    LayerNorm (Hugging Face BERT's ``LayerNorm(hidden + input)`` included); without a graph,
    from ``nn.TransformerEncoderLayer(norm_first=False)`` and friends.
    """
    norms = _post_ln_norms(ctx) if ctx.graph is not None else _post_ln_by_type(ctx)
    limit = ctx.thresholds.post_ln_sublayers
    if len(norms) < limit:
        return []
    how = "" if ctx.graph is not None else " (from module types: no example_input)"
    return [
        ctx.finding(
            "warning",
            norms[0] or None,
            "post_ln_sublayers",
            float(len(norms)),
            float(limit),
            f"{len(norms)} residual additions (about {len(norms) // 2} Transformer blocks) are "
            f"followed by a LayerNorm on the residual path, first at {norms[0] or '(functional)'}"
            f" (Post-LN){how}, which needs learning-rate warmup to train this deep.",
            'use Pre-LN (stabletrain.models.transformer(..., norm_position="pre")), or warm the '
            "learning rate up, or start every residual branch at zero with "
            'stabletrain.auto_init(model, x, residual="zero")',
            "deep_post_ln",
        )
    ]
