"""What kind of layer each module is for the theory, its fans, and its weights' statistics.

Kinds: ``linear`` (Linear, ConvNd, ConvTransposeNd, GPT-2's Conv1D, any module whose weight
matrix a linear op reads), ``embedding``, ``norm`` (BatchNorm, LayerNorm, GroupNorm, RMSNorm,
custom ``*Norm`` modules of 1-D parameters), and ``other`` (recurrent layers, attention, anything
else: measured, not predicted). A weight read by ``matmul``/``mm``/``addmm``/``bmm`` (``x @ W``)
is laid out ``(in, out)``; by ``linear``/``conv*`` ``(out, in, ...)``, as
:func:`stabletrain.init.layer_fans` knows.

The statistics are device tensors in the capture's ledger, read with everything else.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from stabletrain.diagnostics._capture import Ledger
from stabletrain.graph import NORM_TYPES, Graph
from stabletrain.graph.ops import LINEAR_OPS
from stabletrain.init import Fans, layer_fans

LayerKind = Literal["linear", "embedding", "norm", "other"]

_X_AT_W = frozenset({"matmul", "mm", "addmm", "bmm"})
_NOT_LINEAR = (
    nn.RNNBase,
    nn.RNNCellBase,
    nn.MultiheadAttention,
    nn.Bilinear,
    nn.Embedding,
    nn.EmbeddingBag,
)
_HALF = (torch.float16, torch.bfloat16)
_RUNNING = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)
# the order of the statistics in a layer's ledger slot
_FIELDS = (
    "w_var",
    "w_mean",
    "row_spread",
    "col_spread",
    "gw_var",
    "b_sq",
    "b_mean",
    "norm_scale",
    "norm_shift",
)


@dataclass(frozen=True)
class LayerSpec:
    """A layer as the theory sees it (host data, no tensors)."""

    name: str
    kind: LayerKind
    weight: str | None  # the main parameter's local name
    fans: Fans | None
    running_stats: bool = False  # a BatchNorm/InstanceNorm normalizing by running statistics


@dataclass(frozen=True)
class LayerConstants:
    """The weights' statistics (NaN where they do not apply).

    ``norm_scale`` and ``norm_shift`` give a normalization's output second moment
    ``norm_scale·E[x²] + norm_shift + b_sq``: ``(0, mean γ²)`` with batch or sample statistics,
    ``(mean γ²/(v+ε), mean γ²m²/(v+ε))`` with running mean ``m`` and variance ``v``.
    """

    w_var: float = math.nan
    w_mean: float = math.nan
    row_spread: float = math.nan  # (max − min)/mean of the rows' norms
    col_spread: float = math.nan
    gw_var: float = math.nan
    b_sq: float = 0.0
    b_mean: float = 0.0
    norm_scale: float = math.nan
    norm_shift: float = math.nan

    @property
    def w_std(self) -> float:
        """The weight's standard deviation."""
        return math.sqrt(self.w_var) if self.w_var >= 0 else math.nan

    @property
    def w_sq(self) -> float:
        """The weight's mean square ``E[w²]``."""
        return self.w_var + self.w_mean**2


def _is_norm(module: nn.Module) -> bool:
    if isinstance(module, NORM_TYPES):
        return True
    own = list(module.parameters(recurse=False))
    return "norm" in type(module).__name__.lower() and all(p.dim() <= 1 for p in own)


def _main_weight(module: nn.Module) -> str | None:
    params = dict(module.named_parameters(recurse=False))
    for name in ("weight", "in_proj_weight", "weight_ih_l0", "weight_ih"):
        if name in params:
            return name
    matrix = next((n for n, p in params.items() if p.dim() >= 2), None)
    return matrix or next(iter(params), None)


def layer_spec(name: str, module: nn.Module, graph: Graph) -> LayerSpec:
    """The kind, main weight and fans of layer ``name``."""
    weight = _main_weight(module)
    if _is_norm(module):
        running = (
            isinstance(module, _RUNNING)
            and not module.training
            and bool(module.track_running_stats)
            and module.running_var is not None
        )
        return LayerSpec(name, "norm", weight, None, running)
    if isinstance(module, nn.Embedding | nn.EmbeddingBag):
        return LayerSpec(name, "embedding", weight, layer_fans(module, "weight"))
    param = None if weight is None else module.get_parameter(weight)
    if weight is None or param is None or param.dim() < 2 or isinstance(module, _NOT_LINEAR):
        return LayerSpec(name, "other", weight, None)
    use = graph.params.get(f"{name}.{weight}" if name else weight)
    ops = set(use.ops) if use is not None else set()
    known = isinstance(module, nn.Linear | nn.modules.conv._ConvNd)
    if not known and not ops & set(LINEAR_OPS):
        return LayerSpec(name, "other", weight, None)
    if not known and ops & _X_AT_W and param.dim() == 2:
        return LayerSpec(name, "linear", weight, Fans(param.shape[0], param.shape[1]))
    return LayerSpec(name, "linear", weight, layer_fans(module, weight))


def _var_mean(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Population variance and mean in two passes: the mean, then the norm of the deviations
    (``E[w²] − mean²`` from one pass cancels to noise for a constant init, and
    ``torch.var_mean``'s Welford pass is many times slower on the CPU)."""
    flat = t.reshape(-1)
    n = max(flat.numel(), 1)
    mean = flat.sum().double() / n
    deviation = torch.linalg.vector_norm(flat - mean.to(flat.dtype)).double()
    return deviation.square() / n, mean


def _spread(norms: torch.Tensor) -> torch.Tensor:
    return (norms.amax() - norms.amin()) / norms.mean().clamp_min(torch.finfo(norms.dtype).tiny)


def add_constants(
    ledger: Ledger, spec: LayerSpec, module: nn.Module, grad: torch.Tensor | None
) -> int:
    """Put layer ``spec``'s weight statistics (the fields of :class:`LayerConstants`) in
    ``ledger``; ``grad`` is the main weight's gradient. Returns the slot."""
    params = dict(module.named_parameters(recurse=False))
    w = params[spec.weight].detach() if spec.weight else None
    ref = w if w is not None else next(iter(params.values())).detach()
    nan = torch.full((), math.nan, dtype=torch.float64, device=ref.device)
    zero = torch.zeros((), dtype=torch.float64, device=ref.device)
    values = dict.fromkeys(_FIELDS, nan)
    values["b_sq"] = values["b_mean"] = zero
    if w is not None:
        wf = w.float() if w.dtype in _HALF else w
        var, mean = _var_mean(wf)
        values.update(w_var=var, w_mean=mean)
        if spec.kind == "linear":  # for the scheme: orthogonal rows (or columns) share a norm
            rows = wf.reshape(wf.shape[0], -1)
            values["row_spread"] = _spread(torch.linalg.vector_norm(rows, dim=1))
            if rows.shape[0] > rows.shape[1]:
                values["col_spread"] = _spread(torch.linalg.vector_norm(rows, dim=0))
    if grad is not None:
        values["gw_var"] = _var_mean(grad.detach().float() if grad.dtype in _HALF else grad)[0]
    bias = params.get("bias")
    if bias is not None and bias.dim() >= 1:
        b = bias.detach().double()
        values.update(b_sq=b.square().mean(), b_mean=b.mean())
    if spec.kind == "norm":
        gamma = w.double() if w is not None and w.dim() == 1 else None
        g2 = gamma.square() if gamma is not None else torch.ones((), dtype=torch.float64)
        g2 = g2.to(ref.device)
        if spec.running_stats:
            mean, var = _buffer(module, "running_mean"), _buffer(module, "running_var")
            var = var + float(getattr(module, "eps", 1e-5))
            values["norm_scale"] = (g2 / var).mean()
            values["norm_shift"] = (g2 * mean.square() / var).mean()
        else:
            values["norm_scale"] = zero
            values["norm_shift"] = g2.mean()
    return ledger.add(*(values[f] for f in _FIELDS))


@functools.cache
def _taps(sources: int, kernel: int, stride: int, pad: int, dilation: int, bound: int) -> int:
    """Kernel taps from ``sources`` positions that land in ``[0, bound)`` (one spatial dim):
    a convolution's output positions reading its input, or a transposed convolution's input
    positions writing its output."""
    return sum(
        1
        for i in range(sources)
        for k in range(kernel)
        if 0 <= i * stride - pad + k * dilation < bound
    )


def conv_coverage(module: nn.Module, in_shape: Sequence[int]) -> tuple[float, float]:
    """``(forward, backward)`` corrections of a zero-padded convolution's fans.

    ``fan_in = in/g·Πk`` counts every kernel tap, but near the border some taps read the zero
    padding: with ``T`` taps inside over the ``O`` output positions of a dim, an output sums
    ``T/O`` of its ``k`` taps on average, and an input element reaches ``T/L`` outputs (``L``
    input positions) rather than ``k``: border and stride (a stride-2 conv reaches half as many)
    both reduce it. On a 7x7 map a 3x3 conv sees 82% of its taps; on a 1x1 map, 11%. A
    transposed convolution is the mirror image: each output receives ``T/O`` taps (a stride-2
    one about ``k/2``), each input writes ``T/L``. Other layers and non-zero padding modes:
    ``(1, 1)``.
    """
    if not isinstance(module, nn.modules.conv._ConvNd) or module.padding_mode != "zeros":
        return 1.0, 1.0
    dims = len(module.kernel_size)
    if len(in_shape) < dims or (isinstance(module.padding, str) and module.transposed):
        return 1.0, 1.0
    forward = backward = 1.0
    for i, length in enumerate(in_shape[-dims:]):
        kernel, stride, dilation = module.kernel_size[i], module.stride[i], module.dilation[i]
        reach = dilation * (kernel - 1)
        if module.padding == "same":
            pad, out = reach // 2, length
        elif module.padding == "valid":
            pad, out = 0, (length - reach - 1) // stride + 1
        elif module.transposed:
            pad = int(module.padding[i])
            out = (length - 1) * stride - 2 * pad + reach + int(module.output_padding[i]) + 1
        else:
            pad = int(module.padding[i])
            out = (length + 2 * pad - reach - 1) // stride + 1
        if out <= 0 or length <= 0:
            return 1.0, 1.0
        if module.transposed:
            taps = _taps(length, kernel, stride, pad, dilation, out)
        else:
            taps = _taps(out, kernel, stride, pad, dilation, length)
        forward *= taps / (out * kernel)
        backward *= taps / (length * kernel)
    return forward, backward


def _buffer(module: nn.Module, name: str) -> torch.Tensor:
    value = getattr(module, name)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{type(module).__name__}.{name} is not a tensor")
    return value.detach().double()


def read_constants(values: list[float]) -> LayerConstants:
    """The :class:`LayerConstants` of a slot that :func:`add_constants` filled."""
    return LayerConstants(**dict(zip(_FIELDS, values, strict=True)))
