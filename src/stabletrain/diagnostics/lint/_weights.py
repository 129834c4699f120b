"""Rules on the initial values: constant weights, an init scale wrong for the activation, an
LSTM forget gate that starts at 0."""

from __future__ import annotations

import math

from torch import nn

from stabletrain.diagnostics.lint._context import LintContext, readers, through_reshapes
from stabletrain.findings import Finding
from stabletrain.graph import Op, is_norm
from stabletrain.graph.ops import NORM_OPS, op_kind
from stabletrain.init.fans import layer_fans
from stabletrain.init.policy import following_of
from stabletrain.init.policy.rules import CATEGORIES
from stabletrain.regularization.classify import ParamInfo

__all__ = ["constant_weights", "init_mismatch", "lstm_forget_gate_bias"]

_FIX_INIT = "stabletrain.auto_init(model, x)"
_CHECKED = CATEGORIES["relu_family"] | CATEGORIES["smooth"] | CATEGORIES["saturating"]
# their init is per gate / per block, or not a variance-preserving map of the layer's input
_NOT_CHECKED = (nn.RNNBase, nn.RNNCellBase, nn.MultiheadAttention, nn.Embedding, nn.EmbeddingBag)


def _deliberately_zero(ctx: LintContext) -> set[str]:
    """Layers zeroed on purpose: last layers of residual branches (Fixup, ``residual="zero"``,
    Goyal et al. 2017) and output layers (a zero head starts from uniform predictions)."""
    if ctx.graph is None:
        return set()
    names = set()
    for branch in ctx.graph.residuals:
        last = branch.last_layer
        if last is not None:
            names.add(last)
            if isinstance(ctx.modules.get(last), nn.MultiheadAttention):
                names.add(f"{last}.out_proj")  # attention ends its branch with out_proj
    for info in ctx.params:
        use, layer = ctx.graph.params.get(info.name), ctx.graph.layers.get(info.module)
        seen = use.following if use else (layer.following if layer else None)
        if following_of(seen)[0] == "output":
            names.add(info.module)
    return names


def constant_weights(ctx: LintContext) -> list[Finding]:
    """A trainable weight matrix whose entries are all equal (zero included).

    Every unit of the layer then computes the same function of its input; when the units also
    get the same gradient (all layers constant, or a zero layer before a ReLU, whose gradient
    at 0 is 0) nothing ever tells them apart: the symmetry problem (claim I1). Normalization
    weights (1), biases (0), gains, embeddings and positional parameters are not weight
    matrices and are not checked; a zero last layer of a residual branch or a zero output layer
    is deliberate and not flagged.
    """
    zero_ok = _deliberately_zero(ctx)
    found = []
    for info in ctx.params:
        w = info.param.detach()
        if info.category != "weight" or not info.trainable or w.numel() < 2:
            continue
        if bool((w.amax() != w.amin()).item()):
            continue
        value = float(w.reshape(-1)[0])
        if value == 0.0 and info.module in zero_ok:
            continue
        unsure = value == 0.0 and ctx.graph is None
        what = "zero" if value == 0.0 else f"the constant {value:g}"
        found.append(
            ctx.finding(
                "warning" if unsure else "error",
                info.module,
                "weight_spread",
                0.0,
                0.0,
                f"every entry of {info.name} {tuple(w.shape)} is {what}, so its units start "
                "identical, the symmetry that random init exists to break"
                + (
                    "; without example_input a deliberately zeroed output layer or residual "
                    "branch cannot be told apart"
                    if unsure
                    else ""
                )
                + ".",
                f"{_FIX_INIT} draws random weights scaled for the activation that follows",
                "constant_weights",
            )
        )
    return found


def _input_layers(ctx: LintContext) -> set[str]:
    """Layers that read the (single) model input directly, through reshapes only."""
    if ctx.graph is None or len(ctx.graph.recording.input_nodes) != 1:
        return set()
    node = ctx.graph.recording.input_nodes[0]
    found = readers(ctx, node, through_reshapes)
    return {op.params[0].rpartition(".")[0] for op in found if op is not None and op.params}


# a scale mismatch followed within this many weight layers by a normalization on every path is
# absorbed there: it cannot compound with depth (a conv stem before a LayerNorm, an SE gate, an
# MLM head's dense -> GELU -> LayerNorm)
_ABSORB_WITHIN = 2
_ABSORB_VISITS = 4096


def _absorbed(ctx: LintContext, layer: str) -> bool:
    """Whether every path from ``layer``'s output reaches a normalization within
    :data:`_ABSORB_WITHIN` further weight layers (never the model's output first)."""
    if ctx.graph is None or layer not in ctx.graph.layers:
        return False
    index, outputs = ctx.index, set(ctx.graph.recording.output_nodes)
    norms = {n for n, m in ctx.modules.items() if is_norm(m)}
    calls = [c for c in ctx.graph.recording.calls if c.module == layer]
    stack = [(n, 0) for c in calls for n in c.outputs[:1]]
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in outputs or len(seen) > _ABSORB_VISITS:
            return False
        consumers = index.consumers.get(node, [])
        if not consumers:
            return False
        for op in consumers:
            if op.name in NORM_OPS or op.module in norms:
                continue  # this path is normalized
            crossed = depth + int(bool(op.params) and op.module != layer)
            if crossed > _ABSORB_WITHIN:
                return False
            stack.extend((out, crossed) for out in op.outputs)
    return True


def _last_hidden(ctx: LintContext, layer: str) -> bool:
    """The layer's activation is the model's output (a pooler): its scale reaches the output
    once and cannot compound with depth."""
    if ctx.graph is None or layer not in ctx.graph.layers:
        return False
    calls = [c for c in ctx.graph.recording.calls if c.module == layer and c.outputs]

    def through(op: Op, node: int) -> bool:
        return op_kind(op.name) in ("transparent", "activation")

    found = [r for c in calls for r in readers(ctx, c.outputs[0], through)]
    return bool(found) and all(r is None for r in found)


def _mismatch(ctx: LintContext, info: ParamInfo, input_layers: set[str]) -> Finding | None:
    """The init_mismatch finding for one weight, if its std is off the band."""
    if ctx.graph is None:
        return None
    layer, use = ctx.graph.layers.get(info.module), ctx.graph.params.get(info.name)
    module = ctx.modules[info.module]
    seen = use.following if use else (layer.following if layer else None)
    w = info.param.detach()
    if not seen or isinstance(module, _NOT_CHECKED) or w.dim() < 2 or w.numel() < 2:
        return None
    if any(f.kind == "norm" for f in seen):
        return None  # a normalization makes the scale irrelevant
    activation, act_gain, _ = following_of(seen)
    std = float(w.float().std(correction=0))
    if activation not in _CHECKED or act_gain is None or std == 0.0:
        return None
    fans = layer_fans(module, info.name.rpartition(".")[2])
    if activation in CATEGORIES["saturating"]:
        scheme, expected = "Xavier", math.sqrt(2.0 / (fans.fan_in + fans.fan_out))
    else:
        scheme, expected = f"He (gain {act_gain:.3g})", act_gain / math.sqrt(fans.fan_in)
    scaled = ""
    if info.module in input_layers and ctx.input_ms:  # Var(z) = fan_in·Var(w)·E[x²]
        expected /= math.sqrt(ctx.input_ms)
        scaled = f" and the input's E[x²] = {ctx.input_ms:.3g}"
    ratio = std / expected
    t = ctx.thresholds
    if t.init_ratio_low <= ratio <= t.init_ratio_high or _absorbed(ctx, info.module):
        return None
    in_branch = ctx.in_residual(info.module)
    return ctx.finding(
        "info" if in_branch or _last_hidden(ctx, info.module) else "warning",
        info.module,
        "weight_std_ratio",
        ratio,
        t.init_ratio_low if ratio < t.init_ratio_low else t.init_ratio_high,
        f"{info.name} has std {std:.3g}, {ratio:.2f}× the {scheme} std {expected:.3g} for the "
        f"{activation} after it (fan_in {fans.fan_in}{scaled}), so the signal "
        f"{'shrinks' if ratio < 1 else 'grows'} by about that factor at this layer"
        + (
            "; inside a residual branch a small init can be deliberate (GPT-2's N(0, 0.02))"
            if in_branch
            else ""
        )
        + ".",
        f"{_FIX_INIT} (He for the ReLU family and smooth activations, Xavier for tanh/sigmoid)",
        "init_mismatch",
    )


def init_mismatch(ctx: LintContext) -> list[Finding]:
    """A weight whose std is off the std its following activation's scheme asks for.

    Expected std (claim I10; He et al. 2015; Glorot & Bengio 2010), with the fans of
    :func:`stabletrain.init.layer_fans` and the exact gains of :func:`stabletrain.init.gain`:

    - ReLU family and smooth activations (GELU, SiLU, ...): He, ``gain(f) / √fan_in``;
    - tanh, sigmoid and other saturating ones: Xavier, ``√(2 / (fan_in + fan_out))``.

    Both assume inputs of unit second moment; a layer that reads a single floating-point
    ``example_input`` directly expects ``std / √E[x²]`` instead (``Var(z) = fan_in · Var(w) ·
    E[x²]``), as ``auto_init`` calibrates it. Only layers followed by an activation with no
    normalization in between are checked (a norm rescales whatever comes in); recurrent,
    attention and embedding weights are not, and neither is a layer whose output reaches a
    normalization on every path within two further weight layers: the norm rescales the signal
    there, so the mismatch cannot compound with depth (the deliberate ``N(0, 0.02)`` of
    Transformer families, a conv stem before a LayerNorm, a squeeze-excitation gate).
    PyTorch's default ``U(±1/√fan_in)`` has ``Var = 1/(3 fan_in)``, six times below He's
    ``2/fan_in`` before a ReLU: a std ratio of ``1/√6 ≈ 0.41``.
    """
    if ctx.graph is None:
        return []
    input_layers = _input_layers(ctx)
    found = []
    for infos in ctx.weight_layers.values():
        for info in infos:
            finding = _mismatch(ctx, info, input_layers)
            if finding is not None:
                found.append(finding)
    return found


def lstm_forget_gate_bias(ctx: LintContext) -> list[Finding]:
    """An LSTM whose forget-gate bias starts near 0 (PyTorch's default draws it around 0).

    With ``b_f ≈ 0`` the forget gate starts at ``σ(0) = 1/2`` and the cell halves its memory
    every step; ``b_f = 1`` lets gradients flow over long spans from the start (Jozefowicz et
    al. 2015, "An Empirical Exploration of Recurrent Network Architectures"; Gers et al. 2000).
    The forget gate is the second of the four gate blocks ``(i, f, g, o)``; its bias is
    ``b_ih + b_hh`` over that block.
    """
    fix = (
        f"{_FIX_INIT} sets the forget-gate bias to 1 (another value: "
        "policy=stabletrain.default_rules(forget_bias=...))"
    )
    limit = ctx.thresholds.forget_bias_min
    found = []
    for name, module in ctx.modules.items():
        if not isinstance(module, nn.LSTM | nn.LSTMCell):
            continue
        hidden = module.hidden_size
        params = dict(module.named_parameters(recurse=False))
        means = []
        for key, b_ih in params.items():
            if key.startswith("bias_ih"):
                forget = b_ih.detach()[hidden : 2 * hidden]
                b_hh = params.get(key.replace("bias_ih", "bias_hh"))
                if b_hh is not None:
                    forget = forget + b_hh.detach()[hidden : 2 * hidden]
                means.append((float(forget.mean()), key))
        value, key = min(means) if means else (0.0, "")  # bias=False: fixed at 0
        if value >= limit:
            continue
        sub = key.removeprefix("bias_ih").lstrip("_")
        where = f" (layer {sub})" if sub else ""
        found.append(
            ctx.finding(
                "warning",
                name,
                "forget_bias",
                value,
                limit,
                f"the LSTM {name or '(root)'} starts with a forget-gate bias of {value:.3g}"
                f"{where}, so the cell forgets half its state every step at init "
                "(Jozefowicz et al. 2015 set it to 1).",
                fix if means else "build the LSTM with bias=True, then " + fix,
                "lstm_forget_gate_bias",
            )
        )
    return found
