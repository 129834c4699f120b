"""StepGuard: clip, then take the optimizer step only when it is numerically sound.

One call replaces ``clip_grad_norm_(...); optimizer.step(); scheduler.step()``:

1. unscale the gradients if a ``GradScaler`` is given (once: not if the caller already did);
2. measure the total gradient norm once (fused, global under DDP and FSDP);
3. decide: skip when the norm or the loss is NaN/inf, or, with ``spike_zscore``, when the loss
   or the norm is a spike: z = (x − mean) / std over the last ``window`` values of accepted
   steps, kept on the device, exceeds ``spike_zscore``;
4. on a step: clip with the norm already measured, step the optimizer (through the scaler),
   the scaler's ``update()`` and the scheduler; on a skip: clear the gradients, name the
   parameters whose gradients are not finite, ``update()`` the scaler (it backs off its scale
   after an overflow), leave the scheduler alone, and count; after ``max_consecutive_skips``
   skips in a row raise :class:`ConsecutiveSkipsError`.

Spike statistics: one-sided z = (x − mean) / max(std, 0.01·|mean|) over the window (the floor
keeps a flat history from turning noise into spikes); skipped values never enter the window, so
a lasting jump to a new level is skipped until ``max_consecutive_skips`` raises.

Cost: the decision needs one host–device sync per step (one ``.item()`` on a small integer
code), after the norm kernels are queued; a GradScaler's ``step`` reads its own overflow flag
once more (already computed by then). The skip path adds one sync to name the parameters. On
CPU a guarded step costs the same as ``clip_grad_norm_`` + ``step`` (within a few percent), the
spike test a few small kernels more. Under ``torch.distributed`` the norm and loss are averaged
over the ranks with one all-reduce of two numbers, so every rank takes the same decision (a NaN
on any rank reaches all), and on an overflow skip the scaler's flags are set on every rank so
all scales back off together.

Skipping a step whose gradients overflow is the rule of dynamic loss scaling (Micikevicius et
al. 2018, "Mixed Precision Training"); skipping the batches behind a loss spike is how PaLM
handled its spikes (Chowdhery et al. 2022, "PaLM", Sec. 5.1), there by restarting from a
checkpoint, here one step at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
from torch import nn

from stabletrain._checks import check_choice, check_positive_int, check_real
from stabletrain.stability._distributed import GradSet, all_reduce_mean
from stabletrain.stability.clipping import (
    check_norm_type,
    clip_coefficient,
    nonfinite_names,
    total_norm,
    use_foreach,
)

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

__all__ = [
    "SKIP_REASONS",
    "SPIKE_METRICS",
    "ConsecutiveSkipsError",
    "SkipReason",
    "SpikeMetric",
    "StepGuard",
    "StepResult",
]

SkipReason = Literal["nonfinite_grad", "nonfinite_loss", "loss_spike", "grad_norm_spike"]
SKIP_REASONS: tuple[SkipReason, ...] = (  # in order of precedence, bit i of the decision code
    "nonfinite_grad",
    "nonfinite_loss",
    "loss_spike",
    "grad_norm_spike",
)
SpikeMetric = Literal["loss", "grad_norm"]
SPIKE_METRICS: tuple[SpikeMetric, ...] = ("loss", "grad_norm")

_REL_STD_FLOOR = 0.01  # std is at least 1% of |mean|: a flat history does not make noise a spike

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
            (empty if the fault was on another rank or in the loss).
    """

    stepped: bool
    total_norm: torch.Tensor
    reason: SkipReason | None = None
    nonfinite_params: tuple[str, ...] = ()


class _Steppable(Protocol):
    def step(self) -> Any: ...


class _Window:
    """The last ``size`` accepted values of one metric, in a ring buffer on the device."""

    def __init__(self, size: int, min_history: int) -> None:
        self.size, self.min_history = size, min_history
        self.values: torch.Tensor | None = None  # allocated on first use, on the metric's device
        self.count = 0  # values held, <= size
        self.next = 0  # where the next value goes

    def zscore(self, x: torch.Tensor) -> torch.Tensor | None:
        """(x − mean) / max(std, 1% |mean|) over the window, None until it holds enough."""
        if self.values is None or self.count < self.min_history:
            return None
        self.values = self.values.to(x.device)
        std, mean = torch.std_mean(self.values[: self.count])
        floor = (_REL_STD_FLOOR * mean.abs()).clamp_min(torch.finfo(mean.dtype).tiny)
        return (x.to(mean.dtype) - mean) / torch.maximum(std, floor)

    def push(self, x: torch.Tensor) -> None:
        if self.values is None:
            self.values = torch.zeros(self.size, dtype=torch.float32, device=x.device)
        self.values = self.values.to(x.device)
        self.values[self.next].copy_(x)
        self.next = (self.next + 1) % self.size
        self.count = min(self.count + 1, self.size)

    def history(self) -> torch.Tensor:
        """The values held, oldest first, on the CPU."""
        if self.values is None or self.count == 0:
            return torch.zeros(0)
        if self.count < self.size:
            return self.values[: self.count].cpu()
        return torch.cat([self.values[self.next :], self.values[: self.next]]).cpu()

    def load(self, history: torch.Tensor) -> None:
        recent = history.detach().to(torch.float32).flatten()[-self.size :]
        self.values = torch.zeros(self.size, dtype=torch.float32)
        self.values[: recent.numel()] = recent
        self.count = recent.numel()
        self.next = self.count % self.size


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
        spike_zscore: skip when the z-score of the loss or of the norm over the window exceeds
            this (e.g. 6.0); None: no spike test.
        spike_on: which metrics the spike test watches (the loss only when ``step`` gets one).
        window: how many accepted steps the spike statistics remember.
        min_history: values needed before spikes are tested, in [2, window] (None:
            min(10, window)).
        max_consecutive_skips: raise :class:`ConsecutiveSkipsError` after this many skips in a
            row (None: never). With a GradScaler starting at 2**16, 16 back-offs already
            reach a scale of 1, so 25 skips in a row mean the scale is not the problem.
        model: the model (or its ``named_parameters()``) to name parameters in skip reports.
        process_group: ranks that decide together (default: all, when distributed).
        foreach: fused kernels (None: whenever possible).

    Attributes (read-only): ``skipped_steps`` (total), ``consecutive_skips``,
    ``last_total_norm`` (device tensor, no sync), ``last_skip_reason``, ``last_result``.

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
        self.window = check_positive_int("window", window, where=where)
        if self.window < 2:
            raise ValueError(f"{where}: window={window} must be >= 2: a z-score needs two values.")
        self.min_history = (
            min(10, self.window)
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
        self._names = _parameter_names(model, where=where)
        self.process_group = process_group
        self.foreach = foreach
        self._windows = {m: _Window(self.window, self.min_history) for m in SPIKE_METRICS}
        self._steps = 0
        self._skipped = 0
        self._consecutive = 0
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
        """
        scaler = self.scaler if self.scaler is not None and self.scaler.is_enabled() else None
        if scaler is not None:
            self._unscale(scaler)
        grads = [
            p.grad for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None
        ]
        gradset = GradSet(grads, use_foreach(self.foreach, where="StepGuard.step"))
        norms = gradset.norms(self.norm_type)
        local = total_norm(norms, self.norm_type)
        measured = local.reshape(1)
        if loss is not None:
            measured = torch.cat(
                [measured, self._loss(loss, local.device).to(local.dtype).reshape(1)]
            )
        values = all_reduce_mean(measured, self.process_group)
        norm, reduced_loss = values[0], None if loss is None else values[1]
        code = int(self._decision(norm, reduced_loss).item())  # the one host read
        reason = next((r for i, r in enumerate(SKIP_REASONS) if code >> i & 1), None)
        if reason is None:
            result = StepResult(True, norm)
            self._take(gradset, norm, scaler, reduced_loss)
        else:
            bad = nonfinite_names(self._grad_names(), norms) if reason == "nonfinite_grad" else []
            result = StepResult(False, norm, reason, tuple(bad))
            self._skip(scaler, overflow=reason == "nonfinite_grad")
        self._steps += 1
        self._last_result = result
        if reason is not None:
            self._check_consecutive(result)
        return result

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

    def _loss(self, loss: torch.Tensor | float, device: torch.device) -> torch.Tensor:
        if isinstance(loss, torch.Tensor):
            if loss.numel() != 1:
                raise ValueError(
                    f"StepGuard.step: loss must be a scalar, got shape {tuple(loss.shape)}; "
                    "pass the reduced loss (loss.mean())."
                )
            return loss.detach().reshape(()).to(device=device, dtype=torch.float32)
        if isinstance(loss, bool) or not isinstance(loss, int | float):
            raise TypeError(
                f"StepGuard.step: loss must be a tensor or a number, got {type(loss).__name__}."
            )
        return torch.tensor(float(loss), dtype=torch.float32, device=device)

    def _decision(self, norm: torch.Tensor, loss: torch.Tensor | None) -> torch.Tensor:
        """The skip code, bit i set for ``SKIP_REASONS[i]``, computed on the device."""
        none = torch.zeros((), dtype=torch.bool, device=norm.device)
        flags = [~torch.isfinite(norm), none if loss is None else ~torch.isfinite(loss)]
        metrics: tuple[tuple[SpikeMetric, torch.Tensor | None], ...] = (
            ("loss", loss),
            ("grad_norm", norm),
        )
        for metric, value in metrics:
            z = None
            if self.spike_zscore is not None and metric in self.spike_on and value is not None:
                z = self._windows[metric].zscore(value)
            flags.append(none if z is None or self.spike_zscore is None else z > self.spike_zscore)
        if norm.device not in self._bits:
            self._bits[norm.device] = torch.tensor([1, 2, 4, 8], device=norm.device)
        bits = self._bits[norm.device]
        return (torch.stack(flags).to(bits.dtype) * bits).sum()

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
            self._windows["grad_norm"].push(norm)
            if loss is not None:
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
            "windows": {m: w.history() for m, w in self._windows.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (windows longer than ``window`` keep the last)."""
        keys = {"steps", "skipped_steps", "consecutive_skips", "windows"}
        if not isinstance(state, Mapping) or not keys <= set(state):
            raise ValueError(
                "StepGuard.load_state_dict: expected the dict of StepGuard.state_dict() with keys "
                f"{sorted(keys)}, got {type(state).__name__}"
                f"{'' if not isinstance(state, Mapping) else ' with ' + str(sorted(state))}."
            )
        self._steps = int(state["steps"])
        self._skipped = int(state["skipped_steps"])
        self._consecutive = int(state["consecutive_skips"])
        for metric, history in state["windows"].items():
            check_choice("window metric", metric, SPIKE_METRICS, where="StepGuard.load_state_dict")
            self._windows[metric].load(torch.as_tensor(history))

    def __repr__(self) -> str:
        return (
            f"StepGuard(max_norm={self.max_norm}, spike_zscore={self.spike_zscore}, "
            f"steps={self._steps}, skipped_steps={self._skipped}, "
            f"consecutive_skips={self._consecutive})"
        )


def _parameter_names(
    model: nn.Module | Iterable[tuple[str, torch.Tensor]] | None, *, where: str
) -> dict[int, str]:
    if model is None:
        return {}
    pairs = model.named_parameters() if isinstance(model, nn.Module) else model
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
