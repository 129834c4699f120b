"""Forward hooks for activation statistics and gradient hooks, registered on an ``ExitStack``.

Every handle is pushed on the caller's ``ExitStack``, so closing the stack (the monitor does it
in ``__exit__``, exceptions included) removes every hook. The monitor registers them only for
the steps its schedule logs (:meth:`ActivationProbe.arm`, :meth:`GradCapture.arm`), so a step it
does not log runs with no hook at all; on a compiled model, where adding and removing hooks
would make Dynamo recompile, they stay registered and do nothing unless ``collect`` is set.

Only training forward passes are measured: one that runs without gradients (``torch.no_grad``,
``torch.inference_mode``) or with the model in eval mode (``model.eval()``: a validation pass
inside the training loop) is skipped, so that it does not mix into the training batch's
statistics or dead-unit record. (With reentrant activation checkpointing the forward runs
without gradients and is recomputed with them in backward: that recomputation is measured.)

Which tensor a layer's activation statistics come from:

- an activation *module* that consumes the layer's output (``nn.Sequential(Linear, ReLU)``,
  ``self.act(self.bn(x))``): its output. The pairing is observed at run time: each layer hook
  remembers (by weak reference) the tensor it returned, and an activation module whose input is
  that very tensor belongs to that layer, call by call, so a ReLU module reused in several places
  pairs with whichever layer feeds it;
- otherwise the layer's own output; if a traced forward pass saw a functional activation after
  it (``F.relu(self.fc(x))``), dead units and saturation are measured there on the activation's
  input, with the equivalent thresholds (see :mod:`stabletrain.monitoring.activations`).

Of that tensor, at most :data:`ACTIVATION_ROWS` rows (positions: a sample, a token, a pixel) are
measured, drawn anew on each measured pass from a private generator on the tensor's device
(:func:`stabletrain.monitoring.metrics.sample_activation_rows`); a smaller tensor is measured
whole.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from stabletrain.monitoring._layers import LayerSpec
from stabletrain.monitoring._params import ParamSet
from stabletrain.monitoring.activations import ActivationKind, module_kind
from stabletrain.monitoring.metrics import (
    dead_units,
    moments,
    refresh_last_alive,
    sample_activation_rows,
    saturated_count,
    unit_max,
)

_NEVER = -(2**62)  # last_alive of a unit never seen positive
ACTIVATION_ROWS = 64
"""Rows of each activation measured per forward pass (see ``metrics.sample_activation_rows``)."""
_ROW_SEED = 2  # of the private generators that draw the activation rows

Sampler = Callable[[torch.Tensor, int], tuple[torch.Tensor, int]]
"""``(activation, unit_dim) -> (rows of it, their unit_dim)``."""


def _main_tensor(output: Any) -> torch.Tensor | None:
    """A module's main output: the tensor, or the first tensor of a tuple (RNNs, attention)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


class Site:
    """The activation statistics of one layer: this step's sums, and the dead-unit record."""

    def __init__(self, spec: LayerSpec) -> None:
        self.unit_dim = spec.unit_dim
        self.input_kind = spec.input_kind
        self.kind = spec.input_kind  # the kind of the latest observation
        self.paired = False  # an activation module consumes the output: measure there
        self.last_alive: torch.Tensor | None = None
        self.reset()

    def reset(self) -> None:
        """Forget this step's sums."""
        self.n = 0
        self.total: torch.Tensor | None = None
        self.squares: torch.Tensor | None = None
        self.umax: torch.Tensor | None = None
        self.saturated: torch.Tensor | None = None

    def observe(
        self, x: torch.Tensor, kind: ActivationKind | None, rows: Sampler | None = None
    ) -> None:
        """Add one batch of activations ``x`` (seen by the activation ``kind``) to the sums;
        only the rows ``rows`` draws from it, when given."""
        if not x.is_floating_point() or x.dim() == 0 or x.numel() == 0:
            return
        with torch.no_grad():
            unit_dim = self.unit_dim
            if rows is not None:
                x, unit_dim = rows(x, unit_dim)
            s, q = moments(x)
            first = self.n == 0
            self.total = s if first or self.total is None else self.total + s
            self.squares = q if first or self.squares is None else self.squares + q
            self.n += x.numel()
            self.kind = kind
            if kind is not None and kind.rectifier:
                m = unit_max(x, unit_dim)
                same = self.umax is not None and self.umax.shape == m.shape
                self.umax = torch.maximum(self.umax, m) if same and self.umax is not None else m
            if kind is not None and kind.saturating:
                c = saturated_count(x, kind.center, kind.threshold)
                self.saturated = c if self.saturated is None else self.saturated + c

    def dead(self, batch: int, window: int) -> torch.Tensor | None:
        """Update the record with this step's unit maxima; the dead-unit count (a tensor)."""
        if self.umax is None:
            return None
        if self.last_alive is None or self.last_alive.shape != self.umax.shape:
            self.last_alive = torch.full_like(self.umax, _NEVER, dtype=torch.long)
        self.last_alive = refresh_last_alive(self.last_alive, self.umax, batch)
        return dead_units(self.last_alive, batch, window)


class RowSampler:
    """Draws at most ``k`` rows of each activation, from a private generator per device."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._gens: dict[torch.device, torch.Generator] = {}

    def __call__(self, x: torch.Tensor, unit_dim: int) -> tuple[torch.Tensor, int]:
        gen = self._gens.get(x.device)
        if gen is None:
            gen = self._gens[x.device] = torch.Generator(device=x.device).manual_seed(_ROW_SEED)
        return sample_activation_rows(x, unit_dim, self.k, gen)


class _Hooks(ABC):
    """Hooks registered on demand: :meth:`arm` registers them (``_register``) or removes them."""

    _handles: list[Any]

    @abstractmethod
    def _register(self) -> list[Any]:
        """Register the hooks; their handles."""

    def install(self, stack: contextlib.ExitStack) -> None:
        """Register the hooks until ``stack`` closes (:meth:`arm` registers them only while they
        measure)."""
        stack.callback(self.arm, False)
        self.arm(True)

    def arm(self, on: bool) -> None:
        """Register the hooks (``on``) or remove them; doing what is already done is a no-op."""
        if not on:
            for handle in self._handles:
                handle.remove()
            self._handles = []
        elif not self._handles:
            self._handles = self._register()


class ActivationProbe(_Hooks):
    """Forward hooks on every layer and every activation module of a model.

    Each observed activation is measured on at most ``rows`` of its rows (positions), drawn
    anew on every measured pass (:func:`~stabletrain.monitoring.metrics.sample_activation_rows`);
    None measures every element.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[LayerSpec],
        *,
        level: float,
        rows: int | None = ACTIVATION_ROWS,
    ) -> None:
        self.model = model
        self.rows: RowSampler | None = RowSampler(rows) if rows is not None else None
        self.layers = list(layers)
        self.level = level
        self.sites = [Site(spec) for spec in self.layers]
        self.collect = False
        self.batches = 0  # logged steps on which some activation was seen
        self._last: tuple[weakref.ref[torch.Tensor], Site] | None = None
        self._handles = []

    def _register(self) -> list[Any]:
        """Forward hooks on every activation module and every layer. Activation hooks come
        first, so that on a module that is both a layer and an activation (``nn.PReLU``) the
        pairing with the layer before it is checked before the module's own layer hook records
        its output."""
        handles = []
        for module in self.model.modules():
            kind = module_kind(module, level=self.level)
            if kind is not None:
                hook = functools.partial(self._activation_hook, kind)
                handles.append(module.register_forward_hook(hook))
        for spec, site in zip(self.layers, self.sites, strict=True):
            hook = functools.partial(self._layer_hook, site)
            handles.append(spec.module.register_forward_hook(hook))
        return handles

    def _measures(self) -> bool:
        """Whether this forward pass is measured: a logged step's training pass."""
        return self.collect and self.model.training and torch.is_grad_enabled()

    def _layer_hook(self, site: Site, module: nn.Module, args: Any, output: Any) -> None:
        if not self._measures():
            return
        out = _main_tensor(output)
        if out is None:
            return
        self._last = (weakref.ref(out), site)
        if not site.paired:
            site.observe(out, site.input_kind, self.rows)

    def _activation_hook(
        self, kind: ActivationKind, module: nn.Module, args: Any, output: Any
    ) -> None:
        if self._last is None or not args or not self._measures():
            return
        ref, site = self._last
        if ref() is not args[0]:
            return
        out = _main_tensor(output)
        if out is None:
            return
        if not site.paired:  # first time: drop what the layer hook measured on its output
            site.paired = True
            site.reset()
        site.observe(out, kind, self.rows)
        self._last = None

    def finish(self, window: int) -> tuple[torch.Tensor | None, list[tuple[int, int, int]]]:
        """End a logged step: the statistics of every layer that saw activations.

        Returns ``(stats, layers)``: ``stats`` a ``(len(layers), 4)`` tensor of ``[Σx, Σx², dead
        units, saturated outputs]`` (-1 where a test does not apply), ``layers`` the matching
        ``(layer index, elements, units)`` (units 0 when not rectified). Resets the step's sums.
        """
        observed = [i for i, s in enumerate(self.sites) if s.n > 0 and s.total is not None]
        self._last = None
        if not observed:
            return None, []
        self.batches += 1
        parts: list[torch.Tensor] = []
        layers = []
        minus_one: torch.Tensor | None = None
        for i in observed:
            site = self.sites[i]
            if site.total is None or site.squares is None:
                continue
            if minus_one is None:
                minus_one = torch.full((), -1.0, dtype=torch.float64, device=site.total.device)
            dead = site.dead(self.batches, window)
            parts += [site.total, site.squares, minus_one if dead is None else dead]
            parts.append(minus_one if site.saturated is None else site.saturated)
            layers.append((i, site.n, site.umax.numel() if site.umax is not None else 0))
            site.reset()
        return torch.stack(parts).reshape(len(layers), 4), layers


class GradCapture(_Hooks):
    """Measures every layer's gradient norm where the gradient is born: when backward ends.

    A post-accumulate-grad hook on each parameter keeps a reference to its gradient; the first
    one of a backward pass queues a callback on the autograd engine, which runs when the pass has
    finished. That callback queues itself once more, so that it runs after the callbacks queued
    later in the same pass: DistributedDataParallel's, which waits for the all-reduce and writes
    the averaged gradients. It then computes the per-layer sums of squares of all gradients in
    the monitor's fused passes (``ParamSet.layer_sums``), on the device, without a sync.

    Why at the end of backward rather than in each hook, while the gradient is still in the
    cache: measured on a 10 x 512 MLP (batch 256, 2-core CPU), squared norms taken in the hooks
    one parameter at a time cost 1.1 ms per logged step against 0.98 ms for the fused pass at the
    end; a pass that reads every gradient once, the floor of an exact norm, costs under 2% of
    that model's step (``benchmarks/monitor_overhead.py``, row ``grad-norms/1``).

    The norms are therefore those before anything touches the gradients after backward:
    clipping (``StepGuard``, :func:`stabletrain.stability.clip_grad_norm_`,
    ``torch.nn.utils.clip_grad_norm_`` called by a framework), unscaling, the optimizer step,
    ``zero_grad``. Under gradient accumulation every backward pass of a logged step is measured
    and the last one, the accumulated gradient, is kept. With a ``GradScaler`` the gradients of
    backward are scaled: ``scale()`` returns the scale (a tensor), and the sums are divided by
    its square. Only on steps that will be logged (``collect``); the references are dropped
    once read.

    What happened to the gradients after backward (clipping) is read from one *probe* per layer,
    its smallest parameter: its squared norm at the end of backward (``probe_sums``) against its
    squared norm when the step is logged (:meth:`probe_now`). Clipping by the global norm or by
    each layer's norm scales every gradient of a layer alike, so the probe gives that layer's
    clip coefficient exactly, for the price of a pass over a few small tensors instead of all
    the gradients.
    """

    def __init__(
        self, params: ParamSet, scale: Callable[[], torch.Tensor | None] | None = None
    ) -> None:
        self.set = params
        self.params = params.params
        self.scale = scale
        self.refs: list[torch.Tensor | None] = [None] * len(self.params)
        self.sums: torch.Tensor | None = None  # (n_layers,) squared norms at the end of backward
        self.probe_sums: torch.Tensor | None = None  # (n_layers,) the probes' squared norms then
        smallest: dict[int, int] = {}
        for i, (p, owner) in enumerate(zip(self.params, params.owners, strict=True)):
            if owner not in smallest or p.numel() < self.params[smallest[owner]].numel():
                smallest[owner] = i
        self.probe_index = sorted(smallest.values())
        self.probes = ParamSet(
            [self.params[i] for i in self.probe_index],
            [params.owners[i] for i in self.probe_index],
            params.n_layers,
            params.device,
        )
        self.present: list[bool] = [False] * params.n_layers
        self.collect = False
        self._queued = False
        self._handles = []

    def _register(self) -> list[Any]:
        """A post-accumulate-grad hook on every parameter."""
        return [
            p.register_post_accumulate_grad_hook(functools.partial(self._hook, i))  # type: ignore[no-untyped-call]
            for i, p in enumerate(self.params)
        ]

    def _hook(self, i: int, param: torch.Tensor) -> None:
        if not self.collect:
            return
        self.refs[i] = param.grad
        if not self._queued:
            self._queued = True
            _engine().queue_callback(self._requeue)

    def _requeue(self) -> None:
        _engine().queue_callback(self._measure)

    def _measure(self) -> None:
        self._queued = False
        grads = self.current()
        present = [False] * self.set.n_layers
        for g, owner in zip(grads, self.set.owners, strict=True):
            if g is not None:
                present[owner] = True
        with torch.no_grad():
            sums = self.set.layer_sums(or_empty(self.params, grads))
            probes = self.probes.layer_sums(self._probe_grads(grads))
            scale = self.scale() if self.scale is not None else None
            if scale is not None:
                square = scale.to(sums.device, torch.float64).square()
                sums, probes = sums / square, probes / square
        self.sums, self.probe_sums, self.present = sums, probes, present

    def _probe_grads(self, grads: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
        return or_empty(self.probes.params, [grads[i] for i in self.probe_index])

    def probe_now(self, grads: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """The probes' squared norms in ``grads`` (the gradients now), per layer."""
        with torch.no_grad():
            return self.probes.layer_sums(self._probe_grads(grads))

    def current(self) -> list[torch.Tensor | None]:
        """Each parameter's gradient now, or the one captured at the end of backward."""
        return [
            p.grad if p.grad is not None else g for p, g in zip(self.params, self.refs, strict=True)
        ]

    def read(
        self,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, list[bool], list[torch.Tensor | None]]:
        """``(sums, probe_sums, present, grads)``: the per-layer squared norms measured at the
        end of the last backward and its probes' (None if no backward pass was seen since the
        last read), which layers had a gradient then, and the gradients now (after clipping, if
        any). Forgets them."""
        sums, probes, present, grads = self.sums, self.probe_sums, self.present, self.current()
        self.clear()
        return sums, probes, present, grads

    def clear(self) -> None:
        """Drop every captured reference and measurement."""
        self.refs = [None] * len(self.params)
        self.sums = None
        self.probe_sums = None
        self.present = [False] * self.set.n_layers
        self._queued = False


def _engine() -> Any:
    return torch.autograd.Variable._execution_engine


def or_empty(
    params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]
) -> list[torch.Tensor]:
    """The gradients, an empty tensor where a parameter has none (it adds 0 to the sums)."""
    return [p.new_empty(0) if g is None else g for p, g in zip(params, grads, strict=True)]
