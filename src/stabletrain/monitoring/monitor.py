"""``TrainingMonitor``: per-layer training health, measured on the device, with findings and fixes.

The monitor watches a model while it trains: gradient and weight norms, update ratios,
activation statistics, dead and saturated units, symmetric units and non-finite values, layer by
layer; it turns them into findings with the stabletrain call that fixes each (claim S6: "monitor
per-layer gradient norms during training to catch these problems early").

Cost design (see ``benchmarks/monitor_overhead.py`` for the measured overhead):

- Nothing happens on steps the schedule does not log, except copying the loss into a ring buffer
  on the device (no synchronization); the hooks are registered only for the logged steps (on a
  compiled model they stay and return at once, since changing them would recompile it). A
  NaN/inf loss on such a
  step is still reported, with its own step number: the ring is checked at the next logged
  step, from that step's one copy (see :mod:`stabletrain.monitoring._losses`).
- On a logged step every quantity is computed on the device in fused passes
  (``torch._foreach_norm`` over all gradients, at the end of each backward pass of the step,
  see :class:`~stabletrain.monitoring._hooks.GradCapture`; over all weights, over all weight
  changes; over one small probe parameter per layer for the clip ratio), and everything is
  stacked into one tensor copied to the host once. A second copy happens only on a
  step whose norms are non-finite, to count the NaN/inf entries of the layers concerned.
- Weight norms and update ratios ``‖θ_t − θ_{t−1}‖ / ‖θ_t‖`` are estimated from a fixed random
  sample of each parameter's entries (at most 4096 per tensor, drawn once from a private
  generator; all of a smaller tensor), see :mod:`stabletrain.monitoring._sampled` for the
  estimator and its error (about 1–2% on a norm). At the end of ``step(t − 1)`` (or on
  entering), if step ``t`` will be logged, the monitor copies the sampled entries (a few KB per
  parameter); at ``step(t)`` it gathers them again and compares. ``exact=True`` copies every
  trainable weight instead: at ``step(t)`` one pass subtracts the new weights from the copy in
  place, takes both norms and, if step ``t + 1`` is logged too, copies the new weights in (on
  the CPU, parameter by parameter while each is in cache). Either copy is kept while
  consecutive steps are logged and freed otherwise; no copy is made before a step that is not
  logged, and none on a step a guard skipped (the weights did not change).
- Activation statistics are measured on at most 64 rows (positions) of each activation per
  forward pass, drawn anew each time on the device (``exact=True``: every element).
- Symmetric units (``standard``) are looked for on the first logged step and every 10th
  logged step after it, among 32 sampled rows of each weight matrix.
- Memory is bounded however long the run: the loss ring holds ``loss_window`` values, the
  dead-unit record one integer per unit (the last logged batch on which it was positive), the
  findings one entry per (rule, layer). Rows go to the sinks, not into the monitor.

The monitor changes nothing: hooks return None, nothing is written to a parameter, a gradient or
a buffer, and no random number is drawn from the global generators (the traced forward pass of
``example_input`` runs under ``torch.random.fork_rng`` and restores buffers and modes; the
samples of weights, activation rows and ``max_row_cosine`` rows use private generators).
Parameters and losses are bit-identical with and without it.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import sys
import warnings
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import asdict, replace
from types import TracebackType
from typing import Any, Protocol

import torch
from rich.console import Console
from torch import nn

from stabletrain._checks import check_choice
from stabletrain._render import render_text
from stabletrain._wrappers import unwrap_model, unwrap_optimizer
from stabletrain.findings import (
    SEVERITIES,
    Finding,
    FindingKey,
    Severity,
    fold_findings,
    ordered_findings,
)
from stabletrain.graph import STRUCTURE_ROWS, trace
from stabletrain.monitoring._hooks import ACTIVATION_ROWS, ActivationProbe, GradCapture, or_empty
from stabletrain.monitoring._layers import LayerSpec, discover
from stabletrain.monitoring._losses import LossRing
from stabletrain.monitoring._pack import Pack
from stabletrain.monitoring._params import ParamSet
from stabletrain.monitoring._sampled import SampledNorms
from stabletrain.monitoring._sinkset import SinkSet
from stabletrain.monitoring._summary import findings_renderable
from stabletrain.monitoring._wrappers import has_compiled_module, is_compiled
from stabletrain.monitoring.metrics import (
    chance_cosine,
    histogram,
    max_row_cosine,
    moments,
    real_view,
    sample_rows,
    segment_sums,
)
from stabletrain.monitoring.presets import PRESETS, Preset, measurements
from stabletrain.monitoring.ranks import WRITE_RANKS, WriteRanks, for_ranks, is_writer
from stabletrain.monitoring.rules import RULES, LayerMeta, StepMetrics, Thresholds
from stabletrain.monitoring.schedules import Schedule, check_schedule, every
from stabletrain.monitoring.sinks.base import Histogram, Row, Sink

__all__ = ["HISTOGRAM_BINS", "SkipCounter", "TrainingMonitor"]

HISTOGRAM_BINS = 64
_EVERY_10 = every(10)
_ROW_SEED = 0  # seed of the private generator that samples rows for max_row_cosine


class SkipCounter(Protocol):
    """Anything that counts skipped optimizer steps, e.g. ``stabletrain.StepGuard``."""

    @property
    def skipped_steps(self) -> int:
        """How many steps were skipped so far."""
        ...


def _mean_loss(values: list[torch.Tensor | float]) -> torch.Tensor | float | None:
    """The mean of the losses of one optimizer step's micro-batches (NaN and inf propagate)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    if all(isinstance(v, float) for v in values):
        return math.fsum(float(v) for v in values) / len(values)
    device = next(v.device for v in values if isinstance(v, torch.Tensor))
    return torch.stack(
        [torch.as_tensor(v, dtype=torch.float64, device=device).reshape(()) for v in values]
    ).mean()


def _check_step(step: Any, last: int) -> int | None:
    if step is None:
        return None
    if not isinstance(step, numbers.Integral) or isinstance(step, bool):
        raise TypeError(
            f"TrainingMonitor.step: step must be an int (the framework's optimizer step, e.g. "
            f"trainer.global_step) or None, got {type(step).__name__}."
        )
    if step < last:
        raise ValueError(
            f"TrainingMonitor.step: step={step} goes back from the last recorded step {last}; "
            "pass the number of optimizer steps taken so far (it never decreases), or None to "
            "let the monitor count."
        )
    return int(step)


def _check_loss(loss: Any) -> torch.Tensor | float | None:
    if loss is None:
        return None
    if isinstance(loss, torch.Tensor):
        if loss.numel() != 1:
            raise ValueError(
                f"TrainingMonitor.step: loss must be a scalar, got a tensor of shape "
                f"{tuple(loss.shape)}; pass the reduced loss (e.g. loss.mean())."
            )
        if not loss.is_floating_point():
            raise TypeError(f"TrainingMonitor.step: loss must be floating point, got {loss.dtype}.")
        return loss.detach().reshape(())
    if isinstance(loss, numbers.Real) and not isinstance(loss, bool):
        return float(loss)
    raise TypeError(
        f"TrainingMonitor.step: loss must be a scalar tensor, a number or None, got "
        f"{type(loss).__name__}."
    )


def _chance_of(matrix: torch.Tensor, rows: torch.Tensor | None) -> float:
    """The row cosine chance reaches among the rows of ``matrix`` compared (``rows``, or all)."""
    k = matrix.shape[0] if rows is None else rows.numel()
    dim = real_view(matrix.detach()).numel() // matrix.shape[0]
    return chance_cosine(dim, k * (k - 1) // 2)


class TrainingMonitor:
    """Watch a model's training health, layer by layer; a context manager.

    Use it as ``with TrainingMonitor(...) as mon:``, or call :meth:`start` and :meth:`close`
    (what a framework callback does). Call :meth:`step` after each optimizer step (after
    ``optimizer.step()`` or ``guard.step(loss)``), or after every micro-batch: the monitor
    counts optimizer steps, not calls.

    Gradients are measured where they are born, at the end of backward (post-accumulate-grad
    hooks, one fused pass; under DDP after the all-reduce): before any clipping, whoever clips
    (:class:`~stabletrain.StepGuard`, :func:`stabletrain.stability.clip_grad_norm_`, a framework
    calling ``torch.nn.utils.clip_grad_norm_``) and whether ``zero_grad()`` ran before
    :meth:`step` or not. The logged ``grad_norm`` is therefore the norm the guard or the
    framework reports as its pre-clip norm; the gradients as the optimizer saw them give the
    ``clip_ratio`` row and the ``clipping`` finding.

    Optimizer steps, not calls. When the monitor knows the optimizer (``optimizer``, or the
    ``guard``'s), a :meth:`step` call with no optimizer step since the last one is a
    micro-batch of gradient accumulation: its loss is kept, and the step is recorded, with the
    mean loss of its micro-batches, at the call that follows the optimizer step. A step the
    guard skipped counts as a step (no update ratio is measured on it). Frameworks pass their
    own count, ``step(loss, step=trainer.global_step)``: then calls with the same number are
    micro-batches of the step that number ends. Without either, every call is a step. A step
    whose update changed no weight at all (a ``GradScaler`` skipped it) reports no update ratio.

    Presets, by cost (each includes the ones before):

    - ``"minimal"``: gradient norm, weight norm and non-finite counts per layer; loss, total
      gradient norm and skipped steps.
    - ``"standard"``: + update ratio ``‖Δθ‖/‖θ‖``, activation mean and std, dead-unit fraction
      (ReLU family, over a window of logged batches) and saturation fraction (tanh, sigmoid),
      and symmetric units (the largest cosine similarity between two of 32 sampled rows of
      each weight matrix) on the first logged step and every 10th logged step after it.
    - ``"full"``: + symmetric units on every logged step, among up to
      ``thresholds.symmetric_rows`` rows, and weight/gradient histograms for the sinks that ask
      for them.

    Weight norms, update ratios and activation statistics are estimates from samples (4096
    entries per parameter, 64 rows per activation; relative error about 1–2% on a norm, see
    :mod:`stabletrain.monitoring._sampled`); gradient norms are exact. ``exact=True`` measures
    every entry, at the cost of a copy of the trainable weights on logged steps.

    Args:
        model: the model being trained.
        optimizer: its optimizer, if any: update ratios then cover only the parameters it
            updates, and findings quote its learning rate.
        preset: ``"minimal"``, ``"standard"`` or ``"full"``.
        schedule: which steps to log: a ``step -> bool`` callable such as ``every(10)`` (steps
            count from 1), or an int ``n`` for ``every(n)``.
        sinks: where the rows go (:class:`~stabletrain.monitoring.JSONLSink`,
            :class:`~stabletrain.monitoring.TensorBoardSink`, ...); closed on exit. A sink that
            raises (disk full, file deleted, no permission) gets a ``RuntimeWarning`` naming
            it and the error and nothing more from the run; training and the other sinks go
            on.
        thresholds: when the rules fire (:class:`~stabletrain.monitoring.Thresholds`).
        example_input: an input of the model; when given, one traced forward pass
            (:func:`stabletrain.graph.trace`) orders the layers by execution and finds
            functional activations (``F.relu(self.fc(x))``), whose dead units and saturation
            are then measured too. Without it: registration order, and activation modules only.
        guard: an object with ``skipped_steps`` (``stabletrain.StepGuard``), reported as the
            ``skipped_steps`` metric; update ratios are not measured on a skipped step. Its
            ``optimizer`` (if the monitor has none) tells optimizer steps from micro-batches,
            and its ``scaler`` unscales the measured norms.
        scaler: the ``torch.amp.GradScaler`` scaling the loss, if not the guard's: the norms
            measured at the end of backward are divided by its scale.
        write_ranks: under ``torch.distributed``, ``"zero"`` (default) writes the rows and
            prints the summary on global rank 0 only (every rank measures the same global
            numbers); ``"each"`` lets every rank write, a :class:`JSONLSink` to its path with
            ``.rank<r>`` before the suffix (``rows.rank1.jsonl``).
        summary: print the findings when the ``with`` block ends (to stderr, or ``console``).
        console: the rich console for the summary.
        exact: measure weight norms, update ratios and activation statistics over every entry
            (a copy of the trainable weights before each logged step) instead of estimating
            them from fixed samples.

    Raises:
        TypeError, ValueError: a bad argument; the message names it and the fix.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> x, y = torch.randn(32, 4), torch.randn(32, 1)
        >>> with TrainingMonitor(model, opt, schedule=every(1), summary=False) as mon:
        ...     for _ in range(5):
        ...         loss = nn.functional.mse_loss(model(x), y)
        ...         opt.zero_grad()
        ...         loss.backward()
        ...         opt.step()
        ...         mon.step(loss)
        >>> mon.steps, mon.layers
        (5, ('0', '2'))
        >>> mon.findings()
        []
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        preset: Preset = "standard",
        schedule: Schedule | int = _EVERY_10,
        sinks: Sequence[Sink] = (),
        thresholds: Thresholds | None = None,
        example_input: Any = None,
        guard: SkipCounter | None = None,
        scaler: Any = None,
        write_ranks: WriteRanks = "zero",
        summary: bool = True,
        console: Console | None = None,
        exact: bool = False,
    ) -> None:
        where = "TrainingMonitor"
        if not isinstance(model, nn.Module):
            raise TypeError(f"{where}: model must be an nn.Module, got {type(model).__name__}.")
        self._compiled = is_compiled(model)
        self._arm_hooks = not has_compiled_module(model)  # see _prepare
        model = unwrap_model(model)  # DDP, torch.compile: the user's module, its names
        if optimizer is not None:
            optimizer = unwrap_optimizer(optimizer)  # accelerate's, Lightning's
        if not any(True for _ in model.parameters()):
            raise ValueError(f"{where}: the model has no parameters to monitor.")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"{where}: optimizer must be a torch.optim.Optimizer or None, got "
                f"{type(optimizer).__name__}."
            )
        self.preset: Preset = check_choice("preset", preset, PRESETS, where=where)
        self.schedule = check_schedule(schedule, where=where)
        if isinstance(sinks, Sink) or not all(isinstance(s, Sink) for s in sinks):
            raise TypeError(
                f"{where}: sinks must be a sequence of Sink objects (e.g. [JSONLSink(path)]), "
                f"got {sinks!r}."
            )
        if thresholds is not None and not isinstance(thresholds, Thresholds):
            raise TypeError(
                f"{where}: thresholds must be a Thresholds, got {type(thresholds).__name__}."
            )
        if guard is not None and not hasattr(guard, "skipped_steps"):
            raise TypeError(
                f"{where}: guard must have a skipped_steps attribute (a StepGuard), got "
                f"{type(guard).__name__}."
            )
        if console is not None and not isinstance(console, Console):
            raise TypeError(f"{where}: console must be a rich Console, got {type(console)}.")
        if scaler is not None and not callable(getattr(scaler, "is_enabled", None)):
            raise TypeError(
                f"{where}: scaler must be a torch.amp.GradScaler or None, got "
                f"{type(scaler).__name__}."
            )
        self.write_ranks: WriteRanks = check_choice(
            "write_ranks", write_ranks, WRITE_RANKS, where=where
        )
        if not isinstance(exact, bool):
            raise TypeError(
                f"{where}: exact must be a bool (True: exact weight norms and update ratios, "
                f"False: estimated from a sample of each parameter), got {exact!r}."
            )
        self.exact = exact
        self.model = model
        self.optimizer = optimizer
        self.scaler = scaler if scaler is not None else getattr(guard, "scaler", None)
        self.sinks = list(sinks)
        self._out = SinkSet(self.sinks)
        self.thresholds = thresholds or Thresholds()
        self._measure = measurements(self.preset, self.thresholds)
        self.example_input = example_input
        self.guard = guard
        self.summary = bool(summary)
        self.console = console
        self._entered = False
        self._active = False
        self._steps = 0
        self._logged = 0
        self._findings: dict[FindingKey, Finding] = {}
        self._layers: list[LayerSpec] = []
        # the weights before the step: all of them (exact) or their sampled entries
        self._snapshot: list[torch.Tensor] | torch.Tensor | None = None
        self._pending: list[torch.Tensor | float] = []  # the losses of this step's micro-batches
        self._opt_steps: int | None = None  # optimizer steps seen by the hook, None: no hook
        self._opt_seen = 0
        self._clip_ratios: deque[float] = deque(maxlen=self.thresholds.clip_window)
        self._warned_compiled = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> TrainingMonitor:
        """Start watching (what entering the ``with`` block does); returns the monitor.

        For framework callbacks, whose start and end are two separate calls; pair it with
        :meth:`close`, in a ``finally`` where possible.
        """
        return self.__enter__()

    def close(self) -> None:
        """Stop watching: remove every hook, report pending losses, close the sinks and print
        the summary (what leaving the ``with`` block does). A second call does nothing."""
        if self._active:
            self.__exit__(None, None, None)

    # ------------------------------------------------------------------ context

    def __enter__(self) -> TrainingMonitor:
        if self._entered:
            raise RuntimeError(
                "TrainingMonitor: this monitor was already entered; create a new one for "
                "another run."
            )
        self._entered = True
        self._stack = contextlib.ExitStack()
        try:
            self._setup()
        except BaseException:
            self._stack.close()
            raise
        self._active = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._active = False
        try:
            self._stack.close()  # removes every hook
        finally:
            self._snapshot = None
            self._grads.clear()
            try:
                self._report_losses(self._pending_losses(failing=exc is not None))
            finally:
                try:
                    self._out.close()
                    for sink in self.sinks:  # not written on this rank: release what it holds
                        if not any(sink is s for s in self._out.live + self._out.dropped):
                            with contextlib.suppress(Exception):
                                sink.close()
                finally:
                    if self.summary and self._writer:
                        self.print_summary()

    def _pending_losses(self, *, failing: bool) -> list[tuple[int, float]]:
        """The NaN/inf losses of the last unlogged steps, not checked yet (reads the device)."""
        try:
            return self._ring.flush()
        except Exception:
            if not failing:
                raise
            return []  # the device may be what failed: keep the original error

    def _setup(self) -> None:
        self._writer = is_writer(self.write_ranks)
        self._out = SinkSet(for_ranks(self.sinks, self.write_ranks))
        graph = (
            trace(self.model, self.example_input, rows=STRUCTURE_ROWS)
            if self.example_input is not None
            else None
        )
        t = self.thresholds
        self._layers = discover(self.model, graph, level=t.saturation_level)
        first = next(self.model.parameters())
        self._device = first.device
        params, owners = [], []
        for i, layer in enumerate(self._layers):
            for p in layer.params:
                params.append(p)
                owners.append(i)
        n = len(self._layers)
        self._weights = ParamSet(params, owners, n, self._device)
        trainable = [k for k, p in enumerate(params) if p.requires_grad]
        self._gradset = ParamSet(
            [params[k] for k in trainable], [owners[k] for k in trainable], n, self._device
        )
        optimized = self._optimized_ids()
        updated = [k for k in trainable if optimized is None or id(params[k]) in optimized]
        self._updateset = ParamSet(
            [params[k] for k in updated], [owners[k] for k in updated], n, self._device
        )
        rest = sorted(set(range(len(params))) - set(updated))
        self._static = ParamSet(
            [params[k] for k in rest], [owners[k] for k in rest], n, self._device
        )
        self._layer_has_update = [False] * n
        for k in updated:
            self._layer_has_update[owners[k]] = True
        self._sampled: SampledNorms | None = None
        if not self.exact:
            marked = set(updated)
            self._sampled = SampledNorms(
                params, owners, n, [k in marked for k in range(len(params))], self._device
            )
        self._grads = GradCapture(self._gradset, self._scale)
        self._grads.install(self._stack)
        self._floors = self._ratio_floors()
        counted = self.optimizer or getattr(self.guard, "optimizer", None)
        if counted is not None:
            counted = unwrap_optimizer(counted)
        if isinstance(counted, torch.optim.Optimizer):
            self._opt_steps = 0
            handle = counted.register_step_post_hook(self._count_step)
            self._stack.callback(handle.remove)
        self._probe: ActivationProbe | None = None
        if self._measure.activations:
            self._probe = ActivationProbe(
                self.model,
                self._layers,
                level=t.saturation_level,
                rows=None if self.exact else ACTIVATION_ROWS,
            )
            self._probe.install(self._stack)
        self._row_samples: dict[int, torch.Tensor | None] = {}
        self._chance_cosine: dict[int, float] = {}
        if self._measure.symmetry_rows:
            gen = torch.Generator().manual_seed(_ROW_SEED)
            k = self._measure.symmetry_rows
            for i, layer in enumerate(self._layers):
                if layer.matrix is not None and layer.matrix.shape[0] >= 2:
                    rows = sample_rows(layer.matrix.shape[0], k, gen)
                    self._row_samples[i] = None if rows is None else rows.to(layer.matrix.device)
                    self._chance_cosine[i] = _chance_of(layer.matrix, rows)
        self._ring = LossRing(t.loss_window, self._device)
        self._snapshot = None
        self._snapshot_step = -1
        self._skipped = self._read_skipped()
        meta = {
            "preset": self.preset,
            "thresholds": asdict(t),
            "layers": [{"name": layer.name, "depth": layer.depth} for layer in self._layers],
        }
        self._out.write_meta(meta)
        self._prepare(1, bool(self.schedule(1)))

    def _scale(self) -> torch.Tensor | None:
        """The GradScaler's current scale (a device tensor, no sync), None without one."""
        scaler = self.scaler
        if scaler is None or not scaler.is_enabled():
            return None
        scale = getattr(scaler, "_scale", None)
        return scale if isinstance(scale, torch.Tensor) else None

    def _count_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._opt_steps is not None:
            self._opt_steps += 1

    def _ratio_floors(self) -> list[float]:
        """Per layer, the least squared norm an update is divided by: ``n · zero_init_scale²``
        for a layer whose updated weights start at (or near) zero, 0 for the others.

        A zero-initialized weight (the last BatchNorm gain of a residual block, a layer-scale
        gamma of 1e-6) has no scale of its own: any first update is infinitely large relative
        to it. Its update is judged against the scale it grows to instead (one host read, here).
        """
        t = self.thresholds
        upd = self._updateset
        if not upd.params:
            return [0.0] * len(self._layers)
        with torch.no_grad():
            sums = upd.layer_sums([p.detach() for p in upd.params]).tolist()
        sizes = [0] * len(self._layers)
        for p, owner in zip(upd.params, upd.owners, strict=True):
            sizes[owner] += p.numel()
        return [
            n * t.zero_init_scale**2 if n and sq < n * t.zero_init_rms**2 else 0.0
            for sq, n in zip(sums, sizes, strict=True)
        ]

    def _optimized_ids(self) -> set[int] | None:
        if self.optimizer is None:
            return None
        return {id(p) for group in self.optimizer.param_groups for p in group["params"]}

    def _read_skipped(self) -> int | None:
        if self.guard is None:
            return None
        return int(self.guard.skipped_steps)

    def _prepare(self, next_step: int, logged: bool) -> None:
        """Before step ``next_step``: arm the hooks and copy the weights if it will be logged."""
        self._log_next = logged
        self._grads.collect = self._log_next
        if self._probe is not None:
            self._probe.collect = self._log_next
        if self._arm_hooks:  # no hook on the steps not logged: module calls take torch's fast path
            self._grads.arm(logged)
            if self._probe is not None:
                self._probe.arm(logged)
        if not self._wants_snapshot(self._log_next):
            self._snapshot = None  # free the copy between logged steps
        elif self._snapshot_step != next_step - 1:  # not refreshed by the step just logged
            if self._sampled is not None:
                self._snapshot = self._sampled.gather()
            else:
                old = self._snapshot if isinstance(self._snapshot, list) else None
                self._snapshot = self._updateset.snapshot(old)
            self._snapshot_step = next_step - 1

    def _wants_snapshot(self, logged: bool) -> bool:
        return self._measure.updates and logged and bool(self._updateset.params)

    # ------------------------------------------------------------------ public

    @property
    def layers(self) -> tuple[str, ...]:
        """The monitored layers' names, in execution (traced) or registration order."""
        return tuple(layer.name for layer in self._layers)

    @property
    def steps(self) -> int:
        """How many times :meth:`step` was called."""
        return self._steps

    @property
    def logged_steps(self) -> int:
        """How many of those steps the schedule logged."""
        return self._logged

    def step(self, loss: torch.Tensor | float | None = None, *, step: int | None = None) -> None:
        """Record one optimizer step; on a logged step, measure, write rows, apply the rules.

        A call that follows no optimizer step is a micro-batch (see the class docstring): its
        loss joins the step's mean, and nothing else happens.

        A NaN or inf loss is reported on any step, logged or not, with its own step number: a
        ``loss`` row and a ``nonfinite`` finding. On an unlogged step a tensor loss is checked
        without a device synchronization, at the next logged step (or when the block ends).

        Args:
            loss: the step's (or micro-batch's) loss (a scalar tensor or a number), or None.
            step: the framework's count of optimizer steps taken so far (``global_step``);
                None: the monitor counts.

        Raises:
            RuntimeError: called outside the ``with`` block (or before :meth:`start`).
            ValueError: ``step`` is below the last recorded step.
        """
        if not self._active:
            raise RuntimeError(
                "TrainingMonitor.step: the monitor is not active; call it inside "
                "`with TrainingMonitor(model, ...) as mon:` or after mon.start()."
            )
        value = _check_loss(loss)
        number = _check_step(step, self._steps)
        skipped = self._read_skipped()
        was_skipped = skipped is not None and self._skipped is not None and skipped > self._skipped
        if number is not None:
            micro = number == self._steps
        else:
            micro = (
                self._opt_steps is not None
                and self._opt_steps == self._opt_seen
                and not was_skipped
            )
        if micro:
            if value is not None:
                self._pending.append(value)
            return
        if value is not None:
            self._pending.append(value)
        value, self._pending = _mean_loss(self._pending), []
        advanced = None if self._opt_steps is None else self._opt_steps > self._opt_seen
        self._opt_seen = self._opt_steps or 0
        self._steps = number if number is not None else self._steps + 1
        step = self._steps
        slot = None
        if value is not None:
            # a logged step's loss is checked by the rules, a number at once, a tensor lazily
            lazy = not self._log_next and isinstance(value, torch.Tensor)
            slot, found = self._ring.push(step, value, check=lazy)
            if not self._log_next and isinstance(value, float) and not math.isfinite(value):
                found.append((step, value))
            self._report_losses(found)
        log_next = bool(self.schedule(step + 1))  # asked once per step: schedules may be stateful
        if self._log_next:
            self._log(
                step, slot, skipped, was_skipped, advanced, refresh=self._wants_snapshot(log_next)
            )
        self._skipped = skipped
        self._prepare(step + 1, log_next)

    def findings(self, min_severity: Severity = "info") -> list[Finding]:
        """The findings so far, errors first; repeated ones merged (see ``Finding.count``)."""
        check_choice("min_severity", min_severity, SEVERITIES, where="TrainingMonitor.findings")
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        kept = [f for f in self._findings.values() if rank[f.severity] >= rank[min_severity]]
        return ordered_findings(kept, self.layers)

    def summary_text(self) -> str:
        """The findings table as plain text."""
        return render_text(self._renderable())

    def print_summary(self, console: Console | None = None) -> None:
        """Print the findings table (to ``console``, the monitor's console, or stderr)."""
        out = console or self.console or Console(file=sys.stderr)
        out.print(self._renderable())

    def _renderable(self) -> Any:
        return findings_renderable(
            self.findings(), steps=self._steps, logged=self._logged, preset=self.preset
        )

    # ------------------------------------------------------------------ measuring

    def _report_losses(self, found: list[tuple[int, float]]) -> None:
        """Report the non-finite losses of steps the schedule did not log, each at its own step:
        a ``loss`` row and the ``nonfinite`` rule's finding, to the sinks and the findings."""
        for step, value in found:
            only_loss = StepMetrics(step, (), {(None, "loss"): value})
            events = [
                replace(finding, rule="nonfinite", step=step, last_step=step)
                for finding in RULES["nonfinite"](only_loss, self.thresholds)
            ]
            fold_findings(self._findings, events)
            self._out.write(step, [Row(step, None, "loss", value)])
            self._out.write_findings(step, events)

    def _log(
        self,
        step: int,
        slot: int | None,
        skipped: int | None,
        was_skipped: bool,
        advanced: bool | None,
        refresh: bool,
    ) -> None:
        self._logged += 1
        pack = Pack(self._device)
        born, probes, present, grads = self._grads.read()
        tensors = or_empty(self._gradset.params, grads)
        has_grad = [False] * len(self._layers)
        for g, owner in zip(grads, self._gradset.owners, strict=True):
            has_grad[owner] = has_grad[owner] or g is not None
        with torch.no_grad():
            if born is None or probes is None:  # no backward seen while armed: as they are now
                pack.add("grad", self._gradset.layer_sums(tensors))
            else:  # measured at the end of backward; the probes tell what happened since
                pack.add("grad", born)
                pack.add("probe_born", probes)
                pack.add("probe_now", self._grads.probe_now(grads))
                has_grad = present
            valid = self._snapshot is not None and self._snapshot_step == step - 1
            if valid and was_skipped:
                self._snapshot_step = step  # the guard skipped the update: θ is unchanged
            before = self._snapshot if valid and not was_skipped else None
            if isinstance(before, torch.Tensor) and self._sampled is not None:
                weight, updated, delta, now = self._sampled.update(before)
                if refresh:
                    self._snapshot, self._snapshot_step = now, step
                pack.add("updated", updated)
                pack.add("delta", delta)
                pack.add("weight", weight)
            elif isinstance(before, list):
                upd = self._updateset
                w_sq, d_sq = upd.update(before, refresh)
                if refresh:
                    self._snapshot_step = step
                weight = segment_sums(w_sq, upd.gather)
                pack.add("updated", weight)
                pack.add("delta", segment_sums(d_sq, upd.gather))
                if self._static.params:
                    weight = weight + self._static.layer_sums(
                        [p.detach() for p in self._static.params]
                    )
                pack.add("weight", weight)
            elif self._sampled is not None:
                pack.add("weight", self._sampled.weight_sums())
            else:
                pack.add(
                    "weight", self._weights.layer_sums([p.detach() for p in self._weights.params])
                )
            pack.add("ring", self._ring.values)
            stats, acts = (
                self._probe.finish(self.thresholds.dead_window) if self._probe else (None, [])
            )
            if stats is not None:
                pack.add("act", stats)
            if self._measure.measures_symmetry(self._logged):
                for i, sample in self._row_samples.items():
                    matrix = self._layers[i].matrix
                    if matrix is not None:
                        pack.add(("cos", i), max_row_cosine(matrix, sample))
            if self._measure.histograms:
                wanting = self._out.wanting_histograms(step)
                hists = self._queue_histograms(pack, tensors) if wanting else []
            else:
                hists, wanting = [], []
        values = pack.read()
        self._report_losses(self._ring.nonfinite(values["ring"]))  # of the unlogged steps before
        rows = self._rows_of(step, values, has_grad, slot, skipped, acts, advanced)
        ratio = self._clip_ratio(values, was_skipped)
        if ratio is not None:
            rows.append(Row(step, None, "clip_ratio", ratio))
            self._clip_ratios.append(ratio)
        if self._probe is not None and not acts and any(has_grad):
            self._warn_compiled()
        self._count_nonfinite(step, rows, tensors)
        self._out.write(step, rows)
        if hists:
            histograms = [self._histogram(step, key, num, values[key]) for key, num in hists]
            self._out.write_histograms(step, histograms, wanting)
        self._apply_rules(step, rows, values)

    def _clip_ratio(self, values: dict[Hashable, list[float]], was_skipped: bool) -> float | None:
        """``‖g as stepped‖ / ‖g at the end of backward‖``: below 1 when the gradients were
        clipped. Each layer's gradient is taken as scaled by its probe's ratio (exact for
        clipping by the global or per-layer norm). None when not measurable (no backward seen, a
        skipped or non-finite step, or gradients zeroed in place before :meth:`step`)."""
        if "probe_now" not in values or was_skipped:
            return None
        before = after = 0.0
        for sq, born, now in zip(
            values["grad"], values["probe_born"], values["probe_now"], strict=True
        ):
            if born > 0 and math.isfinite(born) and math.isfinite(now):
                before += sq
                after += sq * now / born
        if not math.isfinite(before) or before <= 0 or after <= 0:
            return None
        return min(math.sqrt(after / before), 1.0)

    def _warn_compiled(self) -> None:
        if self._warned_compiled or not self._compiled:
            return
        self._warned_compiled = True
        warnings.warn(
            "TrainingMonitor: the model trained but no activation was recorded: it is compiled "
            "(torch.compile), and a graph compiled before the monitor's forward hooks were "
            "registered never calls them. Gradient and weight metrics are unaffected. For "
            "activation statistics, create the monitor before the first compiled step (or call "
            "torch._dynamo.reset() after creating it), or use preset='minimal' to silence this.",
            RuntimeWarning,
            stacklevel=4,
        )

    def _queue_histograms(
        self, pack: Pack, grads: list[torch.Tensor]
    ) -> list[tuple[tuple[str, int], int]]:
        grad_of = {id(p): g for p, g in zip(self._gradset.params, grads, strict=True)}
        queued = []
        for i, layer in enumerate(self._layers):
            if layer.matrix is None:
                continue
            for metric, tensor in (
                ("weight", layer.matrix),
                ("grad", grad_of.get(id(layer.matrix))),
            ):
                if tensor is None or tensor.numel() == 0:
                    continue
                tensor = real_view(tensor)  # a complex one: its real and imaginary parts
                counts, lo, hi = histogram(tensor, HISTOGRAM_BINS)
                s, q = moments(tensor)
                pack.add(
                    (metric, i), torch.cat([torch.stack([lo, hi, s.double(), q.double()]), counts])
                )
                queued.append(((metric, i), tensor.numel()))
        return queued

    def _histogram(
        self, step: int, key: tuple[str, int], num: int, packed: list[float]
    ) -> Histogram:
        metric, i = key
        low, high, total, squares = packed[:4]
        return Histogram(
            step, self._layers[i].name, metric, low, high, tuple(packed[4:]), num, total, squares
        )

    def _rows_of(
        self,
        step: int,
        values: dict[Hashable, list[float]],
        has_grad: list[bool],
        slot: int | None,
        skipped: int | None,
        acts: list[tuple[int, int, int]],
        advanced: bool | None,
    ) -> list[Row]:
        rows: list[Row] = []
        grad_sq, weight_sq = values["grad"], values["weight"]
        updated, delta = values.get("updated"), values.get("delta")
        # an update was made: the optimizer stepped (when it is known), else some weight moved
        moved = advanced if advanced is not None else delta is not None and math.fsum(delta) != 0
        for i, layer in enumerate(self._layers):
            name = layer.name
            if has_grad[i]:
                rows.append(Row(step, name, "grad_norm", math.sqrt(grad_sq[i])))
            rows.append(Row(step, name, "weight_norm", math.sqrt(weight_sq[i])))
            if not (moved and updated is not None and delta is not None):
                continue
            scale = max(updated[i], self._floors[i])
            if self._layer_has_update[i] and scale > 0:
                rows.append(Row(step, name, "update_ratio", math.sqrt(delta[i] / scale)))
        act = values.get("act", [])
        for k, (i, n, units) in enumerate(acts):
            total, squares, dead, saturated = act[4 * k : 4 * k + 4]
            mean = total / n
            rows.append(Row(step, self._layers[i].name, "act_mean", mean))
            rows.append(
                Row(
                    step,
                    self._layers[i].name,
                    "act_std",
                    math.sqrt(max(squares / n - mean * mean, 0.0)),
                )
            )
            if dead >= 0 and units > 0:
                rows.append(Row(step, self._layers[i].name, "dead_fraction", dead / units))
            if saturated >= 0:
                rows.append(Row(step, self._layers[i].name, "saturation_fraction", saturated / n))
        for i in self._row_samples:
            if ("cos", i) in values:
                rows.append(
                    Row(step, self._layers[i].name, "max_row_cosine", values[("cos", i)][0])
                )
        if any(has_grad):
            rows.append(Row(step, None, "grad_norm", math.sqrt(sum(grad_sq))))
        if slot is not None:
            rows.append(Row(step, None, "loss", values["ring"][slot]))
        if skipped is not None:
            rows.append(Row(step, None, "skipped_steps", float(skipped)))
        return rows

    def _count_nonfinite(self, step: int, rows: list[Row], grads: list[torch.Tensor]) -> None:
        """Append ``grad_nonfinite`` and ``weight_nonfinite`` rows: 0 where the layer's norm is
        finite (then so is every entry); counted exactly, in a second transfer, elsewhere. An
        estimated weight norm sees only its sample: the weights of a layer whose gradient norm
        is non-finite are counted too."""
        index = {layer.name: i for i, layer in enumerate(self._layers)}
        bad: list[tuple[str, str, list[torch.Tensor]]] = []
        zero: list[Row] = []
        grad_of = dict(zip(map(id, self._gradset.params), grads, strict=True))
        grad_bad = {r.layer for r in rows if r.metric == "grad_norm" and not math.isfinite(r.value)}
        for row in list(rows):
            if row.layer is None or row.metric not in ("grad_norm", "weight_norm"):
                continue
            metric = "grad_nonfinite" if row.metric == "grad_norm" else "weight_nonfinite"
            unseen = metric == "weight_nonfinite" and self.exact is False and row.layer in grad_bad
            if math.isfinite(row.value) and not unseen:
                zero.append(Row(step, row.layer, metric, 0.0))
                continue
            params = self._layers[index[row.layer]].params
            if metric == "grad_nonfinite":
                tensors = [grad_of[id(p)] for p in params if id(p) in grad_of]
            else:
                tensors = [p.detach() for p in params]
            bad.append((row.layer, metric, tensors))
        rows.extend(zero)
        if bad:
            with torch.no_grad():
                counts = torch.stack(
                    [
                        torch.stack([(~torch.isfinite(t)).sum().to(self._device) for t in ts]).sum()
                        for _, _, ts in bad
                    ]
                ).tolist()
            rows.extend(
                Row(step, layer, metric, float(c))
                for (layer, metric, _), c in zip(bad, counts, strict=True)
            )

    def _apply_rules(self, step: int, rows: list[Row], values: dict[Hashable, list[float]]) -> None:
        t = self.thresholds
        losses = self._ring.chronological(values["ring"])
        kinds = {}
        if self._probe is not None:
            kinds = {i: s.kind.name for i, s in enumerate(self._probe.sites) if s.kind is not None}
        metrics = StepMetrics(
            step,
            tuple(
                LayerMeta(layer.name, layer.depth, kinds.get(i), self._chance_cosine.get(i))
                for i, layer in enumerate(self._layers)
            ),
            {(r.layer, r.metric): r.value for r in rows},
            losses,
            self._probe.batches if self._probe is not None else 0,
            self._lr(),
            tuple(self._clip_ratios),
        )
        events = [
            replace(finding, rule=name, step=step, last_step=step)
            for name, rule in RULES.items()
            for finding in rule(metrics, t)
        ]
        fold_findings(self._findings, events)
        if events:
            self._out.write_findings(step, events)

    def _lr(self) -> float | None:
        if self.optimizer is None or not self.optimizer.param_groups:
            return None
        lr = self.optimizer.param_groups[0].get("lr")
        return float(lr) if isinstance(lr, int | float) else None  # a tensor lr is not read
