"""Checks that every builder shares, on top of :mod:`stabletrain._checks`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stabletrain._checks import check_positive_int, check_real


def check_dropout(value: Any, *, where: str) -> float:
    """Return ``value`` as a float in ``[0, 1)``, the range ``nn.Dropout`` can train with.

    ``p = 1`` is rejected although ``nn.Dropout`` accepts it: it zeroes every activation, so
    nothing downstream of it can learn.
    """
    p = check_real("dropout", value, where=where)
    if not 0.0 <= p < 1.0:
        raise ValueError(
            f"{where}: dropout must be in [0, 1), got {p}. It is the probability of zeroing an "
            "activation: use 0.0 to turn dropout off, or a value such as 0.1-0.5."
        )
    return p


def check_optional_positive_int(name: str, value: Any, *, where: str) -> int | None:
    """Return ``None`` or an int >= 1."""
    return None if value is None else check_positive_int(name, value, where=where)


def check_positive_ints(name: str, values: Any, *, where: str) -> tuple[int, ...]:
    """Return a non-empty sequence of ints >= 1 as a tuple."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise TypeError(
            f"{where}: {name} must be a sequence of ints such as (16, 32), got "
            f"{type(values).__name__}."
        )
    if len(values) == 0:
        raise ValueError(f"{where}: {name} must hold at least one int, got {values!r}.")
    return tuple(check_positive_int(f"{name}[{i}]", v, where=where) for i, v in enumerate(values))
