"""Timing helpers shared by the benchmarks: alternating medians and a forward-pass counter."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from torch import nn

# "cpu" counts this process's CPU time, which a busy neighbour on a shared machine does not
# inflate the way it inflates wall time
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def seconds(fn: Callable[[], object], clock: str = "wall") -> float:
    """Seconds of one call of ``fn`` on ``clock`` (:data:`CLOCKS`: wall or this process's CPU)."""
    now = CLOCKS[clock]
    start = now()
    fn()
    return now() - start


def alternating_medians(
    fns: Mapping[str, Callable[[], object]],
    repeats: int,
    *,
    warm_up: bool = True,
    clock: str = "wall",
) -> dict[str, float]:
    """Median seconds of each function over ``repeats`` rounds, after one warm-up call each.

    Every round calls all functions once; the order rotates every round, so a drift in machine
    speed (a noisy neighbour, thermal throttling) hits every function alike.
    """
    names = list(fns)
    for name in names if warm_up else ():
        fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(seconds(fns[name], clock))
    return {name: statistics.median(times) for name, times in samples.items()}


class ForwardCounter:
    """How many times a model's top-level ``forward`` ran: one per full forward pass."""

    def __init__(self) -> None:
        self.calls = 0


@contextlib.contextmanager
def count_forward(model: nn.Module) -> Iterator[ForwardCounter]:
    """Count the calls of ``model.forward`` inside the block; the wrapper is removed in finally.

    The wrapper is an instance attribute shadowing the class's ``forward``, so ``model(x)`` (and
    every hook ``nn.Module.__call__`` runs) goes through it, whoever makes the call.
    """
    counter = ForwardCounter()
    original = model.forward

    def counted(*args: Any, **kwargs: Any) -> Any:
        counter.calls += 1
        return original(*args, **kwargs)

    model.forward = counted
    try:
        yield counter
    finally:
        del model.forward
