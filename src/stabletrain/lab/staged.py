"""One shape for every experiment: measure each seed, decide on the interval, then explain.

A staged experiment is a :class:`Staged` subclass with three methods, registered with
``@experiment`` (from :mod:`stabletrain.lab`):

- ``measure(ctx) -> M``: runs the experiment once, at ``ctx.seed``, and returns a frozen
  dataclass of named numbers (its *measurements*; fields declared with :func:`measured` carry a
  unit and a description, which the report shows);
- ``decide(ms) -> Verdict``: pure; from the measurements of every seed, usually by putting the
  key number's :class:`~stabletrain.lab.estimate.Estimate` through a
  :mod:`~stabletrain.lab.verdicts` comparison, so a claim whose interval straddles its threshold
  reads ``"inconclusive"``. Tests call it on hand-made measurements, borderline ones included;
- ``explain(ms, verdict) -> Explanation``: the key number, the prose, tables and figures, all
  from the named fields.

``seeds = (quick, full)`` says on how many seeds it runs (default ``(3, 5)``); a deterministic
experiment sets ``(1, 1)``. Replicate ``i`` runs at ``ctx.replicate(i)``.

Example:
    >>> from dataclasses import dataclass
    >>> from stabletrain.lab import Context, verdicts
    >>> from stabletrain.lab.estimate import Estimate
    >>> @dataclass(frozen=True)
    ... class Sums:
    ...     error: float = measured("absolute", "|(1 + 1) − 2|")
    >>> class OnePlusOne(Staged[Sums]):
    ...     def measure(self, ctx: Context) -> Sums:
    ...         return Sums(error=abs((1.0 + 1.0) - 2.0))
    ...     def decide(self, ms: Sequence[Sums]) -> Verdict:
    ...         return verdicts.at_most(Estimate.of(m.error for m in ms), 1e-12)
    ...     def explain(self, ms: Sequence[Sums], verdict: Verdict) -> Explanation:
    ...         return Explanation("error = 0", "1 + 1 is 2 on every seed.")
    >>> result = OnePlusOne().run(Context(quick=True, seed=0))
    >>> result.verdict.outcome, result.verdict.seeds, result.measured[0].values
    ('holds', 3, (0.0, 0.0, 0.0))
"""

from __future__ import annotations

import dataclasses
import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from stabletrain.lab.estimate import NamedNumber
from stabletrain.lab.experiment import Context, Figure, Result, Table, Verdict

__all__ = ["Explanation", "Staged", "measured", "named_numbers"]

M = TypeVar("M")


def measured(unit: str = "", about: str = "", **kwargs: Any) -> Any:
    """A measurements field with its unit and description (``dataclasses.field`` metadata).

    Example:
        >>> from dataclasses import dataclass, fields
        >>> @dataclass(frozen=True)
        ... class M:
        ...     test_loss: float = measured("nats", "test cross-entropy at the best step")
        >>> fields(M)[0].metadata["unit"]
        'nats'
    """
    return dataclasses.field(metadata={"unit": unit, "about": about}, **kwargs)


@dataclass(frozen=True)
class Explanation:
    """What an experiment says about its measurements: the report's text, tables and figures.

    Attributes:
        key_number: the one number (with its meaning) the summary table shows.
        text: quotes or paraphrases the claim and says what the numbers show.
        tables: the numbers behind the verdict, by name.
        figures: plots, as data.
    """

    key_number: str
    text: str
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()


def _is_scalar(value: Any) -> bool:
    return isinstance(value, numbers.Real)


def named_numbers(ms: Sequence[Any]) -> tuple[NamedNumber, ...]:
    """The real-valued fields of the measurements, one value per seed, in field order.

    Fields that are not numbers (curves, tables as tuples) are left to ``explain``.
    """
    if not ms or not dataclasses.is_dataclass(ms[0]):
        return ()
    out = []
    for f in dataclasses.fields(ms[0]):
        values = [getattr(m, f.name) for m in ms]
        if all(_is_scalar(v) for v in values):
            unit = str(f.metadata.get("unit", ""))
            about = str(f.metadata.get("about", ""))
            out.append(NamedNumber(f.name, unit, about, tuple(float(v) for v in values)))
    return tuple(out)


class Staged(ABC, Generic[M]):
    """An experiment in three stages; see the module docstring. Subclass and register it: a
    subclass that leaves a stage out cannot be instantiated (the decorator says which)."""

    seeds: ClassVar[tuple[int, int]] = (3, 5)

    @abstractmethod
    def measure(self, ctx: Context) -> M:
        """Run the experiment once, at ``ctx.seed``; return its measurements."""

    @abstractmethod
    def decide(self, ms: Sequence[M]) -> Verdict:
        """The verdict from the measurements of every seed (pure)."""

    @abstractmethod
    def explain(self, ms: Sequence[M], verdict: Verdict) -> Explanation:
        """The key number, prose, tables and figures from the measurements."""

    def seed_count(self, ctx: Context) -> int:
        """How many seeds ``ctx``'s mode runs."""
        quick, full = self.seeds
        return quick if ctx.quick else full

    def measure_all(self, ctx: Context) -> tuple[M, ...]:
        """``measure`` at each replicate of ``ctx`` (replicate 0 is ``ctx`` itself)."""
        return tuple(self.measure(ctx.replicate(i)) for i in range(self.seed_count(ctx)))

    def result(self, ms: Sequence[M]) -> Result:
        """Decide and explain ``ms``: the experiment's result."""
        verdict = self.decide(ms)
        if not isinstance(verdict, Verdict):
            raise TypeError(
                f"{type(self).__name__}.decide returned {type(verdict).__name__}, not a Verdict."
            )
        ex = self.explain(ms, verdict)
        return Result(
            verdict=verdict,
            key_number=ex.key_number,
            explanation=ex.text,
            tables=ex.tables,
            figures=ex.figures,
            measured=named_numbers(ms),
        )

    def run(self, ctx: Context) -> Result:
        """Measure every seed, decide, explain."""
        return self.result(self.measure_all(ctx))
