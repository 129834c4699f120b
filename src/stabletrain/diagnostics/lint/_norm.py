"""Rules on what sits right before a BatchNorm: a bias it cancels, a dropout it mis-estimates."""

from __future__ import annotations

from torch import nn

from stabletrain.diagnostics.lint._context import LintContext, readers
from stabletrain.findings import Finding
from stabletrain.graph import Op
from stabletrain.graph.ops import DROPOUT_OPS, LINEAR_OPS, op_kind

__all__ = ["bias_before_bn", "dropout_before_bn"]

# normalizations that subtract a per-channel mean, which a per-channel bias only shifts
_MEAN_CANCELLING = ("batch_norm", "instance_norm")
# ops through which dropout's train/eval variance shift travels unchanged in kind: reshapes,
# pooling and linear maps (a weight layer between dropout and BatchNorm passes it on)
_NONLINEAR_LINEAR_OPS = frozenset({"multi_head_attention_forward", "bilinear"})


def bias_before_bn(ctx: LintContext) -> list[Finding]:
    """A Linear/Conv bias whose every reader is a BatchNorm (or InstanceNorm).

    The norm subtracts the per-channel mean, ``BN(Wx + b) = BN(Wx)``: the bias gets no gradient
    that matters and only costs parameters; BatchNorm's own shift β plays its role (Ioffe &
    Szegedy 2015, section 3.2).
    """
    if ctx.graph is None:
        return []
    found = []
    for name, info in ctx.graph.layers.items():
        module = ctx.modules[name]
        bias = getattr(module, "bias", None)
        if name not in ctx.weight_layers or not isinstance(bias, nn.Parameter):
            continue
        if not info.following or not all(
            f.kind == "norm" and f.op in _MEAN_CANCELLING for f in info.following
        ):
            continue
        norm = info.following[0]
        found.append(
            ctx.finding(
                "info",
                name,
                "bias_before_norm",
                float(bias.numel()),
                0.0,
                f"{name} ({type(module).__name__}) has a bias that the {norm.op} after it "
                f"({norm.module or 'functional'}) cancels by subtracting the batch mean.",
                f"build {name} with bias=False (nn.{type(module).__name__}(..., bias=False); "
                'stabletrain.models.mlp(..., norm="batch", bias=False)); the norm\'s shift β '
                "replaces it",
                "bias_before_bn",
            )
        )
    return found


def _dropout_p(ctx: LintContext, op: Op) -> float | None:
    """The drop probability of a dropout op run by a dropout module; None when functional."""
    module = ctx.modules.get(op.module)
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return float(module.p)
    return None


def _linear_through(op: Op, node: int) -> bool:
    """Whether dropout's variance shift passes through ``op`` to what reads its output."""
    kind = op_kind(op.name)
    if kind == "transparent":
        return True
    if kind in ("add", "mul") and set(op.inputs) == {node}:  # a shift or scale by a parameter
        return True
    return op.name in LINEAR_OPS and bool(op.params) and op.name not in _NONLINEAR_LINEAR_OPS


def dropout_before_bn(ctx: LintContext) -> list[Finding]:
    """A dropout whose output reaches a BatchNorm through linear operations only.

    Dropout scales kept units by ``1/(1−p)`` in training, so the variance BatchNorm sees in
    training differs from the one at evaluation, where dropout is off; BatchNorm normalizes
    with the training estimate and the shift compounds through the network (claim R10; Li et
    al. 2019, "Understanding the Disharmony between Dropout and Batch Normalization by Variance
    Shift"). A weight layer in between is linear and passes the shift on.
    """
    if ctx.graph is None:
        return []
    found: dict[tuple[str, str], Finding] = {}
    for op in ctx.graph.recording.ops:
        if op.name not in DROPOUT_OPS or not op.outputs or _dropout_p(ctx, op) == 0.0:
            continue
        for reader in readers(ctx, op.outputs[0], _linear_through):
            if reader is None or reader.name != "batch_norm":
                continue
            key = (op.module, reader.module)
            p = _dropout_p(ctx, op)
            found.setdefault(
                key,
                ctx.finding(
                    "warning",
                    op.module or None,
                    "dropout_p",
                    p if p is not None else float("nan"),
                    0.0,
                    f"dropout at {op.module or '(root)'} feeds the BatchNorm "
                    f"{reader.module or '(functional)'} through linear operations only, so the "
                    "variance BatchNorm estimates in training shifts at evaluation (Li et al. "
                    "2019).",
                    "move the dropout after the last BatchNorm, e.g. only before the classifier "
                    "(stabletrain.models.cnn(..., dropout=p) puts it there), or remove it: "
                    "BatchNorm already regularizes",
                    "dropout_before_bn",
                ),
            )
    return list(found.values())
