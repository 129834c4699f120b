"""What every initializer shares: the in-place contract and the fan lookup."""

from __future__ import annotations

import functools
import math
import numbers
import sys
from collections.abc import Callable
from typing import Concatenate, Literal, ParamSpec

import torch

from stabletrain._checks import (
    check_choice,
    check_float_tensor,
    check_generator,
    check_positive_int,
    check_real,
)
from stabletrain.init.fans import Fans, compute_fans
from stabletrain.init.gain import ActivationLike, gain

P = ParamSpec("P")
Initializer = Callable[Concatenate[torch.Tensor, P], torch.Tensor]

FanMode = Literal["fan_in", "fan_out", "fan_avg"]
FAN_MODES: tuple[FanMode, ...] = ("fan_in", "fan_out", "fan_avg")

# Low-precision tensors are sampled in float32 where the sampler does arithmetic on the draws
# (inverse-CDF, QR): doing it in bfloat16 would distort the distribution, not just round it.
LOW_PRECISION = (torch.float16, torch.bfloat16)


def initializer(fn: Initializer[P]) -> Initializer[P]:
    """Make ``fn`` a torch-style initializer: check the tensor (and ``generator=``, for every
    tensor, empty ones included), run under ``no_grad``."""

    @functools.wraps(fn)
    def wrapper(tensor: torch.Tensor, /, *args: P.args, **kwargs: P.kwargs) -> torch.Tensor:
        check_float_tensor(tensor, where=fn.__name__)
        check_generator(kwargs.get("generator"), tensor.device, where=fn.__name__)
        with torch.no_grad():
            return fn(tensor, *args, **kwargs)

    return wrapper


def gain_value(
    value: float | ActivationLike,
    *,
    where: str,
    positive: bool = False,
    fits: torch.dtype | None = None,
) -> float:
    """A ``gain=`` argument as a number: a number (of any kind: numpy, 0-d tensor) is the gain
    itself; an activation (name, module or callable) gives its exact forward gain."""
    if isinstance(value, int | float | numbers.Real | torch.Tensor):
        return check_real("gain", value, where=where, positive=positive, fits=fits)
    return check_real("gain", gain(value), where=where, fits=fits)


def resolve_fans(tensor: torch.Tensor, fans: Fans | tuple[int, int] | None, where: str) -> Fans:
    """``fans`` if given (checked), else the generic fans of ``tensor`` with a named error."""
    if fans is not None:
        if not isinstance(fans, tuple) or len(fans) != 2:
            raise TypeError(
                f"{where}: fans must be Fans(fan_in, fan_out) or a (fan_in, fan_out) tuple, got "
                f"{fans!r}. stabletrain.init.layer_fans(module, 'weight') computes it."
            )
        fan_in, fan_out = fans
        resolved = Fans(
            check_positive_int("fan_in", fan_in, where=where),
            check_positive_int("fan_out", fan_out, where=where),
        )
        if max(resolved) > sys.float_info.max:  # float(fan) would raise OverflowError
            raise ValueError(
                f"{where}: fans={tuple(resolved)} are larger than any float, so no std is "
                "sqrt(scale / fan); pass the layer's real fans (layer_fans(module, 'weight'))."
            )
        return resolved
    if tensor.dim() < 2:
        raise ValueError(
            f"{where}: needs a weight with at least 2 dims to compute its fans, got a tensor of "
            f"shape {tuple(tensor.shape)}. Biases and norm gains have no fans: use zeros_ or "
            "constant_ for them, or pass fans=Fans(fan_in, fan_out) explicitly."
        )
    return compute_fans(tensor)


def fan(fans: Fans, mode: str, where: str) -> float:
    """The fan that ``mode`` names."""
    check_choice("mode", mode, FAN_MODES, where=where)
    if mode == "fan_avg":
        return fans.fan_avg
    return float(fans.fan_in if mode == "fan_in" else fans.fan_out)


def std_for(scale: float, fans: Fans, mode: str, where: str) -> float:
    """``sqrt(scale / fan)``: the std a variance-scaling scheme targets."""
    return math.sqrt(scale / fan(fans, mode, where))


# A normal draw lands beyond 8 std with probability 1.2e-15: a std whose 8-std range fits the
# dtype fills any real tensor with finite values, where a std that merely fits would not.
NORMAL_RANGE = 8.0


def check_draws_fit(largest: float, dtype: torch.dtype, *, where: str, cause: str) -> None:
    """Raise unless draws as large as ``largest`` in magnitude are finite in ``dtype``."""
    limit = torch.finfo(dtype).max
    if largest > limit:
        raise ValueError(
            f"{where}: {cause} gives draws up to {largest:.4g} in magnitude, beyond {dtype}'s "
            f"largest value {limit:.4g}, so the tensor would hold inf. Lower the std, or "
            "initialize a float32 copy and cast it."
        )
