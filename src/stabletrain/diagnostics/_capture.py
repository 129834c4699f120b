"""What ``diagnose`` measures while its one forward and one backward pass run.

A :class:`Capture` is the observer of :func:`stabletrain.graph.trace_with_grad`: it sees every
layer call and every activation op the moment it returns, so it measures values before a later
in-place op changes them (``nn.ReLU(inplace=True)`` after a BatchNorm), and it registers a hook
on every layer output for the gradient of the backward pass (a hook registered before an
in-place op receives the gradient of the value it was registered on). Every measurement is a
small tensor on the device, put in a :class:`Ledger`; :meth:`Ledger.read` copies them all to
the host at once (one transfer per device).

Per layer output (summed over the layer's calls): ``Σz``, ``Σz²``, and a histogram of ``z``
over :data:`HISTOGRAM_RADIUS` RMS either side of 0 (values beyond count in the end bins, NaN in
none). Per activation result: ``Σy``, ``Σy²``, the zeros and the saturated outputs
(``|tanh(z)| > 0.99``; :mod:`stabletrain.monitoring`'s test). Per layer input that is no
measured tensor already: ``Σx``, ``Σx²``, for the theory to restart from. Sums are over every
element; histograms and counts over a sample of at most :data:`SAMPLE` elements (a fixed
stride), so each costs a few small kernels whatever the tensor's size.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from stabletrain.graph import Call, Op
from stabletrain.graph.ops import ACTIVATION_OPS
from stabletrain.monitoring.activations import activation_kind
from stabletrain.monitoring.metrics import moments, saturated_count

HISTOGRAM_RADIUS = 4.0
"""The histogram covers ``[-4, 4]`` in units of each layer's output RMS ``sqrt(E[z²])``."""
SAMPLE = 1 << 15
"""At most this many elements of a tensor (a fixed stride through it) go into a histogram, a
zero count or a saturation count: small enough to run without the thread pool's start-up
(PyTorch's grain size), large enough for fractions within ±0.3%."""
SATURATION_LEVEL = 0.99
"""A bounded activation's output within 1% of a bound is saturated (``|tanh(z)| > 0.99``)."""


class Ledger:
    """Small device tensors, read back to the host together."""

    def __init__(self) -> None:
        self.parts: list[torch.Tensor] = []

    def add(self, *values: torch.Tensor) -> int:
        """Keep ``values`` (scalars or vectors, flattened in order); returns their slot."""
        flat = [v.detach().reshape(-1) for v in values]
        self.parts.append(flat[0] if len(flat) == 1 else torch.cat([f.double() for f in flat]))
        return len(self.parts) - 1

    def read(self) -> list[list[float]]:
        """Every slot's values as floats: one ``torch.cat`` and one copy per device."""
        by_device: dict[torch.device, list[int]] = defaultdict(list)
        for i, part in enumerate(self.parts):
            by_device[part.device].append(i)
        out: list[list[float]] = [[] for _ in self.parts]
        for slots in by_device.values():
            values = torch.cat([self.parts[i].double() for i in slots]).tolist()
            start = 0
            for i in slots:
                size = self.parts[i].numel()
                out[i] = values[start : start + size]
                start += size
        return out


@dataclass
class LayerRecord:
    """One layer's measurements over its calls: ledger slots and element counts."""

    calls: int = 0
    n: int = 0  # output elements
    out: list[int] = field(default_factory=list)  # slots of (Σz, Σz²) per call
    hist: list[int] = field(default_factory=list)  # slots of histogram counts per call
    hist_n: int = 0  # elements that went into the histograms
    grad: list[int] = field(default_factory=list)  # slots of (Σg, Σg²) per call
    grad_n: int = 0


@dataclass(frozen=True)
class Measured:
    """A tensor's ``(Σx, Σx²)`` (slot) and its number of elements; activations add
    ``(zeros, saturated)`` in a sample of ``sample`` elements to the slot."""

    slot: int
    n: int
    sample: int = 0
    saturating: bool = False


class Capture:
    """The observer of diagnose's forward pass; grad hooks for its backward pass."""

    def __init__(self, bins: int) -> None:
        self.bins = bins
        self.ledger = Ledger()
        self.layers: dict[str, LayerRecord] = defaultdict(LayerRecord)
        self.nodes: dict[int, Measured] = {}  # layer outputs and inputs: (Σx, Σx²)
        self.activations: dict[int, Measured] = {}  # (Σy, Σy², zeros, saturated)
        self.numel: dict[int, int] = {}
        self.grads: dict[int, list[int]] = defaultdict(list)  # layer output node -> (Σg, Σg²)
        self.shapes: dict[int, tuple[int, ...]] = {}  # layer input node -> its shape
        # normalization output node -> (slot of mean(1/σ²), number of normalized groups)
        self.norm_inv_sq: dict[int, tuple[int, int]] = {}
        self._sigmoid_of: dict[int, int] = {}  # sigmoid result node -> its input node
        self._handles: list[RemovableHandle] = []

    # -- forward ---------------------------------------------------------------------------
    def on_op(
        self, op: Op, inputs: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor]
    ) -> None:
        for node, t in zip(op.inputs, inputs, strict=False):
            self.numel.setdefault(node, t.numel())
        for node, t in zip(op.outputs, outputs, strict=False):
            self.numel[node] = t.numel()
        if not op.outputs or not _floating(outputs[0]):
            return
        name, params = "", dict(op.act_params)
        if op.name in ACTIVATION_OPS:
            name = ACTIVATION_OPS[op.name][0]
            if op.name == "sigmoid" and op.inputs:
                self._sigmoid_of[op.outputs[0]] = op.inputs[0]
        elif op.name == "mul" and len(op.inputs) == 2:  # x * sigmoid(x): SiLU written out
            a, b = op.inputs
            if self._sigmoid_of.get(b) == a or self._sigmoid_of.get(a) == b:
                name, params = "silu", {}
        if name:
            self._measure_activation(op.outputs[0], outputs[0], name, params)

    def _measure_activation(
        self, node: int, y: torch.Tensor, name: str, params: dict[str, float]
    ) -> None:
        kind = activation_kind(name, params, level=SATURATION_LEVEL, space="output")
        flat = y.detach().reshape(-1)
        sample = _sample(flat)
        n = sample.numel()
        zeros = n - torch.count_nonzero(sample)
        saturating = kind is not None and kind.saturating
        if kind is not None and kind.saturating:
            saturated = saturated_count(sample, kind.center, kind.threshold)
        else:
            saturated = torch.zeros((), dtype=torch.long, device=y.device)
        slot = self.ledger.add(*moments(flat), zeros, saturated)
        self.activations[node] = Measured(slot, flat.numel(), n, saturating)

    def on_call(
        self,
        call: Call,
        module: nn.Module,
        inputs: Sequence[torch.Tensor],
        outputs: Sequence[torch.Tensor],
    ) -> None:
        if not call.outputs or not outputs or not _floating(outputs[0]):
            return
        z, node = outputs[0], call.outputs[0]
        record = self.layers[call.module]
        record.calls += 1
        flat = z.detach().reshape(-1)
        total, squares = moments(flat)
        slot = self.ledger.add(torch.stack([total, squares]))
        self.nodes[node] = Measured(slot, flat.numel())
        self.numel[node] = flat.numel()
        record.out.append(slot)
        record.n += flat.numel()
        sample = _sample(flat)
        record.hist.append(self.ledger.add(self._histogram(sample, squares, flat.numel())))
        record.hist_n += sample.numel()
        if call.inputs and inputs:
            self.shapes[call.inputs[0]] = tuple(inputs[0].shape)
        inverse_std = _saved_inverse_std(z)
        if inverse_std is not None:
            slot = self.ledger.add(inverse_std.double().square().mean())
            self.norm_inv_sq[node] = (slot, inverse_std.numel())
        if call.inputs and inputs and _floating(inputs[0]):
            x_node = call.inputs[0]
            self.numel.setdefault(x_node, inputs[0].numel())
            if x_node not in self.nodes and x_node not in self.activations:
                slot = self.ledger.add(torch.stack(moments(inputs[0])))
                self.nodes[x_node] = Measured(slot, inputs[0].numel())
        if z.requires_grad:
            hook = self._grad_hook(record, node)
            self._handles.append(z.register_hook(hook))  # type: ignore[no-untyped-call]

    def _histogram(self, sample: torch.Tensor, squares: torch.Tensor, n: int) -> torch.Tensor:
        """Counts of ``sample`` in units of the RMS ``sqrt(squares / n)``."""
        if sample.dtype not in (torch.float32, torch.float64):
            sample = sample.float()
        tiny = torch.finfo(sample.dtype).tiny
        unit = torch.rsqrt(squares.to(sample.dtype) / max(n, 1) + tiny)
        scaled = (sample * unit).clamp_(-HISTOGRAM_RADIUS, HISTOGRAM_RADIUS)  # NaN stays NaN
        return torch.histc(scaled, self.bins, -HISTOGRAM_RADIUS, HISTOGRAM_RADIUS)

    # -- backward --------------------------------------------------------------------------
    def _grad_hook(self, record: LayerRecord, node: int) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            with torch.no_grad():
                slot = self.ledger.add(torch.stack(moments(grad)))
            record.grad.append(slot)
            record.grad_n += grad.numel()
            self.grads[node].append(slot)

        return hook

    def remove_hooks(self) -> None:
        """Remove every gradient hook (those that have not fired included)."""
        for handle in self._handles:
            with contextlib.suppress(Exception):
                handle.remove()
        self._handles.clear()


# autograd nodes of the native normalizations: their second result is the per-channel (BatchNorm)
# or per-sample (LayerNorm, GroupNorm) inverse standard deviation the forward pass divided by
_NORM_NODES = frozenset(
    {
        "NativeBatchNormBackward0",
        "NativeLayerNormBackward0",
        "NativeGroupNormBackward0",
        "CudnnBatchNormBackward0",
        "MiopenBatchNormBackward0",
    }
)


def _saved_inverse_std(z: torch.Tensor) -> torch.Tensor | None:
    """``1/sqrt(var + eps)`` as a normalization's backward pass saved it, if ``z`` is the
    output of a native normalization computed with batch or sample statistics."""
    node = z.grad_fn
    if node is None or type(node).__name__ not in _NORM_NODES:
        return None
    saved = getattr(node, "_saved_result2", None)
    if not isinstance(saved, torch.Tensor) or saved.numel() == 0:
        return None
    return saved.detach()


def _floating(t: torch.Tensor) -> bool:
    return t.is_floating_point() and t.numel() > 0


def _sample(flat: torch.Tensor) -> torch.Tensor:
    """At most :data:`SAMPLE` elements of ``flat``, at a fixed stride."""
    return flat[:: max(1, math.ceil(flat.numel() / SAMPLE))]
