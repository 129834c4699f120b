"""``TrainingMonitor``: per-layer training health, measured on the device, with findings and fixes.

The monitor watches a model while it trains: gradient and weight norms, update ratios,
activation statistics, dead and saturated units, symmetric units and non-finite values, layer by
layer; it turns them into findings with the stabletrain call that fixes each (claim S6: "monitor
per-layer gradient norms during training to catch these problems early").

Cost design (see ``benchmarks/monitor_overhead.py`` for the measured overhead):

- Nothing happens on steps the schedule does not log, except copying the loss into a ring buffer
  on the device (no synchronization) and hooks that return at once. A NaN/inf loss on such a
  step is still reported, with its own step number: the ring is checked at the next logged
  step, from that step's one copy (see :mod:`stabletrain.monitoring._losses`).
- On a logged step every quantity is computed on the device in fused passes
  (``torch._foreach_norm`` over all gradients, over all weights, over all weight changes), and
  everything is stacked into one tensor copied to the host once. A second copy happens only on a
  step whose norms are non-finite, to count the NaN/inf entries of the layers concerned.
- Update ratios ``‖θ_t − θ_{t−1}‖ / ‖θ_t‖`` need the weights before the step: at the end of
  ``step(t − 1)`` (or on entering), if step ``t`` will be logged, the monitor copies the
  trainable weights into a buffer; at ``step(t)`` one pass subtracts the new weights from it in
  place, takes both norms and, if step ``t + 1`` is logged too, copies the new weights in (on
  the CPU, parameter by parameter while each is in cache). The buffer (one copy of the trainable
  weights) is kept while consecutive steps are logged and freed otherwise; no copy is made
  before a step that is not logged, and none on a step a guard skipped (the weights did not
  change).
- Memory is bounded however long the run: the loss ring holds ``loss_window`` values, the
  dead-unit record one integer per unit (the last logged batch on which it was positive), the
  findings one entry per (rule, layer). Rows go to the sinks, not into the monitor.

The monitor changes nothing: hooks return None, nothing is written to a parameter, a gradient or
a buffer, and no random number is drawn from the global generators (the traced forward pass of
``example_input`` runs under ``torch.random.fork_rng`` and restores buffers and modes; the row
samples of ``max_row_cosine`` use a private generator). Parameters and losses are bit-identical
with and without it.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import sys
from collections.abc import Hashable, Sequence
from dataclasses import asdict, replace
from types import TracebackType
from typing import Any, Literal, Protocol

import torch
from rich.console import Console
from torch import nn

from stabletrain._checks import check_choice
from stabletrain._render import render_text
from stabletrain.graph import Graph, trace
from stabletrain.monitoring._hooks import ActivationProbe, GradCapture
from stabletrain.monitoring._layers import LayerSpec, discover
from stabletrain.monitoring._losses import LossRing
from stabletrain.monitoring._pack import Pack
from stabletrain.monitoring._params import ParamSet
from stabletrain.monitoring._sinkset import SinkSet
from stabletrain.monitoring._summary import findings_renderable
from stabletrain.monitoring.metrics import (
    histogram,
    max_row_cosine,
    moments,
    real_view,
    sample_rows,
    segment_sums,
)
from stabletrain.monitoring.rules import (
    RULES,
    SEVERITIES,
    Finding,
    FindingKey,
    LayerMeta,
    Severity,
    StepMetrics,
    Thresholds,
    fold_findings,
    ordered_findings,
)
from stabletrain.monitoring.schedules import Schedule, check_schedule, every
from stabletrain.monitoring.sinks.base import Histogram, Row, Sink

__all__ = ["HISTOGRAM_BINS", "PRESETS", "Preset", "SkipCounter", "TrainingMonitor"]

Preset = Literal["minimal", "standard", "full"]
PRESETS: tuple[Preset, ...] = ("minimal", "standard", "full")
HISTOGRAM_BINS = 64
_EVERY_10 = every(10)
_ROW_SEED = 0  # seed of the private generator that samples rows for max_row_cosine


class SkipCounter(Protocol):
    """Anything that counts skipped optimizer steps, e.g. ``stabletrain.StepGuard``."""

    @property
    def skipped_steps(self) -> int:
        """How many steps were skipped so far."""
        ...


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


class TrainingMonitor:
    """Watch a model's training health, layer by layer; a context manager.

    Call :meth:`step` once per training step, after ``optimizer.step()``. Gradients are read at
    that moment, or, if ``optimizer.zero_grad()`` already ran, as backward left them.

    Presets, by cost (each includes the ones before):

    - ``"minimal"``: gradient norm, weight norm and non-finite counts per layer; loss, total
      gradient norm and skipped steps.
    - ``"standard"``: + update ratio ``‖Δθ‖/‖θ‖``, activation mean and std, dead-unit fraction
      (ReLU family, over a window of logged batches) and saturation fraction (tanh, sigmoid).
    - ``"full"``: + symmetric units (the largest cosine similarity between two rows of each
      weight matrix, rows sampled for large layers) and weight/gradient histograms for the sinks
      that ask for them.

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
            ``skipped_steps`` metric; update ratios are not measured on a skipped step.
        summary: print the findings when the ``with`` block ends (to stderr, or ``console``).
        console: the rich console for the summary.

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
        summary: bool = True,
        console: Console | None = None,
    ) -> None:
        where = "TrainingMonitor"
        if not isinstance(model, nn.Module):
            raise TypeError(f"{where}: model must be an nn.Module, got {type(model).__name__}.")
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
        self.model = model
        self.optimizer = optimizer
        self.sinks = list(sinks)
        self._out = SinkSet(self.sinks)
        self.thresholds = thresholds or Thresholds()
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
        self._snapshot: list[torch.Tensor] | None = None

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
                finally:
                    if self.summary:
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
        graph = self._trace() if self.example_input is not None else None
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
        self._grads = GradCapture(self._gradset.params)
        self._grads.install(self._stack)
        self._probe: ActivationProbe | None = None
        if self.preset != "minimal":
            self._probe = ActivationProbe(self.model, self._layers, level=t.saturation_level)
            self._probe.install(self._stack)
        self._row_samples: dict[int, torch.Tensor | None] = {}
        if self.preset == "full":
            gen = torch.Generator().manual_seed(_ROW_SEED)
            for i, layer in enumerate(self._layers):
                if layer.matrix is not None and layer.matrix.shape[0] >= 2:
                    rows = sample_rows(layer.matrix.shape[0], t.symmetric_rows, gen)
                    self._row_samples[i] = None if rows is None else rows.to(layer.matrix.device)
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

    def _trace(self) -> Graph:
        devices = sorted(
            {p.device.index or 0 for p in self.model.parameters() if p.device.type == "cuda"}
        )
        with torch.random.fork_rng(devices=devices):
            return trace(self.model, self.example_input)

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
        if not self._wants_snapshot(self._log_next):
            self._snapshot = None  # free the copy between logged steps
        elif self._snapshot_step != next_step - 1:  # not refreshed by the step just logged
            self._snapshot = self._updateset.snapshot(self._snapshot)
            self._snapshot_step = next_step - 1

    def _wants_snapshot(self, logged: bool) -> bool:
        return self.preset != "minimal" and logged and bool(self._updateset.params)

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

    def step(self, loss: torch.Tensor | float | None = None) -> None:
        """Record one training step; on a logged step, measure, write rows, apply the rules.

        A NaN or inf loss is reported on any step, logged or not, with its own step number: a
        ``loss`` row and a ``nonfinite`` finding. On an unlogged step a tensor loss is checked
        without a device synchronization, at the next logged step (or when the block ends).

        Args:
            loss: the step's loss (a scalar tensor or a number), or None.

        Raises:
            RuntimeError: called outside the ``with`` block.
        """
        if not self._active:
            raise RuntimeError(
                "TrainingMonitor.step: the monitor is not active; call it inside "
                "`with TrainingMonitor(model, ...) as mon:`."
            )
        value = _check_loss(loss)
        self._steps += 1
        step = self._steps
        slot = None
        if value is not None:
            # a logged step's loss is checked by the rules, a number at once, a tensor lazily
            lazy = not self._log_next and isinstance(value, torch.Tensor)
            slot, found = self._ring.push(step, value, check=lazy)
            if not self._log_next and isinstance(value, float) and not math.isfinite(value):
                found.append((step, value))
            self._report_losses(found)
        skipped = self._read_skipped()
        was_skipped = skipped is not None and self._skipped is not None and skipped > self._skipped
        log_next = bool(self.schedule(step + 1))  # asked once per step: schedules may be stateful
        if self._log_next:
            self._log(step, slot, skipped, was_skipped, refresh=self._wants_snapshot(log_next))
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
        self, step: int, slot: int | None, skipped: int | None, was_skipped: bool, refresh: bool
    ) -> None:
        self._logged += 1
        pack = Pack(self._device)
        grads = self._grads.read()
        has_grad = [False] * len(self._layers)
        tensors = []
        for p, g, owner in zip(self._gradset.params, grads, self._gradset.owners, strict=True):
            if g is None:
                tensors.append(p.new_empty(0))
            else:
                tensors.append(g)
                has_grad[owner] = True
        with torch.no_grad():
            pack.add("grad", self._gradset.layer_sums(tensors))
            valid = self._snapshot is not None and self._snapshot_step == step - 1
            if valid and was_skipped:
                self._snapshot_step = step  # the guard skipped the update: θ is unchanged
            if valid and not was_skipped and self._snapshot is not None:
                upd = self._updateset
                w_sq, d_sq = upd.update(self._snapshot, refresh)
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
            if self.preset == "full":
                for i, sample in self._row_samples.items():
                    matrix = self._layers[i].matrix
                    if matrix is not None:
                        pack.add(("cos", i), max_row_cosine(matrix, sample))
                wanting = self._out.wanting_histograms(step)
                hists = self._queue_histograms(pack, tensors) if wanting else []
            else:
                hists, wanting = [], []
        values = pack.read()
        self._report_losses(self._ring.nonfinite(values["ring"]))  # of the unlogged steps before
        rows = self._rows_of(step, values, has_grad, slot, skipped, acts)
        self._count_nonfinite(step, rows, tensors)
        self._out.write(step, rows)
        if hists:
            histograms = [self._histogram(step, key, num, values[key]) for key, num in hists]
            self._out.write_histograms(step, histograms, wanting)
        self._apply_rules(step, rows, values)

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
    ) -> list[Row]:
        rows: list[Row] = []
        grad_sq, weight_sq = values["grad"], values["weight"]
        updated, delta = values.get("updated"), values.get("delta")
        for i, layer in enumerate(self._layers):
            name = layer.name
            if has_grad[i]:
                rows.append(Row(step, name, "grad_norm", math.sqrt(grad_sq[i])))
            rows.append(Row(step, name, "weight_norm", math.sqrt(weight_sq[i])))
            measured = updated is not None and delta is not None and self._layer_has_update[i]
            if measured and updated is not None and delta is not None and updated[i] > 0:
                rows.append(Row(step, name, "update_ratio", math.sqrt(delta[i] / updated[i])))
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
        finite (then so is every entry); counted exactly, in a second transfer, elsewhere."""
        index = {layer.name: i for i, layer in enumerate(self._layers)}
        bad: list[tuple[str, str, list[torch.Tensor]]] = []
        zero: list[Row] = []
        grad_of = dict(zip(map(id, self._gradset.params), grads, strict=True))
        for row in list(rows):
            if row.layer is None or row.metric not in ("grad_norm", "weight_norm"):
                continue
            metric = "grad_nonfinite" if row.metric == "grad_norm" else "weight_nonfinite"
            if math.isfinite(row.value):
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
                LayerMeta(layer.name, layer.depth, kinds.get(i))
                for i, layer in enumerate(self._layers)
            ),
            {(r.layer, r.metric): r.value for r in rows},
            losses,
            self._probe.batches if self._probe is not None else 0,
            self._lr(),
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
