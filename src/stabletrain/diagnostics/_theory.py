"""What initialization theory predicts for each layer's output and gradient, on the recorded graph.

Second moments are propagated op by op through the forward pass that was recorded, then back
(He et al. 2015, eqs. 7 and 13; claim I5), assuming independent, zero-mean weights and
pre-activations ``z ~ N(0, q)``:

=============================  ===================================  =========================
operation                      forward ``E[y²]``                    backward ``E[g_x²]``
=============================  ===================================  =========================
Linear/ConvNd/Conv1D (W, b)    ``fan_in·Var(w)·E[x²] + E[b²]``      ``fan_out·Var(w)·E[g²]``
Embedding                      ``E[w²]`` (one row per output)       (indices: none)
norm, batch/sample statistics  ``mean γ² + E[β²]``                  ``mean γ²·σ⁻²·(n−2)/n·E[g²]``
BatchNorm, running statistics  ``mean γ²(E[x²]+m²)/(v+ε) + E[β²]``  ``mean γ²/(v+ε) · E[g²]``
activation ``f``               ``E[f(z)²]``, ``z ~ N(0, E[x²])``    ``E[f'(z)²] · E[g²]``
dropout ``p`` (training)       ``E[x²]/(1−p)``                      ``E[g²]/(1−p)``
``a + b`` (independent)        ``E[a²] + E[b²]``                    ``E[g²]`` each (broadcast)
view, reshape, slice, cat      unchanged (a part of the tensor)     the part's, by size
=============================  ===================================  =========================

``σ⁻²`` is the mean of what the normalization divided by (saved by its backward node;
``1/E[x²]`` where not available); its backward pass removes the gradient's components along the
ones vector and the normalized output, 2 of the ``n`` values of each group (a BatchNorm on a
batch of 8 1x1 maps keeps 3/4 of the gradient's variance). Convolutions' fans are corrected
for the taps that read zero padding, and backward for the stride
(:func:`~stabletrain.diagnostics._layers.conv_coverage`), transposed convolutions' for the
taps each output receives.

``E[f(z)²]`` and ``E[f'(z)²]`` come from :func:`stabletrain.init.gain` (forward
``1/gain²``, backward ``1/gain("...", "backward")²``): in closed form for the positively
homogeneous activations (linear, ReLU, leaky ReLU), where they do not depend on ``q``; for the
others, ``gain`` of ``u -> f(sqrt(q)·u)`` at the ``q`` in use, since a saturating activation's
moments change with the scale of its input (``E[tanh(z)²] ≈ q`` for small ``q``, ``0.394`` at
``q = 1``). Fans come from :func:`stabletrain.init.layer_fans`.

Where theory has no answer (attention, pooling, recurrent layers, products, unknown ops) the
chain restarts: forward, at the next layer, from its input's measured second moment; backward,
at the layer output whose gradient is unknown, from the measured gradient (that layer then has
no backward prediction: it is where the chain starts, as the last layer is). Each prediction is
of the layer's own output; the ratio measured/predicted says where reality leaves theory.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.diagnostics._layers import LayerConstants, LayerSpec, conv_coverage
from stabletrain.graph import Call, Op, Recording
from stabletrain.graph.ops import (
    ACTIVATION_OPS,
    CONCAT_OPS,
    DROPOUT_OPS,
    SELECTION_OPS,
    VALUE_PRESERVING_OPS,
)
from stabletrain.init import gain
from stabletrain.init.gain import quick_gelu

_SAME = VALUE_PRESERVING_OPS
_PART = SELECTION_OPS | {"select"}
_CONCAT = CONCAT_OPS
_ADD = frozenset({"add", "sub"})
_HOMOGENEOUS = frozenset({"linear", "relu", "leaky_relu"})
_RRELU_SLOPE = (1 / 8 + 1 / 3) / 2  # the mean slope RReLU uses in evaluation
_PRELU_SLOPE = 0.25  # PReLU's initial slope


@functools.cache
def _scaled_moments(
    name: str, params: tuple[tuple[str, float], ...], q: float
) -> tuple[float, float]:
    fn = _function(name, dict(params))
    root = math.sqrt(q)

    def scaled(u: torch.Tensor) -> torch.Tensor:
        return fn(root * u)

    forward = 1.0 / gain(scaled) ** 2
    backward = 1.0 / (q * gain(scaled, "backward") ** 2)
    return forward, backward


def _function(name: str, params: dict[str, float]) -> Callable[[torch.Tensor], torch.Tensor]:
    if name == "gelu_tanh":
        return functools.partial(F.gelu, approximate="tanh")
    if name == "quick_gelu":
        return quick_gelu
    fn: Callable[..., torch.Tensor] = getattr(F, name)
    return functools.partial(fn, **params) if params else fn


def activation_moments(name: str, params: Mapping[str, float], q: float) -> tuple[float, float]:
    """``(E[f(z)²], E[f'(z)²])`` for ``z ~ N(0, q)`` and activation ``name`` (a name of
    :data:`stabletrain.init.ACTIVATIONS`).

    Example:
        >>> [round(m, 6) for m in activation_moments("relu", {}, 3.0)]   # q/2 and 1/2
        [1.5, 0.5]
        >>> fwd, bwd = activation_moments("tanh", {}, 1e-4)   # linear regime: E[tanh(z)^2] ~ q
        >>> round(fwd / 1e-4, 3), round(bwd, 3)
        (1.0, 1.0)
    """
    if not math.isfinite(q) or q < 0:
        return math.nan, math.nan
    key = tuple(sorted(params.items()))
    if name in _HOMOGENEOUS:
        forward = gain(name, "forward", convention="exact", **params)
        backward = gain(name, "backward", convention="exact", **params)
        return q / forward**2, 1.0 / backward**2
    q = max(float(f"{q:.4g}"), 1e-30)  # 4 significant digits: layers share evaluations
    return _scaled_moments(name, key, q)


def _activation(op: Op) -> tuple[str, dict[str, float]]:
    name, params = ACTIVATION_OPS[op.name][0], dict(op.act_params)
    if op.name == "prelu":
        params = {"negative_slope": _PRELU_SLOPE}
    elif op.name == "rrelu":
        params = {"negative_slope": _RRELU_SLOPE}
    return name, params


@dataclass
class Predictions:
    """Per layer: predicted output second moment and mean, gradient second moment."""

    out_sq: dict[str, float] = field(default_factory=dict)
    out_mean: dict[str, float] = field(default_factory=dict)
    grad_sq: dict[str, float] = field(default_factory=dict)
    # forward chain restarted from the measured input (not a model input)
    restarted: list[str] = field(default_factory=list)
    # backward chain restarted from the measured gradient (not at a model output)
    anchored: list[str] = field(default_factory=list)

    def out_std(self, layer: str) -> float | None:
        """The predicted standard deviation of the layer's output, if any."""
        q = self.out_sq.get(layer)
        if q is None or not math.isfinite(q):
            return None
        return math.sqrt(max(q - self.out_mean.get(layer, 0.0) ** 2, 0.0))

    def grad_std(self, layer: str) -> float | None:
        """The predicted standard deviation of the gradient at the layer's output, if any."""
        g = self.grad_sq.get(layer)
        return None if g is None or not math.isfinite(g) else math.sqrt(g)


@dataclass
class Inputs:
    """What the propagation reads besides the recording."""

    specs: Mapping[str, LayerSpec]
    constants: Mapping[str, LayerConstants]
    measured_sq: Mapping[int, float]  # node -> measured E[x²]
    measured_grad_sq: Mapping[int, float]  # layer output node -> measured E[g²]
    numel: Mapping[int, int]
    modules: Mapping[str, nn.Module]
    shapes: Mapping[int, tuple[int, ...]]  # layer input node -> its shape
    # normalization output node -> mean(1/σ²) it divided by, times (n−2)/n for its n values
    norm_inv_sq: Mapping[int, float]


def _dropout_scale(op: Op, modules: Mapping[str, nn.Module]) -> float | None:
    """``1/(1−p)`` for an inverted dropout in training, 1 in evaluation or for alpha dropout
    (mean and variance preserving); None when the rate is unknown (functional dropout)."""
    module = modules.get(op.module)
    if not isinstance(module, nn.modules.dropout._DropoutNd):
        return None
    if not module.training or isinstance(module, nn.AlphaDropout | nn.FeatureAlphaDropout):
        return 1.0
    return 1.0 / (1.0 - module.p) if module.p < 1 else None


class _Propagation:
    def __init__(self, rec: Recording, inputs: Inputs) -> None:
        self.rec = rec
        self.inp = inputs
        self.q: dict[int, float] = {}
        self.ending: dict[int, list[Call]] = defaultdict(list)
        for call in rec.calls:
            self.ending[call.last_op].append(call)
        self.gate: dict[int, int] = {}  # x * sigmoid(x): product node -> x
        self.gate_sigmoids: set[int] = set()
        self.restarts: set[str] = set()  # backward chain restarted (not at a model output)
        self.result = Predictions()

    def known(self, call: Call) -> bool:
        spec = self.inp.specs.get(call.module)
        return spec is not None and spec.kind != "other" and bool(call.outputs)

    def coverage(self, call: Call) -> tuple[float, float]:
        shape = self.inp.shapes.get(call.inputs[0]) if call.inputs else None
        module = self.inp.modules.get(call.module)
        if shape is None or module is None:
            return 1.0, 1.0
        return conv_coverage(module, shape)

    def q_any(self, node: int) -> float | None:
        q = self.q.get(node)
        return q if q is not None else self.inp.measured_sq.get(node)

    # -- forward ---------------------------------------------------------------------------
    def forward(self) -> None:
        sums: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for i, op in enumerate(self.rec.ops):
            for call in self.ending.get(i, ()):
                self.forward_call(call, sums)
            self.forward_op(op)
        for call in self.ending.get(len(self.rec.ops), ()):
            self.forward_call(call, sums)
        for layer, parts in sums.items():
            total = sum(n for _, n in parts)
            self.result.out_sq[layer] = sum(q * n for q, n in parts) / max(total, 1)

    def forward_call(self, call: Call, sums: dict[str, list[tuple[float, int]]]) -> None:
        if not self.known(call):
            return
        spec, c = self.inp.specs[call.module], self.inp.constants[call.module]
        x = call.inputs[0] if call.inputs else None
        q_in = None if x is None else self.q.get(x)
        needs_input = spec.kind == "linear" or (spec.kind == "norm" and c.norm_scale != 0)
        if q_in is None and x is not None and needs_input:
            q_in = self.inp.measured_sq.get(x)
            if call.module not in self.result.restarted and x not in self.rec.input_nodes:
                self.result.restarted.append(call.module)
        if spec.kind == "embedding":
            q_out: float | None = c.w_sq
            self.result.out_mean[call.module] = c.w_mean
        elif spec.kind == "norm":
            q_out = c.norm_shift + c.b_sq
            if c.norm_scale != 0:
                q_out = None if q_in is None else q_out + c.norm_scale * q_in
            self.result.out_mean[call.module] = c.b_mean
        else:
            fans = spec.fans
            q_out = None
            if q_in is not None and fans is not None:
                cover = self.coverage(call)[0]
                q_out = fans.fan_in * cover * c.w_var * q_in + c.b_sq
            self.result.out_mean[call.module] = c.b_mean
        out = call.outputs[0]
        if q_out is None or not math.isfinite(q_out):
            self.q.pop(out, None)
            return
        self.q[out] = q_out
        sums[call.module].append((q_out, self.inp.numel.get(out, 1)))

    def forward_op(self, op: Op) -> None:
        q_out = self.forward_value(op)
        for node in op.outputs:
            if q_out is None:
                self.q.pop(node, None)
            else:
                self.q[node] = q_out

    def forward_value(self, op: Op) -> float | None:
        ins = [self.q.get(n) for n in op.inputs]
        first = ins[0] if ins else None
        name = op.name
        if op.params:
            return None
        if name in _SAME or name in _PART:
            return first
        if name in _CONCAT:
            if not ins or any(q is None for q in ins):
                return None
            sizes = [self.inp.numel.get(n, 1) for n in op.inputs]
            return sum(q * n for q, n in zip(ins, sizes, strict=True) if q is not None) / sum(sizes)
        if name in ACTIVATION_OPS:
            if name == "sigmoid" and op.inputs:
                self.gate.setdefault(op.outputs[0], op.inputs[0])
            return None if first is None else activation_moments(*_activation(op), first)[0]
        if name == "mul" and len(op.inputs) == 2:
            a, b = op.inputs
            x = a if self.gate.get(b) == a else b if self.gate.get(a) == b else None
            if x is None:
                return None
            self.gate_sigmoids.add(b if x == a else a)
            self.gate[op.outputs[0]] = -1 - x  # marks the product as x's SiLU
            q = self.q.get(x)
            return None if q is None else activation_moments("silu", {}, q)[0]
        if name in DROPOUT_OPS:
            scale = _dropout_scale(op, self.inp.modules)
            return None if first is None or scale is None else first * scale
        if name in _ADD and len(op.inputs) == 2 and op.inputs[0] != op.inputs[1]:
            if ins[0] is None or ins[1] is None:
                return None
            return ins[0] + ins[1]
        return None

    # -- backward --------------------------------------------------------------------------
    def backward(self) -> None:
        self.g: dict[int, float] = defaultdict(float)
        self.poisoned: set[int] = set(self.rec.output_nodes)
        sums: dict[str, list[tuple[float, int]]] = defaultdict(list)
        anchored: set[str] = set()
        ops = self.rec.ops
        skip_from = len(ops) + 1  # ops from here on, inside a layer handled whole, are skipped

        def end_of(position: int) -> None:
            nonlocal skip_from
            for call in reversed(self.ending.get(position, ())):
                if not self.known(call) or call.first_op >= skip_from:
                    continue  # opaque (its ops are propagated) or inside a layer handled whole
                self.backward_call(call, sums, anchored)
                skip_from = call.first_op

        end_of(len(ops))
        for i in range(len(ops) - 1, -1, -1):
            if i < skip_from:
                self.backward_op(ops[i])
            end_of(i)
        for layer, parts in sums.items():
            if layer in anchored:
                continue
            total = sum(n for _, n in parts)
            self.result.grad_sq[layer] = sum(g * n for g, n in parts) / max(total, 1)
        self.result.anchored = [n for n in self.inp.specs if n in self.restarts]

    def backward_call(
        self, call: Call, sums: dict[str, list[tuple[float, int]]], anchored: set[str]
    ) -> None:
        out = call.outputs[0]
        g_out: float | None = self.g.get(out)
        if out in self.poisoned or g_out is None:
            anchored.add(call.module)
            if out not in self.rec.output_nodes:
                self.restarts.add(call.module)
            g_out = self.inp.measured_grad_sq.get(out)
        else:
            sums[call.module].append((g_out, self.inp.numel.get(out, 1)))
        spec, c = self.inp.specs[call.module], self.inp.constants[call.module]
        if spec.kind == "embedding" or not call.inputs:
            return
        x = call.inputs[0]
        if g_out is None:
            self.poisoned.add(x)
            return
        if spec.kind == "norm":
            inv_sq = self.inp.norm_inv_sq.get(out)
            if c.norm_scale != 0:
                factor: float | None = c.norm_scale
            elif inv_sq is not None:
                factor = c.norm_shift * inv_sq
            else:
                q_in = self.q_any(x)
                factor = None if not q_in else c.norm_shift / q_in
        else:
            fans = spec.fans
            factor = None if fans is None else fans.fan_out * self.coverage(call)[1] * c.w_var
        self.add(x, None if factor is None else factor * g_out)

    def add(self, node: int, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            self.poisoned.add(node)
        else:
            self.g[node] += value

    def backward_op(self, op: Op) -> None:
        outs = op.outputs
        if any(n in self.poisoned for n in outs):
            for n in op.inputs:
                self.poisoned.add(n)
            return
        g_outs = [self.g.get(n, 0.0) for n in outs]
        g_out = g_outs[0] if g_outs else 0.0
        name = op.name
        if not op.inputs:
            return
        x = op.inputs[0]
        if op.params:
            for n in op.inputs:
                self.poisoned.add(n)
        elif name in _SAME:
            self.add(x, g_out)
        elif name in _PART:
            n_in = self.inp.numel.get(x, 1)
            part = sum(g * self.inp.numel.get(n, n_in) for g, n in zip(g_outs, outs, strict=True))
            self.add(x, part / max(n_in, 1))
        elif name in _CONCAT:
            for n in op.inputs:
                self.add(n, g_out)
        elif name in ACTIVATION_OPS:
            if outs and outs[0] in self.gate_sigmoids:
                return  # the gate of x * sigmoid(x): its product carries the gradient
            q_in = self.q_any(x)
            self.add(
                x, None if q_in is None else activation_moments(*_activation(op), q_in)[1] * g_out
            )
        elif name == "mul" and outs and self.gate.get(outs[0], 0) < 0:
            x = -1 - self.gate[outs[0]]
            q_in = self.q_any(x)
            self.add(x, None if q_in is None else activation_moments("silu", {}, q_in)[1] * g_out)
        elif name in DROPOUT_OPS:
            scale = _dropout_scale(op, self.inp.modules)
            self.add(x, None if scale is None else scale * g_out)
        elif name in _ADD and len(op.inputs) == 2 and op.inputs[0] != op.inputs[1]:
            n_out = self.inp.numel.get(outs[0], 1) if outs else 1
            for n in op.inputs:
                self.add(n, g_out * n_out / max(self.inp.numel.get(n, n_out), 1))
        else:
            for n in op.inputs:
                self.poisoned.add(n)


def predict(rec: Recording, inputs: Inputs) -> Predictions:
    """Predicted output and gradient second moments of every layer of a recorded pass."""
    propagation = _Propagation(rec, inputs)
    propagation.forward()
    propagation.backward()
    return propagation.result
