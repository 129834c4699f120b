"""When the monitor measures: schedules are ``step -> bool`` callables (as in Cockpit).

Steps count the calls of :meth:`~stabletrain.monitoring.TrainingMonitor.step`, from 1: the first
training step is step 1. A schedule returns whether a step is *logged*: on logged steps the
monitor reads gradients, weights and activations and writes rows to its sinks; on the other
steps it only records the loss (one tiny device copy) and does nothing else.

Any callable taking the step and returning a bool works, e.g. ``lambda step: step < 100 or
step % 50 == 0`` (densely at the start, then sparsely).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stabletrain._checks import check_positive_int

__all__ = ["Schedule", "check_schedule", "every"]

Schedule = Callable[[int], bool]
"""A function of the step (1, 2, 3, ...) that says whether the monitor logs that step."""


@dataclass(frozen=True)
class _Every:
    n: int
    offset: int

    def __call__(self, step: int) -> bool:
        return step >= self.offset and (step - self.offset) % self.n == 0

    def __repr__(self) -> str:
        return f"every({self.n})" if self.offset == 0 else f"every({self.n}, offset={self.offset})"


def every(n: int, *, offset: int = 0) -> Schedule:
    """Log every ``n``-th step: steps ``offset + n, offset + 2n, ...`` (and ``offset`` if >= 1).

    Args:
        n: the interval, >= 1; ``every(1)`` logs every step.
        offset: shift of the grid; ``every(10, offset=1)`` logs steps 1, 11, 21, ...

    Example:
        >>> schedule = every(10)
        >>> [s for s in range(1, 35) if schedule(s)]
        [10, 20, 30]
        >>> [s for s in range(1, 25) if every(10, offset=1)(s)]
        [1, 11, 21]
    """
    n = check_positive_int("n", n, where="every")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"every: offset must be an int >= 0, got {offset!r}.")
    return _Every(n, offset)


def check_schedule(schedule: Any, *, where: str) -> Schedule:
    """Return ``schedule`` as a :data:`Schedule`: an int ``n`` means ``every(n)``.

    Raises:
        TypeError: ``schedule`` is neither an int nor a callable.
    """
    if isinstance(schedule, int) and not isinstance(schedule, bool):
        return every(schedule)
    if not callable(schedule):
        raise TypeError(
            f"{where}: schedule must be a step -> bool callable (e.g. every(10)) or an int n "
            f"meaning every(n), got {type(schedule).__name__}."
        )
    fn: Schedule = schedule
    return fn
