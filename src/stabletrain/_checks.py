"""Validation of user input, shared by every part of the package.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the bad value, the
valid options and the fix; none uses ``assert`` (which ``python -O`` removes).
"""

from __future__ import annotations

import math
import numbers
import warnings
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


def check_not_meta(model: torch.nn.Module, where: str) -> None:
    """Raise ``ValueError`` if ``model`` holds a parameter or buffer on the ``meta`` device.

    A meta tensor has a shape but no values (``torch.device("meta")``, ``init_empty_weights``,
    ``from_pretrained(..., device_map="meta")``): nothing can be measured or initialized from
    it. The message names the first such tensor and the fix: materialize the model with
    ``model.to_empty(device="cpu")``, then initialize it.

    Example:
        >>> check_not_meta(torch.nn.Linear(2, 2), "diagnose")
        >>> check_not_meta(torch.nn.Linear(2, 2, device="meta"), "diagnose")
        Traceback (most recent call last):
        ...
        ValueError: diagnose: Linear has 2 tensor(s) on the meta device (weight, bias), which ...
    """
    found = [
        name
        for name, t in (*model.named_parameters(), *model.named_buffers())
        if t.device.type == "meta"
    ]
    if found:
        shown = ", ".join(found[:3]) + (f", ... ({len(found) - 3} more)" if len(found) > 3 else "")
        raise ValueError(
            f"{where}: {type(model).__name__} has {len(found)} tensor(s) on the meta device "
            f"({shown}), which hold no values; materialize the model first with "
            'model.to_empty(device="cpu") and initialize it (stabletrain.auto_init(model, x), '
            "or load a state_dict)."
        )


def check_finite_tensors(name: str, tensors: Iterable[torch.Tensor], *, where: str) -> None:
    """Raise ``ValueError`` if a floating-point tensor of ``tensors`` holds NaN or ±inf (or has
    no values: the meta device), naming ``name`` as the cause and counting the bad entries.

    One reduction per tensor, read back once.

    Example:
        >>> check_finite_tensors("x", [torch.ones(3)], where="diagnose")
        >>> check_finite_tensors("x", [torch.tensor([1.0, float("nan")])], where="diagnose")
        Traceback (most recent call last):
        ...
        ValueError: diagnose: x holds 1 NaN and 0 ±inf of 2 values; ...
    """
    floats = [t for t in tensors if t.is_floating_point() or t.is_complex()]
    if any(t.device.type == "meta" for t in floats):
        raise ValueError(
            f"{where}: {name} is on the meta device and holds no values; pass a real tensor "
            '(x.to_empty(device="cpu") and fill it, or load the data).'
        )
    if not floats:
        return
    counts = torch.stack(
        [torch.stack([t.isnan().sum(), t.isinf().sum()]).cpu() for t in floats]
    ).sum(0)
    nans, infs = (int(c) for c in counts.tolist())
    if nans or infs:
        total = sum(t.numel() for t in floats)
        raise ValueError(
            f"{where}: {name} holds {nans} NaN and {infs} ±inf of {total} values; the input is "
            "the cause, not the model: clean the data (drop or impute the bad entries, or "
            "torch.nan_to_num) before diagnosing."
        )


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


UNSET: Any = object()  # an argument not given (see renamed_argument)


def renamed_argument(new_name: str, new: Any, old_name: str, old: Any, *, where: str) -> Any:
    """The value of an argument that was renamed from ``old_name`` to ``new_name``: ``new``,
    or ``old`` with a ``DeprecationWarning`` (pass :data:`UNSET` for one not given).

    Raises ``TypeError`` when both or neither are given.

    Example:
        >>> renamed_argument("example_input", 3, "batch", UNSET, where="f")
        3
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     renamed_argument("example_input", UNSET, "batch", 4, where="f")
        4
        >>> caught[0].category.__name__, str(caught[0].message).split(";")[0]
        ('DeprecationWarning', 'f: batch= is deprecated and will be removed in 1.0')
    """
    if new is not UNSET and old is not UNSET:
        raise TypeError(f"{where}: got both {new_name}= and {old_name}=; pass {new_name}= only.")
    if old is not UNSET:
        warnings.warn(
            f"{where}: {old_name}= is deprecated and will be removed in 1.0; pass {new_name}= "
            "(or the input as the second positional argument).",
            DeprecationWarning,
            stacklevel=3,
        )
        return old
    if new is UNSET:
        raise TypeError(f"{where}: missing the argument {new_name} (a tensor, tuple or dict).")
    return new
