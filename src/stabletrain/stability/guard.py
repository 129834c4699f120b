"""StepGuard: clip, then take the optimizer step only when it is numerically sound.

One call replaces ``clip_grad_norm_(...); optimizer.step(); scheduler.step()``:

1. unscale the gradients if a ``GradScaler`` is given (once: not if the caller already did);
2. measure the total gradient norm once (fused, global under DDP and FSDP);
3. decide: skip when the loss is NaN/inf or a gradient holds NaN/inf; with ``spike_zscore``,
   test the loss and the norm for spikes (robust z-score of their logs over the recent steps,
   :mod:`stabletrain.stability._spikes`) and skip them, or only record them
   (``spike_action="report"``);
4. on a step: clip with the norm already measured, step the optimizer (through the scaler),
   the scaler's ``update()`` and the scheduler; on a skip: clear the gradients, name the
   parameters whose gradients are not finite, ``update()`` the scaler (it backs off its scale
   after an overflow), leave the scheduler alone, and count; after ``max_consecutive_skips``
   skips in a row raise :class:`ConsecutiveSkipsError`.

Finite gradients whose norm overflows. The fused norm sums |g|^p in float32 (for float32,
bfloat16 and float16 gradients), so entries near 1e19 give a norm of inf although nothing is
NaN or inf. On the CPU the norm is recomputed at once as max|g|·‖g/max|g|‖ (no sum can
overflow); on an accelerator an infinite norm sends the step down the fault path, which does the
same for each gradient whose fused norm was inf and so tells the two apart. A gradient that holds
NaN/inf: ``nonfinite_grad``, naming only those parameters. Only finite gradients whose float32
norm is above 1.8e19 (there its square overflows; float64 gradients are exempt): their norm is
finite (or not representable at all), and

- with ``max_norm``, the step is clipped with that norm and taken (unless the spike test, if on,
  calls the norm a spike, as it would any other): the clipped update has norm ``max_norm``
  like any other clipped step, the direction is well defined, and throwing it away would
  treat a large but valid gradient as a fault;
- without ``max_norm`` (or when even the exact norm is not representable), it is skipped as
  ``norm_overflow``: an unclipped update of norm >= 1.8e19 (the square root of float32's
  largest number) would itself make the parameters or Adam's second moments non-finite.

Cost: the decision needs one host–device sync per step (one ``.item()`` on a small integer
code), after the norm kernels are queued; a GradScaler's ``step`` reads its own overflow flag
once more (already computed by then). The fault path (an infinite or NaN norm) adds a few
reads to tell an overflow from a NaN/inf and to name the parameters; the healthy path never
takes it. On CPU a guarded step costs the same as ``clip_grad_norm_`` + ``step`` (within a few
percent), the spike test a few small kernels more (two medians over at most ``window``
numbers per metric). Under ``torch.distributed`` the norm and loss are averaged over the ranks
with one all-reduce of two numbers, so every rank takes the same decision (a NaN on any rank
reaches all; the fault path all-reduces once more), and on an overflow skip the scaler's flags
are set on every rank so all scales back off together.

Skipping a step whose gradients overflow is the rule of dynamic loss scaling (Micikevicius et
al. 2018, "Mixed Precision Training"); skipping the batches behind a loss spike is how PaLM
handled its spikes (Chowdhery et al. 2022, "PaLM", Sec. 5.1), there by restarting from a
checkpoint, here one step at a time.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
from torch import nn

from stabletrain._checks import check_choice, check_positive_int, check_real
from stabletrain._wrappers import unwrap_model
from stabletrain.stability._distributed import GradSet, all_reduce_mean
from stabletrain.stability._guard_state import check_state
from stabletrain.stability._spikes import SPIKE_METRICS, SpikeMetric, Window
from stabletrain.stability.clipping import (
    check_norm_type,
    clip_coefficient,
    nonfinite_names,
    resolve_overflow,
    total_norm,
    use_foreach,
)

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

__all__ = [
    "SKIP_REASONS",
    "SPIKE_ACTIONS",
    "SPIKE_METRICS",
    "ConsecutiveSkipsError",
    "SkipReason",
    "SpikeAction",
    "SpikeMetric",
    "StepGuard",
    "StepResult",
]

SkipReason = Literal[
    "nonfinite_grad", "nonfinite_loss", "norm_overflow", "loss_spike", "grad_norm_spike"
]
SKIP_REASONS: tuple[SkipReason, ...] = (  # in order of precedence
    "nonfinite_grad",
    "nonfinite_loss",
    "norm_overflow",
    "loss_spike",
    "grad_norm_spike",
)
SpikeAction = Literal["skip", "report"]
SPIKE_ACTIONS: tuple[SpikeAction, ...] = ("skip", "report")

# Bits of the decision code, computed on the device and read back once per step.
_NORM_NONFINITE = 1
_LOSS_NONFINITE = 2
_LOSS_SPIKE = 4
_NORM_SPIKE = 8
_NORM_NAN = 16
_LOSS_NEGATIVE = 32  # tested only when the loss spike test is on (finite losses: -inf skips)
_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_LOSS_RECORDABLE = 64  # finite and > 0: enters the loss window if the step is taken
_NORM_RECORDABLE = 128
_NORM_HUGE = 256  # a finite float32 norm whose square overflows float32: see the module docstring
_HUGE_NORM = math.sqrt(torch.finfo(torch.float32).max)  # 1.8e19
_BITS = 9

_ADVICE: dict[SkipReason, str] = {
    "nonfinite_grad": (
        "find the first non-finite value with torch.autograd.set_detect_anomaly(True); check the "
        "inputs and labels for NaN; lower the learning rate or clip (max_norm); in float16 use a "
        "GradScaler, or bfloat16; then resume from the last good checkpoint."
    ),
    "nonfinite_loss": (
        "check the batch (NaN inputs, empty masks, log(0) in the loss), lower the learning rate, "
        "then resume from the last good checkpoint."
    ),
    "loss_spike": (
        "the loss moved to a level the window treats as a spike: lower the learning rate (or "
        "lengthen its warm-up), raise spike_zscore or window, or resume from a checkpoint "
        "before the spike and skip the offending batches."
    ),
    "grad_norm_spike": (
        "the gradient norm moved to a level the window treats as a spike: lower the learning "
        "rate, clip (max_norm), raise spike_zscore or window, or resume from a checkpoint."
    ),
    "norm_overflow": (
        "the gradients are finite but their norm is beyond what float32 can sum (above ~1.8e19): "
        "the model is diverging. Set max_norm so that such steps are clipped instead of skipped, "
        "lower the learning rate, or resume from the last good checkpoint."
    ),
}


class ConsecutiveSkipsError(RuntimeError):
    """Too many optimizer steps were skipped in a row: training is not recovering by itself.

    Attributes:
        consecutive_skips: how many steps in a row were skipped.
        reason: why the last one was.
        nonfinite_params: the parameters named on the last skip.
    """

    def __init__(
        self, message: str, consecutive_skips: int, reason: SkipReason, params: tuple[str, ...]
    ) -> None:
        super().__init__(message)
        self.consecutive_skips = consecutive_skips
        self.reason = reason
        self.nonfinite_params = params


@dataclass(frozen=True)
class StepResult:
    """What :meth:`StepGuard.step` did.

    Attributes:
        stepped: whether ``optimizer.step()`` ran.
        total_norm: the gradient norm before clipping (0-d device tensor, global over ranks).
        reason: why the step was skipped, or None.
        nonfinite_params: the first parameters whose gradient holds NaN/inf on this rank
            (empty if the fault was on another rank or in the loss; never a parameter whose
            gradient is finite, even if the norm overflowed).
        spike: the spike detected at this step (``"loss_spike"`` or ``"grad_norm_spike"``),
            whether it was skipped or, with ``spike_action="report"``, only recorded.
    """

    stepped: bool
    total_norm: torch.Tensor
    reason: SkipReason | None = None
    nonfinite_params: tuple[str, ...] = ()
    spike: SkipReason | None = None


class _Steppable(Protocol):
    def step(self) -> Any: ...


class StepGuard:
    """Clip the gradients and take the optimizer step only if it is finite and no spike.

    Usage: ``loss.backward(); result = guard.step(loss); optimizer.zero_grad()`` (with a
    scaler: ``scaler.scale(loss).backward(); guard.step(loss)``, passing the unscaled loss;
    the guard calls ``scaler.unscale_``, ``scaler.step`` and ``scaler.update``).

    Args:
        optimizer: any ``torch.optim.Optimizer``; its parameters' gradients are guarded.
        max_norm: clip the total gradient norm to this (``clip_grad_norm_``), None: no clipping.
        norm_type: p of the norm (> 0 or inf).
        scaler: a ``torch.amp.GradScaler`` (float16): unscaled once, stepped and updated here.
        scheduler: stepped after each optimizer step, never on a skipped one.
        spike_zscore: a spike is a robust z-score of log(loss) or log(norm) above this, against
            the last ``window`` recorded values (median and MAD, see
            :mod:`stabletrain.stability._spikes`). Recommended: 6.0, which skipped none of the
            40,500 steps of 27 healthy 1500-step runs (MLP, CNN, tanh net on digits; SGD and
            Adam; batch 4, 32, 128; 3 seeds; 4.0 skipped 0.017%, at most 0.13% of a run), and
            catches a x100 jump wherever the healthy spread of log values is below 0.77 (in
            those runs: batch 32 and up, after the first ~200 steps). A batch of 4 varies its
            loss by x100 on its own, so no threshold tells a x100 spike from noise there.
            None: no spike test.
        spike_on: which metrics the spike test watches (the loss only when ``step`` gets one;
            it must be >= 0: log(loss) is compared).
        spike_action: ``"skip"`` (default) skips a spike's step and keeps its value out of the
            window; ``"report"`` only records it (``StepResult.spike``,
            :attr:`spikes_detected`) and takes the step, whose value then enters the window.
            Report first to see what a threshold would skip on your run.
        window: how many recorded values the spike statistics remember.
        min_history: the warm-up: values recorded before spikes are tested, in [2, window]
            (None: min(20, window)).
        max_consecutive_skips: raise :class:`ConsecutiveSkipsError` after this many skips in a
            row (None: never). With a GradScaler starting at 2**16, 16 back-offs already
            reach a scale of 1, so 25 skips in a row mean the scale is not the problem.
        model: the model (or its ``named_parameters()``) to name parameters in skip reports.
        process_group: ranks that decide together (default: all, when distributed).
        foreach: fused kernels (None: whenever possible).

    Attributes (read-only): ``skipped_steps`` (total), ``consecutive_skips``,
    ``spikes_detected`` (skipped or reported), ``last_total_norm`` (device tensor, no sync),
    ``last_skip_reason``, ``last_result``.

    Values recorded in the spike windows: the loss and the norm of each step taken, when finite
    and > 0 (a zero loss or norm has no log and is never a spike).

    Example:
        >>> from torch import nn
        >>> model = nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> guard = StepGuard(opt, max_norm=1.0, model=model)
        >>> model(torch.ones(1, 2)).sum().backward()
        >>> model.weight.grad[0, 0] = float("nan")
        >>> result = guard.step()
        >>> result.stepped, result.reason, result.nonfinite_params
        (False, 'nonfinite_grad', ('weight',))
        >>> guard.skipped_steps
        1
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scaler: torch.amp.GradScaler | None = None,
        scheduler: _Steppable | None = None,
        spike_zscore: float | None = None,
        spike_on: Collection[SpikeMetric] = SPIKE_METRICS,
        spike_action: SpikeAction = "skip",
        window: int = 100,
        min_history: int | None = None,
        max_consecutive_skips: int | None = 25,
        model: nn.Module | Iterable[tuple[str, torch.Tensor]] | None = None,
        process_group: ProcessGroup | None = None,
        foreach: bool | None = None,
    ) -> None:
        where = "StepGuard"
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"{where}: optimizer must be a torch.optim.Optimizer, got "
                f"{type(optimizer).__name__}; build the optimizer first and pass it."
            )
        self.optimizer = optimizer
        self.max_norm = (
            None
            if max_norm is None
            else check_real("max_norm", max_norm, where=where, positive=True)
        )
        self.norm_type = check_norm_type(norm_type, where=where)
        if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
            raise TypeError(
                f"{where}: scaler must be a torch.amp.GradScaler, got {type(scaler).__name__}."
            )
        self.scaler = scaler
        if scheduler is not None and not callable(getattr(scheduler, "step", None)):
            raise TypeError(f"{where}: scheduler has no step() method: {scheduler!r}.")
        self.scheduler = scheduler
        self.spike_zscore = (
            None
            if spike_zscore is None
            else check_real("spike_zscore", spike_zscore, where=where, positive=True)
        )
        on = (spike_on,) if isinstance(spike_on, str) else tuple(spike_on)
        self.spike_on = tuple(check_choice("spike_on", m, SPIKE_METRICS, where=where) for m in on)
        self.spike_action = check_choice("spike_action", spike_action, SPIKE_ACTIONS, where=where)
        self.window = check_positive_int("window", window, where=where)
        if self.window < 2:
            raise ValueError(f"{where}: window={window} must be >= 2: a z-score needs two values.")
        self.min_history = (
            min(20, self.window)
            if min_history is None
            else check_positive_int("min_history", min_history, where=where)
        )
        if not 2 <= self.min_history <= self.window:
            raise ValueError(
                f"{where}: min_history={min_history} must lie in [2, window={window}]: a z-score "
                "needs two values; raise window or lower min_history."
            )
        self.max_consecutive_skips = (
            None
            if max_consecutive_skips is None
            else check_positive_int("max_consecutive_skips", max_consecutive_skips, where=where)
        )
        self._names = _parameter_names(
            unwrap_model(model) if isinstance(model, nn.Module) else model, where=where
        )
        self.process_group = process_group
        use_foreach(foreach, where=where)  # checked here, not at the first step
        self.foreach = foreach
        self._windows = {m: Window(self.window, self.min_history) for m in SPIKE_METRICS}
        self._steps = 0
        self._skipped = 0
        self._consecutive = 0
        self._spikes = 0
        self._last_result: StepResult | None = None
        self._bits: dict[torch.device, torch.Tensor] = {}  # 2**i for bit i of the decision code

    # --- read-only state, for monitors ----------------------------------------------------

    @property
    def steps(self) -> int:
        """Calls of :meth:`step` so far (taken or skipped)."""
        return self._steps

    @property
    def skipped_steps(self) -> int:
        """Skipped steps in total."""
        return self._skipped

    @property
    def consecutive_skips(self) -> int:
        """Skipped steps since the last step taken."""
        return self._consecutive

    @property
    def spikes_detected(self) -> int:
        """Steps at which a spike was detected, skipped or (``spike_action="report"``) taken."""
        return self._spikes

    @property
    def last_total_norm(self) -> torch.Tensor | None:
        """The last gradient norm measured (before clipping), a device tensor; None before."""
        return None if self._last_result is None else self._last_result.total_norm

    @property
    def last_skip_reason(self) -> SkipReason | None:
        """Why the last call skipped, or None if it stepped (or before the first call)."""
        return None if self._last_result is None else self._last_result.reason

    @property
    def last_result(self) -> StepResult | None:
        """The :class:`StepResult` of the last call."""
        return self._last_result

    # --- the step ---------------------------------------------------------------------------

    def step(self, loss: torch.Tensor | float | None = None) -> StepResult:
        """Clip and step, or skip; see the class docstring. ``loss``: this step's (unscaled) loss.

        Under ``torch.distributed`` every rank of the group must call it, all with a loss or
        all without.

        Raises:
            TypeError: the loss is not a real number or a real tensor (a complex loss, say).
            ValueError: the loss is finite and negative while the loss spike test is on (nothing
                was done); a loss of -inf is not finite and skips the step as any other.
            ConsecutiveSkipsError: ``max_consecutive_skips`` skips in a row.
        """
        if loss is not None:
            self._check_loss(loss)
        scaler = self.scaler if self.scaler is not None and self.scaler.is_enabled() else None
        if scaler is not None:
            self._unscale(scaler)
        grads = [
            p.grad for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None
        ]
        gradset = GradSet(grads, use_foreach(self.foreach, where="StepGuard.step"))
        norms = gradset.norms(self.norm_type)
        local = total_norm(norms, self.norm_type)
        reduced_loss = None
        if loss is None:
            norm = all_reduce_mean(local.reshape(1), self.process_group)[0]
        else:
            own = self._loss(loss, local.device).to(local.dtype).reshape(1)
            norm, reduced_loss = all_reduce_mean(
                torch.cat([local.reshape(1), own]), self.process_group
            )
        code = int(self._decision(norm, reduced_loss).item())  # the one host read
        bad = None
        if code & _NORM_NONFINITE:  # the fault path: NaN/inf gradients, or an overflowed sum?
            norm, bad = self._resolve(gradset, norms)
            code = int(self._decision(norm, reduced_loss).item())
        if code & _LOSS_NEGATIVE:
            value = math.nan if reduced_loss is None else float(reduced_loss)
            raise ValueError(
                f"StepGuard.step: the loss is negative ({value:g}), but the "
                "loss spike test compares log(loss). Watch the gradient norm only "
                "(spike_on=('grad_norm',)) or shift the loss to be >= 0."
            )
        overflowed = bool(code & _NORM_HUGE) or (bad is not None and not code & _NORM_NAN)
        spike: SkipReason | None = None
        if code & (_LOSS_SPIKE | _NORM_SPIKE) and not code & (_NORM_NONFINITE | _LOSS_NONFINITE):
            spike = "loss_spike" if code & _LOSS_SPIKE else "grad_norm_spike"
            self._spikes += 1
        reason = self._reason(code, overflowed, spike)
        if reason is None:
            result = StepResult(True, norm, spike=spike)
            self._take(gradset, norm, scaler, reduced_loss, code)
        else:
            named = []
            if reason == "nonfinite_grad" and bad is not None:
                named = nonfinite_names(self._grad_names(), bad)
            result = StepResult(False, norm, reason, tuple(named), spike)
            self._skip(scaler, overflow=reason == "nonfinite_grad")
        self._steps += 1
        self._last_result = result
        if reason is not None:
            self._check_consecutive(result)
        return result

    def _resolve(self, gradset: GradSet, norms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The fault path: the global norm with overflowed gradient norms recomputed exactly,
        NaN if a gradient holds NaN/inf on any rank; and this rank's mask of such gradients."""
        norms, bad = resolve_overflow(gradset, norms, self.norm_type)
        local = total_norm(norms, self.norm_type)
        poisoned = torch.where(bad.any(), torch.full_like(local, math.nan), local)
        return all_reduce_mean(poisoned.reshape(1), self.process_group)[0], bad

    def _reason(self, code: int, overflowed: bool, spike: SkipReason | None) -> SkipReason | None:
        """Why to skip, in the order of :data:`SKIP_REASONS`; None: take the step."""
        if code & _NORM_NAN or (code & _NORM_NONFINITE and not overflowed):
            return "nonfinite_grad"
        if code & _LOSS_NONFINITE:
            return "nonfinite_loss"
        # an overflowed norm that is finite now is clipped and stepped, if there is a max_norm
        if overflowed and (self.max_norm is None or code & _NORM_NONFINITE):
            return "norm_overflow"
        if spike is not None and self.spike_action == "skip":
            return spike
        return None

    def _unscale(self, scaler: torch.amp.GradScaler) -> None:
        # GradScaler keeps a per-optimizer stage (READY / UNSCALED / STEPPED); unscaling twice
        # would divide the gradients twice, so respect an unscale_ the caller already did.
        state = _scaler_state(scaler, self.optimizer)
        stage = getattr(state.get("stage"), "name", None)
        if stage == "UNSCALED":
            return
        if stage == "STEPPED":
            raise RuntimeError(
                "StepGuard.step: scaler.step(optimizer) was already called this iteration; call "
                "guard.step(loss) instead of scaler.step and scaler.update, not in addition."
            )
        scaler.unscale_(self.optimizer)

    def _mark_overflow(self, scaler: torch.amp.GradScaler) -> None:
        # The scaler's overflow flags come from this rank's gradients only: a NaN on another
        # rank (a sharded gradient, or one poisoned after DDP's all-reduce) would back off the
        # scale on some ranks and grow it on others. The decision is global, so are the flags.
        state = _scaler_state(scaler, self.optimizer)
        for found_inf in state.get("found_inf_per_device", {}).values():
            found_inf.fill_(1.0)

    @staticmethod
    def _check_loss(loss: torch.Tensor | float) -> None:
        """Raise before anything is done if ``loss`` is not a real scalar."""
        if isinstance(loss, torch.Tensor):
            if not (loss.is_floating_point() or loss.dtype in _INTEGER_DTYPES):
                raise TypeError(
                    f"StepGuard.step: loss must be a real tensor, got dtype {loss.dtype}; "
                    "pass the real-valued loss that backward() was called on (for a complex "
                    "objective, its real part or its absolute value)."
                )
            if loss.numel() != 1:
                raise ValueError(
                    f"StepGuard.step: loss must be a scalar, got shape {tuple(loss.shape)}; "
                    "pass the reduced loss (loss.mean())."
                )
        elif isinstance(loss, bool) or not isinstance(loss, int | float):
            raise TypeError(
                f"StepGuard.step: loss must be a tensor or a number, got {type(loss).__name__}."
            )

    def _loss(self, loss: torch.Tensor | float, device: torch.device) -> torch.Tensor:
        if isinstance(loss, torch.Tensor):
            return loss.detach().reshape(()).to(device=device, dtype=torch.float32)
        return torch.tensor(float(loss), dtype=torch.float32, device=device)

    def _decision(self, norm: torch.Tensor, loss: torch.Tensor | None) -> torch.Tensor:
        """The decision code (the ``_NORM_*`` / ``_LOSS_*`` bits), computed on the device."""
        none = torch.zeros((), dtype=torch.bool, device=norm.device)
        testing = self.spike_zscore is not None
        flags = {
            _NORM_NONFINITE: ~torch.isfinite(norm),
            _NORM_NAN: torch.isnan(norm),
            _NORM_RECORDABLE: torch.isfinite(norm) & (norm > 0),
        }
        if norm.dtype != torch.float64:
            flags[_NORM_HUGE] = torch.isfinite(norm) & (norm > _HUGE_NORM)
        if loss is not None:
            flags[_LOSS_NONFINITE] = ~torch.isfinite(loss)
            flags[_LOSS_RECORDABLE] = torch.isfinite(loss) & (loss > 0)
            if testing and "loss" in self.spike_on:
                flags[_LOSS_NEGATIVE] = torch.isfinite(loss) & (loss < 0)  # -inf: non-finite
        tests: tuple[tuple[int, SpikeMetric, torch.Tensor | None], ...] = (
            (_LOSS_SPIKE, "loss", loss),
            (_NORM_SPIKE, "grad_norm", norm),
        )
        for bit, metric, value in tests:
            if testing and metric in self.spike_on and value is not None:
                z = self._windows[metric].zscore(value)
                if z is not None and self.spike_zscore is not None:
                    flags[bit] = z > self.spike_zscore
        if norm.device not in self._bits:
            self._bits[norm.device] = torch.tensor(
                [1 << i for i in range(_BITS)], device=norm.device
            )
        stacked = torch.stack([flags.get(1 << i, none) for i in range(_BITS)])
        return (stacked.to(torch.long) * self._bits[norm.device]).sum()

    def _grad_names(self) -> list[str]:
        """Names of the parameters with a gradient, in the order :meth:`step` measured them."""
        return [
            self._names.get(id(p), f"param_groups[{gi}][{pi}]")
            for gi, group in enumerate(self.optimizer.param_groups)
            for pi, p in enumerate(group["params"])
            if p.grad is not None
        ]

    def _take(
        self,
        gradset: GradSet,
        norm: torch.Tensor,
        scaler: torch.amp.GradScaler | None,
        loss: torch.Tensor | None,
        code: int,
    ) -> None:
        if self.max_norm is not None and len(gradset):
            gradset.scale_(clip_coefficient(norm, self.max_norm))
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self._consecutive = 0
        if self.spike_zscore is not None:
            if code & _NORM_RECORDABLE:
                self._windows["grad_norm"].push(norm)
            if loss is not None and code & _LOSS_RECORDABLE:
                self._windows["loss"].push(loss)

    def _skip(self, scaler: torch.amp.GradScaler | None, overflow: bool) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            if overflow:
                self._mark_overflow(scaler)
            scaler.update()  # backs off the scale after an overflow
        self._skipped += 1
        self._consecutive += 1

    def _check_consecutive(self, result: StepResult) -> None:
        limit = self.max_consecutive_skips
        if limit is None or self._consecutive < limit or result.reason is None:
            return
        where = f" in {', '.join(result.nonfinite_params)}" if result.nonfinite_params else ""
        raise ConsecutiveSkipsError(
            f"StepGuard: {self._consecutive} optimizer steps skipped in a row "
            f"(max_consecutive_skips={limit}); last reason: {result.reason}{where}, gradient "
            f"norm {result.total_norm.item():g}. Training is not recovering by itself. What to "
            f"do: {_ADVICE[result.reason]}",
            self._consecutive,
            result.reason,
            result.nonfinite_params,
        )

    # --- checkpointing ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Counters and spike windows (CPU tensors, oldest first), to resume exactly."""
        return {
            "steps": self._steps,
            "skipped_steps": self._skipped,
            "consecutive_skips": self._consecutive,
            "spikes_detected": self._spikes,
            "windows": {m: w.history() for m, w in self._windows.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output, checked first: nothing changes if it is wrong.

        Windows longer than ``window`` keep their last values; ``spikes_detected`` may be
        absent (state saved by an older version), values <= 0 in a window are dropped.

        Raises:
            TypeError: ``state`` is not a mapping, or a value has the wrong type (named).
            ValueError: a key is missing or unknown, or a value is out of range (named).
        """
        counters, windows = check_state(state)
        self._steps, self._skipped, self._consecutive, self._spikes = counters
        for metric, history in windows.items():
            self._windows[metric].load(history)

    def __repr__(self) -> str:
        return (
            f"StepGuard(max_norm={self.max_norm}, spike_zscore={self.spike_zscore}, "
            f"steps={self._steps}, skipped_steps={self._skipped}, "
            f"consecutive_skips={self._consecutive}, spikes_detected={self._spikes})"
        )


def _parameter_names(
    model: nn.Module | Iterable[tuple[str, torch.Tensor]] | None, *, where: str
) -> dict[int, str]:
    if model is None:
        return {}
    if isinstance(model, nn.Module):
        pairs: Iterable[Any] = model.named_parameters()
    elif isinstance(model, Iterable) and not isinstance(model, str | bytes | torch.Tensor):
        pairs = model
    else:
        raise TypeError(
            f"{where}: model must be an nn.Module or (name, parameter) pairs as from "
            f"model.named_parameters(), got {type(model).__name__}."
        )
    names: dict[int, str] = {}
    for item in pairs:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(
                f"{where}: model must be an nn.Module or (name, parameter) pairs as from "
                f"model.named_parameters(), got an element {item!r:.60}."
            )
        names.setdefault(id(item[1]), item[0])
    return names


def _scaler_state(
    scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer
) -> Mapping[str, Any]:
    """The scaler's bookkeeping for ``optimizer`` (its stage, its overflow flags); {} if absent."""
    states = getattr(scaler, "_per_optimizer_states", None)
    state = states.get(id(optimizer)) if isinstance(states, Mapping) else None
    return state if isinstance(state, Mapping) else {}
