"""The lab's building blocks: an experiment per claim, its result and its measured verdict.

An experiment is a function ``(ctx: Context) -> Result`` registered under one or more IDs with
:func:`experiment`. What it tests (the claim's title, text and source) is written once, in
:mod:`stabletrain.lab.claims`; the decorator takes the IDs only. It builds its setup from
``ctx`` (``ctx.quick`` picks the CI sizes, ``ctx.seed`` seeds everything, ``ctx.generator()``
and ``ctx.pick(quick, full)`` help), measures, and returns a :class:`Result` whose verdict
comes from comparing a measured number with a threshold written next to it
(:mod:`stabletrain.lab.verdicts`), never from a constant.

Example:
    >>> from stabletrain.lab import verdicts
    >>> @experiment("I5", register=False)  # an unregistered example under a real ID
    ... def one_plus_one(ctx: Context) -> Result:
    ...     measured = 1.0 + 1.0
    ...     verdict = verdicts.close_to(measured, 2.0, rel_tol=1e-9)
    ...     return Result(verdict=verdict, key_number=f"1 + 1 = {measured:g}",
    ...                   explanation="The sum is 2 within 1e-9.")
    >>> one_plus_one.run(Context(quick=True, seed=0)).verdict.outcome
    'holds'
    >>> one_plus_one.title  # read from the claim list
    'Var(z) = n_in·Var(w)·Var(x)'
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast, overload

from stabletrain.lab.claims import Claim, get_claim
from stabletrain.lab.estimate import NamedNumber

if TYPE_CHECKING:  # imported where used: the claim list and the index load without torch
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

Outcome = Literal["holds", "holds with caveat", "inconclusive", "does not hold"]
# From strongest to weakest: "inconclusive" (the interval of the key number straddles the
# threshold) is weaker than any "holds" and stronger than a measured "does not hold".
OUTCOMES: tuple[Outcome, ...] = ("holds", "holds with caveat", "inconclusive", "does not hold")

REPLICATE_STRIDE = 1_000_003  # seeds between two replicates (see Context.replicate)
_ID = re.compile(r"^[A-Z][A-Za-z0-9-]*$")
T = TypeVar("T")
C = TypeVar("C", bound=type)
STAGES = ("measure", "decide", "explain")


@dataclass(frozen=True)
class Verdict:
    """The outcome and the comparison that decided it.

    Attributes:
        outcome: ``"holds"``, ``"holds with caveat"``, ``"inconclusive"`` (the measured
            interval straddles the threshold: more seeds or a larger scale would decide) or
            ``"does not hold"``.
        measured: the number compared (the mean over the seeds).
        threshold: what it was compared against (a bound, a target, a p-value level).
        rule: the comparison in words, e.g. ``"ratio <= 1.1"``.
        low, high: the 95% confidence interval of ``measured`` over the seeds
            (:class:`~stabletrain.lab.estimate.Estimate`); None for a single measurement.
        seeds: how many seeds the interval rests on (1: a single measurement).
    """

    outcome: Outcome
    measured: float
    threshold: float
    rule: str
    low: float | None = None
    high: float | None = None
    seeds: int = 1

    def interval(self) -> str:
        """``" [0.8, 0.98] over 3 seeds"``, or empty for a single measurement."""
        if self.low is None or self.high is None:
            return ""
        return f" [{self.low:.4g}, {self.high:.4g}] over {self.seeds} seeds"

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"Verdict: outcome {self.outcome!r} is not one of {OUTCOMES}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (NaN stays a float, written as JSON ``NaN``)."""
        return {
            "outcome": self.outcome,
            "measured": float(self.measured),  # numpy or 0-d torch numbers become floats
            "threshold": float(self.threshold),
            "rule": self.rule,
            "low": None if self.low is None else float(self.low),
            "high": None if self.high is None else float(self.high),
            "seeds": self.seeds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """The inverse of :meth:`to_dict` (results written before intervals read as one seed)."""
        return cls(
            data["outcome"],
            float(data["measured"]),
            float(data["threshold"]),
            data["rule"],
            low=None if data.get("low") is None else float(data["low"]),
            high=None if data.get("high") is None else float(data["high"]),
            seeds=int(data.get("seeds", 1)),
        )


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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; cells that are not JSON scalars become numbers or text."""
        return {
            "title": self.title,
            "columns": list(self.columns),
            "rows": [[_json_cell(cell) for cell in row] for row in self.rows],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Table:
        """The inverse of :meth:`to_dict`."""
        return cls(data["title"], tuple(data["columns"]), tuple(tuple(row) for row in data["rows"]))


def _json_cell(cell: Any) -> Any:
    """A table cell as a JSON scalar: numbers and text as they are, 0-d arrays as numbers."""
    if cell is None or isinstance(cell, bool | int | float | str):
        return cell
    item = getattr(cell, "item", None)  # numpy scalars, one-element tensors
    if callable(item):
        try:
            value = item()
        except (TypeError, ValueError, RuntimeError):
            return str(cell)
        if isinstance(value, bool | int | float | str):
            return value
    return str(cell)


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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: each series as ``{"x": [...], "y": [...]}``."""
        return {
            "title": self.title,
            "xlabel": self.xlabel,
            "ylabel": self.ylabel,
            "series": {
                name: {"x": [_json_cell(v) for v in x], "y": [_json_cell(v) for v in y]}
                for name, (x, y) in self.series.items()
            },
            "logy": self.logy,
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Figure:
        """The inverse of :meth:`to_dict`."""
        series = {name: (tuple(xy["x"]), tuple(xy["y"])) for name, xy in data["series"].items()}
        return cls(
            data["title"],
            data["xlabel"],
            data["ylabel"],
            series,
            logy=bool(data["logy"]),
            kind=data["kind"],
        )


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
        seconds: how long the experiment ran, filled in by the runner.
        error: ``"ExceptionType: message"`` when the experiment raised (the runner then reports
            an error row whose verdict is ``"does not hold"`` with NaN numbers); else empty.
        measured: the experiment's named numbers, one value per seed (a staged experiment's
            measurements, :class:`~stabletrain.lab.staged.Staged`); empty for the others.
    """

    verdict: Verdict
    key_number: str
    explanation: str
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()
    claim_id: str = ""
    seconds: float = 0.0
    error: str = ""
    measured: tuple[NamedNumber, ...] = ()

    @property
    def status(self) -> str:
        """The verdict's outcome, or ``"error"`` when the experiment raised."""
        return "error" if self.error else self.verdict.outcome

    @classmethod
    def failed(cls, claim_id: str, error: str, *, seconds: float = 0.0) -> Result:
        """An error row: the experiment for ``claim_id`` could not give a verdict."""
        nan = math.nan
        return cls(
            verdict=Verdict("does not hold", nan, nan, "no measurement: the experiment failed"),
            key_number="error",
            explanation=f"No verdict: {error}",
            claim_id=claim_id,
            seconds=seconds,
            error=error,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; :meth:`from_dict` reads it back.

        Example:
            >>> r = Result(Verdict("holds", 0.01, 0.05, "measured <= 0.05"), "err = 0.01", "ok")
            >>> Result.from_dict(r.to_dict()) == r
            True
        """
        return {
            "claim_id": self.claim_id,
            "status": self.status,
            "verdict": self.verdict.to_dict(),
            "key_number": self.key_number,
            "explanation": self.explanation,
            "tables": [t.to_dict() for t in self.tables],
            "figures": [f.to_dict() for f in self.figures],
            "seconds": self.seconds,
            "error": self.error,
            "measured": [m.to_dict() for m in self.measured],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """The inverse of :meth:`to_dict` (``status`` is derived, so it is not read)."""
        return cls(
            verdict=Verdict.from_dict(data["verdict"]),
            key_number=data["key_number"],
            explanation=data["explanation"],
            tables=tuple(Table.from_dict(t) for t in data["tables"]),
            figures=tuple(Figure.from_dict(f) for f in data["figures"]),
            claim_id=data["claim_id"],
            seconds=float(data["seconds"]),
            error=data["error"],
            measured=tuple(NamedNumber.from_dict(m) for m in data.get("measured", ())),
        )


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

    def replicate(self, index: int) -> Context:
        """The context of the ``index``-th seed of a several-seed measurement.

        Replicate 0 is this context; replicate ``i`` has seed ``seed + i·1000003``, far from
        the offsets experiments add to their seed (``generator(offset)``), so two replicates
        never share a random stream.
        """
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"Context.replicate: index must be an int >= 0, got {index!r}.")
        return replace(self, seed=self.seed + index * REPLICATE_STRIDE)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded with ``seed + offset``."""
        import torch

        return torch.Generator().manual_seed(self.seed + offset)

    def seed_all(self, offset: int = 0) -> None:
        """Seed torch's global generator (for code that takes no generator)."""
        import torch

        torch.manual_seed(self.seed + offset)


def _claim(claim_id: str) -> Claim:
    """The claim of ``claim_id`` from the claim list, or why an experiment cannot answer it."""
    if not isinstance(claim_id, str) or not _ID.match(claim_id):
        raise ValueError(
            f"experiment: {claim_id!r} is not a claim ID (a capital letter, then letters, "
            "digits or '-', e.g. 'I5' or 'P-HE2015')."
        )
    try:
        return get_claim(claim_id)
    except ValueError:
        raise ValueError(
            f"experiment: claim {claim_id!r} is not in the claim list; add it to "
            "stabletrain/lab/claims.py (ID, title, text, measurement; a paper source for a P- "
            "result) before its experiment."
        ) from None


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: the claim IDs it answers and the function that measures them.

    Its title, claim text and source are those of its first ID in :mod:`stabletrain.lab.claims`,
    the one place they are written; every ID must be there (``ValueError`` otherwise).
    """

    ids: tuple[str, ...]
    fn: Callable[[Context], Result] = field(repr=False)
    staged: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.ids:
            raise ValueError("experiment: give at least one claim ID, e.g. experiment('I5').")
        for claim_id in self.ids:
            _claim(claim_id)

    @property
    def claims(self) -> tuple[Claim, ...]:
        """The claims it answers, from the claim list, in the order of :attr:`ids`."""
        return tuple(_claim(claim_id) for claim_id in self.ids)

    @property
    def title(self) -> str:
        """The first claim's title."""
        return _claim(self.ids[0]).title

    @property
    def claim(self) -> str:
        """The first claim's text."""
        return _claim(self.ids[0]).text

    @property
    def source(self) -> str:
        """The paper of a published result (``P-`` IDs); empty for a tutorial claim."""
        return _claim(self.ids[0]).source

    @property
    def module(self) -> str:
        """The name of the module that defines the experiment (for a staged one, its class's)."""
        owner = self.fn if self.staged is None else type(self.staged)
        return str(owner.__module__)

    def run(self, ctx: Context) -> Result:
        """Run it and return its result (``claim_id`` set to the first ID)."""
        result = self.fn(ctx)
        if not isinstance(result, Result):
            raise TypeError(
                f"experiment {self.ids[0]} returned {type(result).__name__}, not a Result."
            )
        return replace(result, claim_id=self.ids[0])


REGISTRY: dict[str, Experiment] = {}


class _Register(Protocol):
    """What :func:`experiment` returns: registers a function or a staged class."""

    @overload
    def __call__(self, target: Callable[[Context], Result], /) -> Experiment: ...

    @overload
    def __call__(self, target: C, /) -> C: ...


def experiment(*ids: str, register: bool = True) -> _Register:
    """Register the decorated experiment for ``ids`` (e.g. ``"I5"``).

    The decorated object is either a function ``(ctx) -> Result`` (the decorator returns its
    :class:`Experiment`) or a :class:`~stabletrain.lab.staged.Staged` subclass with
    ``measure``, ``decide`` and ``explain`` (the decorator registers an instance and returns the
    class, so its stages stay callable one by one in tests).

    The decorator takes the IDs only: the title, the claim's text and, for a published result
    (IDs such as ``"P-GLOROT2010"``), the paper are read from :mod:`stabletrain.lab.claims`, so
    a claim is written in one place. One experiment may answer several closely related IDs
    (``@experiment("I5", "I8")``); each ID has exactly one experiment. ``ValueError`` for an ID
    that is not of the form ``"I5"`` / ``"P-HE2015"``, for one missing from the claim list and for
    one registered twice.
    """
    if not ids:
        raise ValueError("experiment: give at least one claim ID, e.g. experiment('I5').")
    if len(set(ids)) != len(ids):
        raise ValueError(f"experiment: an ID is given twice in {ids}.")
    for claim_id in ids:
        _claim(claim_id)

    def wrap(target: Any) -> Any:
        if isinstance(target, type):
            abstract: frozenset[str] = getattr(target, "__abstractmethods__", frozenset())
            missing = [f for f in STAGES if f in abstract or not callable(getattr(target, f, None))]
            if missing:
                raise TypeError(
                    f"experiment: class {target.__name__} must define {', '.join(STAGES)} "
                    f"(missing: {', '.join(missing)}; subclass stabletrain.lab.staged.Staged)."
                )
            staged = target()
            exp = Experiment(ids=tuple(ids), fn=staged.run, staged=staged)
        elif callable(target):
            exp = Experiment(ids=tuple(ids), fn=target)
        else:
            raise TypeError(
                f"experiment: decorate a function (ctx) -> Result or a Staged class, got "
                f"{type(target).__name__}."
            )
        if register:
            for claim_id in ids:
                if claim_id in REGISTRY:
                    raise ValueError(f"experiment: {claim_id} is registered twice.")
            for claim_id in ids:
                REGISTRY[claim_id] = exp
        return target if isinstance(target, type) else exp

    return cast(_Register, wrap)
