"""Validation of user input, shared by every part of the package.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the bad value, the
valid options and the fix; none uses ``assert`` (which ``python -O`` removes).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, TypeVar

import torch

T = TypeVar("T")

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_choice(name: str, value: T, options: Iterable[T], *, where: str) -> T:
    """Return ``value`` if it is one of ``options``, else raise a ``ValueError`` listing them."""
    options = tuple(options)
    if value not in options:
        valid = ", ".join(repr(o) for o in options)
        raise ValueError(f"{where}: unknown {name} {value!r}; valid options are {valid}.")
    return value


def check_float_tensor(tensor: Any, *, where: str) -> torch.Tensor:
    """Return ``tensor`` if it is a floating-point ``torch.Tensor``, else raise ``TypeError``."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(
            f"{where}: expected a torch.Tensor (e.g. layer.weight), got {type(tensor).__name__}."
        )
    if tensor.dtype not in FLOAT_DTYPES:
        valid = ", ".join(str(d).removeprefix("torch.") for d in FLOAT_DTYPES)
        raise TypeError(
            f"{where}: cannot initialize a tensor of dtype {tensor.dtype}; supported dtypes are "
            f"{valid}. Create the parameter as floating point, or initialize a float copy and "
            "cast it."
        )
    return tensor


def check_real(
    name: str,
    value: Any,
    *,
    where: str,
    positive: bool = False,
    non_negative: bool = False,
    fits: torch.dtype | None = None,
) -> float:
    """Return ``value`` as a finite float; raise if it is not a real number or breaks a bound.

    ``fits``: also require the value to be representable in that floating dtype.
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a real number, got {type(value).__name__}.")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{where}: {name} must be finite, got {result}.")
    if positive and result <= 0:
        raise ValueError(f"{where}: {name} must be > 0, got {result}.")
    if non_negative and result < 0:
        raise ValueError(f"{where}: {name} must be >= 0, got {result}.")
    if fits is not None and abs(result) > torch.finfo(fits).max:
        raise ValueError(
            f"{where}: {name}={result} does not fit in {fits} (largest {torch.finfo(fits).max:g});"
            " use a wider dtype or a smaller value."
        )
    return result


def check_positive_int(name: str, value: Any, *, where: str) -> int:
    """Return ``value`` if it is an int >= 1, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be an int, got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{where}: {name} must be >= 1, got {value}.")
    return int(value)


def check_generator(generator: Any, device: torch.device, *, where: str) -> None:
    """Raise unless ``generator`` is None or a ``torch.Generator`` on ``device``'s type."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{where}: generator must be a torch.Generator or None, got "
            f"{type(generator).__name__}; pass torch.Generator().manual_seed(seed)."
        )
    if generator.device.type != device.type:
        raise ValueError(
            f"{where}: the generator is on {generator.device.type} but the tensor on "
            f"{device.type}; create it with torch.Generator(device='{device.type}')."
        )
