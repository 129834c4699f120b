"""The lab's building blocks: an experiment per claim, its result and its measured verdict.

An experiment is a function ``(ctx: Context) -> Result`` registered under one or more IDs with
:func:`experiment`. It builds its setup from ``ctx`` (``ctx.quick`` picks the CI sizes,
``ctx.seed`` seeds everything, ``ctx.generator()`` and ``ctx.pick(quick, full)`` help), measures,
and returns a :class:`Result` whose verdict comes from comparing a measured number with a
threshold written next to it (:mod:`stabletrain.lab.verdicts`), never from a constant.

Example:
    >>> from stabletrain.lab import verdicts
    >>> @experiment("X0", title="one plus one is two", claim="1 + 1 = 2", register=False)
    ... def one_plus_one(ctx: Context) -> Result:
    ...     measured = 1.0 + 1.0
    ...     verdict = verdicts.close_to(measured, 2.0, rel_tol=1e-9)
    ...     return Result(verdict=verdict, key_number=f"1 + 1 = {measured:g}",
    ...                   explanation="The sum is 2 within 1e-9.")
    >>> one_plus_one.run(Context(quick=True, seed=0)).verdict.outcome
    'holds'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import torch

__all__ = [
    "OUTCOMES",
    "REGISTRY",
    "Context",
    "Experiment",
    "Figure",
    "Outcome",
    "Result",
    "Table",
    "Verdict",
    "experiment",
]

Outcome = Literal["holds", "holds with caveat", "does not hold"]
OUTCOMES: tuple[Outcome, ...] = ("holds", "holds with caveat", "does not hold")

_ID = re.compile(r"^[A-Z][A-Za-z0-9-]*$")
T = TypeVar("T")


@dataclass(frozen=True)
class Verdict:
    """The outcome and the comparison that decided it.

    Attributes:
        outcome: ``"holds"``, ``"holds with caveat"`` or ``"does not hold"``.
        measured: the number compared.
        threshold: what it was compared against (a bound, a target, a p-value level).
        rule: the comparison in words, e.g. ``"ratio <= 1.1"``.
    """

    outcome: Outcome
    measured: float
    threshold: float
    rule: str

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"Verdict: outcome {self.outcome!r} is not one of {OUTCOMES}.")


@dataclass(frozen=True)
class Table:
    """A table of numbers: a title, column names and rows (one value per column)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(
                    f"Table {self.title!r}: a row has {len(row)} values for "
                    f"{len(self.columns)} columns {self.columns}."
                )


@dataclass(frozen=True)
class Figure:
    """A figure as data: named series of (x, y) points, drawn by the report's plotting code.

    ``kind`` is ``"line"`` (default) or ``"bar"``; ``logy`` draws the y axis on a log scale.
    """

    title: str
    xlabel: str
    ylabel: str
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]]
    logy: bool = False
    kind: Literal["line", "bar"] = "line"


@dataclass(frozen=True)
class Result:
    """What an experiment measured and what it concludes.

    Attributes:
        verdict: the measured verdict.
        key_number: the one number (with its meaning) a summary table shows.
        explanation: quotes or paraphrases the claim and says what the numbers show, with the
            scale where it differs from the source (CPU-sized models).
        tables: the numbers behind the verdict.
        figures: plots, as data.
        claim_id: filled in by the runner.
    """

    verdict: Verdict
    key_number: str
    explanation: str
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()
    claim_id: str = ""


@dataclass(frozen=True)
class Context:
    """How to run: ``quick`` (CI sizes, seconds) or full, and the seed."""

    quick: bool = True
    seed: int = 0

    @property
    def mode(self) -> str:
        """``"quick"`` or ``"full"``."""
        return "quick" if self.quick else "full"

    def pick(self, quick: T, full: T) -> T:
        """``quick`` in quick mode, else ``full``."""
        return quick if self.quick else full

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded with ``seed + offset``."""
        return torch.Generator().manual_seed(self.seed + offset)

    def seed_all(self, offset: int = 0) -> None:
        """Seed torch's global generator (for code that takes no generator)."""
        torch.manual_seed(self.seed + offset)


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: the IDs it answers, a title, the claim quoted, the function."""

    ids: tuple[str, ...]
    title: str
    claim: str
    fn: Callable[[Context], Result] = field(repr=False)
    source: str = ""  # published result: the paper; tutorial claim: empty

    def run(self, ctx: Context) -> Result:
        """Run it and return its result (``claim_id`` set to the first ID)."""
        result = self.fn(ctx)
        if not isinstance(result, Result):
            raise TypeError(
                f"experiment {self.ids[0]} returned {type(result).__name__}, not a Result."
            )
        return Result(
            verdict=result.verdict,
            key_number=result.key_number,
            explanation=result.explanation,
            tables=result.tables,
            figures=result.figures,
            claim_id=self.ids[0],
        )


REGISTRY: dict[str, Experiment] = {}


def experiment(
    *ids: str, title: str, claim: str, source: str = "", register: bool = True
) -> Callable[[Callable[[Context], Result]], Experiment]:
    """Register the decorated function as the experiment for ``ids`` (e.g. ``"I5"``).

    One function may answer several closely related IDs; each ID has exactly one experiment.
    ``source`` names the paper for a published result (IDs such as ``"P-GLOROT2010"``).
    """
    if not ids:
        raise ValueError("experiment: give at least one claim ID, e.g. experiment('I5', ...).")
    for claim_id in ids:
        if not _ID.match(claim_id):
            raise ValueError(
                f"experiment: {claim_id!r} is not a claim ID (a capital letter, then letters, "
                "digits or '-', e.g. 'I5' or 'P-HE2015')."
            )

    def wrap(fn: Callable[[Context], Result]) -> Experiment:
        exp = Experiment(ids=tuple(ids), title=title, claim=claim, fn=fn, source=source)
        if register:
            for claim_id in ids:
                if claim_id in REGISTRY:
                    raise ValueError(f"experiment: {claim_id} is registered twice.")
                REGISTRY[claim_id] = exp
        return exp

    return wrap
