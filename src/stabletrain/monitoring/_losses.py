"""Every step's loss, kept on the device, and its NaN/inf values found without a synchronization.

``TrainingMonitor.step`` receives the loss of every step, logged or not, and copies it into a
ring of the last ``window`` losses on the device (one small copy, no synchronization; the
plateau rule reads the ring). A non-finite loss on a step the schedule does not log is found
*lazily*, and reported with its own step number:

- at the next logged step: that step's single device-to-host copy carries the ring anyway, so
  the losses not checked yet are read from it at no cost;
- if ``window`` losses arrive before the next logged step, the oldest unchecked one is about to
  be overwritten: the ring is first copied to the host *asynchronously* (on CUDA:
  ``non_blocking`` into pinned memory, with an event), and that copy is read at the next logged
  step or the next wrap, ``window`` steps later, when it has long completed, so waiting on its
  event costs nothing (on the CPU the copy is immediate; on other accelerators it is a plain
  copy, one per ``window`` unlogged steps);
- at the end of the run, what is still unchecked (one read of the ring).

Why not a device-side flag (``flag |= ~isfinite(loss)`` every step): that adds several kernel
launches to every step, logged or not, and a flag alone loses the step number; the lazy check
adds only Python bookkeeping to an unlogged step, and reports each non-finite loss with its step.

A loss passed as a Python number on an unlogged step needs no device: the monitor checks it at
once (``check=False`` here). The loss of a logged step is checked by the rules on that step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class _Spill:
    """An asynchronous host copy of the whole ring, made before it wraps."""

    values: torch.Tensor  # on the host; complete once ``event`` has completed
    event: torch.cuda.Event | None
    steps: list[int]  # the step of each slot
    check: list[bool]  # whether each slot still needs checking


class LossRing:
    """The last ``window`` losses on ``device``; which of them were checked for NaN/inf."""

    def __init__(self, window: int, device: torch.device) -> None:
        self.window = window
        self.values = torch.full((window,), math.nan, dtype=torch.float64, device=device)
        self.count = 0  # losses recorded
        self._steps = [0] * window  # the step of each slot
        self._check = [False] * window  # whether each slot's loss still needs checking
        self._checked = 0  # losses [0, _checked) were checked or spilled
        self._spill: _Spill | None = None

    def push(
        self, step: int, value: torch.Tensor | float, *, check: bool
    ) -> tuple[int, list[tuple[int, float]]]:
        """Record the loss of ``step`` (a 0-d tensor or a number); ``check``: whether it is
        left for the lazy check. Returns its slot and the non-finite losses ``(step, value)``
        found now in an earlier spill (only when the ring wraps)."""
        found: list[tuple[int, float]] = []
        if self.count - self._checked >= self.window:  # the slot holds an unchecked loss
            found = self._collect()
            self._spill = self._copy_out()
            self._checked = self.count
        slot = self.count % self.window
        if isinstance(value, torch.Tensor):
            self.values[slot].copy_(value, non_blocking=True)
        else:
            self.values[slot] = value
        self._steps[slot] = step
        self._check[slot] = check
        self.count += 1
        return slot, found

    def nonfinite(self, values: list[float]) -> list[tuple[int, float]]:
        """The unchecked non-finite losses, oldest first, given the ring's ``values`` on the
        host (a logged step's copy); every loss so far then counts as checked."""
        found = self._collect()
        fresh = []
        for k in range(self._checked, self.count):
            slot = k % self.window
            if self._check[slot] and not math.isfinite(values[slot]):
                fresh.append((self._steps[slot], values[slot]))
        self._checked = self.count
        return found + fresh

    def flush(self) -> list[tuple[int, float]]:
        """:meth:`nonfinite` at the end of a run: reads the ring from the device."""
        if self._spill is None and self._checked == self.count:
            return []
        values: list[float] = self.values.tolist()
        return self.nonfinite(values)

    def chronological(self, values: list[float]) -> tuple[float, ...]:
        """The ring's ``values`` (on the host) oldest first: the last ``window`` losses."""
        count = min(self.count, self.window)
        start = self.count % self.window if self.count >= self.window else 0
        return tuple(values[start:] + values[:start])[:count]

    def _copy_out(self) -> _Spill:
        device = self.values.device
        event = None
        if device.type == "cpu":
            host = self.values.clone()
        elif device.type == "cuda":  # into pinned memory, in stream order: the host goes on
            host = self.values.to("cpu", non_blocking=True)
            event = torch.cuda.Event()  # type: ignore[no-untyped-call]
            event.record(torch.cuda.current_stream(device))
        else:  # other accelerators: a plain copy, once per ``window`` unlogged steps
            host = self.values.cpu()
        return _Spill(host, event, list(self._steps), list(self._check))

    def _collect(self) -> list[tuple[int, float]]:
        spill, self._spill = self._spill, None
        if spill is None:
            return []
        if spill.event is not None:
            spill.event.synchronize()  # recorded a whole ring of steps ago: long complete
        values: list[float] = spill.values.tolist()
        order = sorted(range(self.window), key=spill.steps.__getitem__)
        return [
            (spill.steps[slot], values[slot])
            for slot in order
            if spill.check[slot] and not math.isfinite(values[slot])
        ]
