"""A measured number over seeds: its mean and a confidence interval, and named measurements.

A claim's verdict is decided on the interval of its key number, not on one run
(:mod:`stabletrain.lab.verdicts`): a claim whose interval straddles its threshold is
"inconclusive at this scale" instead of flipping between "holds" and "does not hold" with the
seed.

The interval is Student's t-interval of the mean of ``n`` independent replicates (one per seed),

    mean ± t_{(1+level)/2, n−1} · s / √n,    s² = Σ (x_i − mean)² / (n − 1),

exact for normal replicates and a good approximation for the smooth summaries (a final loss,
an accuracy, a log-ratio) the lab compares (Student 1908; Wasserman, *All of Statistics*, 2004,
Sec. 6.3). With one replicate the interval is the point itself (a deterministic measurement).

Example:
    >>> e = Estimate.of([0.91, 0.93, 0.95])
    >>> round(e.value, 3), round(e.low, 3), round(e.high, 3), e.n
    (0.93, 0.88, 0.98, 3)
    >>> e.describe()
    '0.93 ± 0.0497 (95% CI, 3 seeds)'
    >>> Estimate.of([2.0]).describe()
    '2'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["LEVEL", "Estimate", "NamedNumber", "describe", "over", "t_quantile"]

LEVEL = 0.95

# t_{0.975, df} for df = 1..30 (two-sided 95%); beyond, the Cornish–Fisher expansion.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959964


def t_quantile(df: int) -> float:
    """Student's t quantile at 0.975 (a two-sided 95% interval) with ``df`` degrees of freedom.

    Tabulated for ``df <= 30``; above, ``z + (z³ + z)/(4·df) + (5z⁵ + 16z³ + 3z)/(96·df²)``
    (the Cornish–Fisher expansion; error < 1e-3).

    Example:
        >>> t_quantile(2), t_quantile(4)
        (4.303, 2.776)
    """
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"t_quantile: df must be an int >= 1, got {df!r}.")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Estimate:
    """A number measured on ``n`` seeds: the mean and its 95% confidence interval.

    Attributes:
        value: the mean over the seeds.
        low, high: the interval's ends (``value`` itself when ``n == 1`` or every seed agrees).
        n: how many seeds.
    """

    value: float
    low: float
    high: float
    n: int = 1

    def __post_init__(self) -> None:
        if not self.low <= self.value <= self.high and not math.isnan(self.value):
            raise ValueError(
                f"Estimate: need low <= value <= high, got {self.low} <= {self.value} <= "
                f"{self.high}."
            )

    @classmethod
    def of(cls, values: Iterable[float]) -> Estimate:
        """The mean of ``values`` (one per seed) with its t-interval; NaN if any is NaN."""
        xs = [float(v) for v in values]
        if not xs:
            raise ValueError("Estimate.of: give at least one value (one per seed).")
        n = len(xs)
        mean = math.fsum(xs) / n
        if n == 1 or any(math.isnan(x) for x in xs):
            return cls(mean, mean, mean, n)
        if any(math.isinf(x) for x in xs):
            return cls(mean, min(xs), max(xs), n)
        s = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
        half = t_quantile(n - 1) * s / math.sqrt(n)
        return cls(mean, mean - half, mean + half, n)

    @classmethod
    def exact(cls, value: float) -> Estimate:
        """A deterministic measurement: the interval is the point."""
        v = float(value)
        return cls(v, v, v, 1)

    @property
    def half_width(self) -> float:
        """Half the interval's width (0 for one seed)."""
        return (self.high - self.low) / 2

    def describe(self, digits: int = 3) -> str:
        """``"0.93 ± 0.05 (95% CI, 3 seeds)"``, or the value alone for one seed."""
        value = f"{self.value:.{digits}g}"
        if self.n == 1:
            return value
        return f"{value} ± {self.half_width:.{digits}g} (95% CI, {self.n} seeds)"

    def format(self, spec: str) -> str:
        """Like :meth:`describe`, both numbers in the format ``spec`` (``".3f"``, ``"+.2f"``).

        Example:
            >>> Estimate.of([0.1, 0.2, 0.3]).format("+.2f")
            '+0.20 ± 0.25 (95% CI, 3 seeds)'
        """
        if self.n == 1:
            return f"{self.value:{spec}}"
        half = f"{self.half_width:{spec.lstrip('+')}}"
        return f"{self.value:{spec}} ± {half} (95% CI, {self.n} seeds)"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Estimate:
        """The inverse of :meth:`to_dict`."""
        return cls(float(data["value"]), float(data["low"]), float(data["high"]), int(data["n"]))


@dataclass(frozen=True)
class NamedNumber:
    """One field of an experiment's measurements over its seeds, as the report shows it.

    Attributes:
        name: the field's name (``"test_loss_gap"``).
        unit: its unit or kind (``"nats"``, ``"accuracy"``, ``"ratio"``; empty for a count).
        about: what it is, in a few words.
        values: its value on each seed.
    """

    name: str
    unit: str
    about: str
    values: tuple[float, ...]

    @property
    def estimate(self) -> Estimate:
        """The mean over the seeds with its interval."""
        return Estimate.of(self.values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {"name": self.name, "unit": self.unit, "about": self.about, "values": self.values}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NamedNumber:
        """The inverse of :meth:`to_dict`."""
        values = tuple(float(v) for v in data["values"])
        return cls(data["name"], data["unit"], data["about"], values)


def seeds_of(values: Sequence[float]) -> str:
    """``"0.91, 0.93, 0.95"``: the per-seed values as a report cell."""
    return ", ".join(f"{v:.4g}" for v in values)


def over(ms: Iterable[object], name: str) -> Estimate:
    """The estimate of the field ``name`` of measurements ``ms`` (one per seed).

    Example:
        >>> from types import SimpleNamespace as M
        >>> over([M(gap=0.1), M(gap=0.3)], "gap").value
        0.2
    """
    return Estimate.of(float(getattr(m, name)) for m in ms)


def describe(ms: Iterable[object], name: str, spec: str) -> str:
    """The field ``name`` over the seeds as text, both numbers in the format ``spec``.

    Example:
        >>> from types import SimpleNamespace as M
        >>> describe([M(gap=0.1), M(gap=0.2), M(gap=0.3)], "gap", ".2f")
        '0.20 ± 0.25 (95% CI, 3 seeds)'
        >>> describe([M(gap=0.1)], "gap", ".2f")
        '0.10'
    """
    return over(ms, name).format(spec)
