"""Schemes that ignore the layer's shape: constants, plain random, and torch's truncated normal."""

from __future__ import annotations

import math

import torch

from stabletrain._checks import check_real
from stabletrain.init.schemes._truncated import (
    check_sampleable,
    parent_std_for,
    sample_truncated_,
)
from stabletrain.init.schemes.core import NORMAL_RANGE, check_draws_fit, initializer


@initializer
def constant_(tensor: torch.Tensor, val: float) -> torch.Tensor:
    """Fill ``tensor`` with ``val`` in place.

    Constant (and zero) weights make every unit of a layer compute the same function and receive
    the same gradient, so they stay identical through training: the symmetry problem (claim I1).
    Use them for biases and norm parameters, not for weights.

    >>> constant_(torch.empty(2, 3), 0.5)[0]
    tensor([0.5000, 0.5000, 0.5000])
    """
    return tensor.fill_(check_real("val", val, where="constant_", fits=tensor.dtype))


@initializer
def zeros_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill ``tensor`` with 0 in place (biases; the last layer of a residual branch).

    >>> zeros_(torch.empty(3)).tolist()
    [0.0, 0.0, 0.0]
    """
    return tensor.zero_()


@initializer
def ones_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill ``tensor`` with 1 in place (norm gains).

    >>> ones_(torch.empty(2)).tolist()
    [1.0, 1.0]
    """
    return tensor.fill_(1.0)


@initializer
def normal_(
    tensor: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill ``tensor`` with draws from ``N(mean, std²)`` in place.

    >>> g = torch.Generator().manual_seed(0)
    >>> w = normal_(torch.empty(1000, 1000), std=0.1, generator=g)
    >>> round(w.std().item(), 2)
    0.1
    """
    std = check_real("std", std, where="normal_", non_negative=True, fits=tensor.dtype)
    mean = check_real("mean", mean, where="normal_", fits=tensor.dtype)
    largest = abs(mean) + NORMAL_RANGE * std
    check_draws_fit(largest, tensor.dtype, where="normal_", cause=f"N({mean:.4g}, {std:.4g}²)")
    return tensor.normal_(mean, std, generator=generator)


@initializer
def uniform_(
    tensor: torch.Tensor,
    a: float = 0.0,
    b: float = 1.0,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill ``tensor`` with draws from ``U(a, b)`` in place (variance ``(b − a)²/12``).

    >>> w = uniform_(torch.empty(5), -1.0, 1.0, generator=torch.Generator().manual_seed(0))
    >>> bool(w.abs().max() <= 1)
    True
    """
    a = check_real("a", a, where="uniform_", fits=tensor.dtype)
    b = check_real("b", b, where="uniform_", fits=tensor.dtype)
    if a > b:
        raise ValueError(f"uniform_: needs a <= b, got a={a}, b={b}; swap them.")
    return tensor.uniform_(a, b, generator=generator)


@initializer
def small_random_(
    tensor: torch.Tensor, std: float = 0.01, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The tutorials' "small random" init: ``N(0, std²)``, ``std = 0.01`` by default.

    It breaks the symmetry of constant init (claim I2), but the scale ignores the layer width, so
    through depth the signal shrinks by ``sqrt(fan_in)·std`` per layer (claim I3): 0.16 per layer
    at width 256. Prefer a variance-scaling scheme for anything deeper than a few layers.

    >>> w = small_random_(torch.empty(1000, 1000), generator=torch.Generator().manual_seed(0))
    >>> round(w.std().item(), 3)
    0.01
    """
    std = check_real("std", std, where="small_random_", non_negative=True, fits=tensor.dtype)
    cause = f"std={std:.4g}"
    check_draws_fit(NORMAL_RANGE * std, tensor.dtype, where="small_random_", cause=cause)
    return tensor.normal_(0.0, std, generator=generator)


@initializer
def trunc_normal_(
    tensor: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    *,
    correct_std: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill ``tensor`` with ``N(mean, std²)`` truncated to the absolute bounds ``[a, b]``.

    With ``correct_std=False`` (the default, as ``torch.nn.init.trunc_normal_``) ``std`` is the
    parent normal's, and truncation shrinks the result's std: by 0.8796 for ``[-2σ, 2σ]``,
    ``Var = σ²·(1 + (αφ(α) − βφ(β))/Z − ((φ(α) − φ(β))/Z)²)``, ``α, β`` the bounds in σ units
    and ``Z = Φ(β) − Φ(α)``. With ``correct_std=True`` the parent std is solved for so that the
    result's std is exactly ``std`` (it must be below U(a, b)'s, ``(b − a)/√12``).

    Any interval is sampled exactly, one in a far tail too: the draws are made in float64 by
    the inverse CDF on the tail's side, then cast (``torch.nn.init.trunc_normal_`` puts every
    draw on a bound beyond ~8σ). An interval that holds less than 2.2e-308 of the normal
    (starting ~37.5σ from the mean: float64 cannot represent its probabilities) raises
    ``ValueError`` with the mass and the fix rather than filling the tensor with a bound:
    such bounds are nearly always meant in std units, while ``a`` and ``b`` are absolute.

    >>> g = torch.Generator().manual_seed(0)
    >>> w = trunc_normal_(torch.empty(1000, 1000), std=1.0, correct_std=True, generator=g)
    >>> round(w.std().item(), 2), bool(w.abs().max() <= 2)
    (1.0, True)
    """
    where = "trunc_normal_"
    mean = check_real("mean", mean, where=where)
    std = check_real("std", std, where=where)
    a = check_real("a", a, where=where, fits=tensor.dtype)
    b = check_real("b", b, where=where, fits=tensor.dtype)
    if std <= 0:
        raise ValueError(f"{where}: std must be > 0, got {std}.")
    if a >= b:
        raise ValueError(f"{where}: needs a < b, got a={a}, b={b}.")
    if correct_std:
        limit = (b - a) / math.sqrt(12.0)
        if std >= limit:
            raise ValueError(
                f"{where}: no truncation to [{a}, {b}] has std {std}; the largest possible is "
                f"{limit:.4g} (U(a, b)'s). Widen [a, b] or lower std."
            )
        target, std = std, parent_std_for(std, mean, a, b)
        if not math.isfinite(std):
            raise ValueError(
                f"{where}: no normal around mean {mean:g} truncated to [{a:g}, {b:g}] has std "
                f"{target:g}: the mean lies {min(abs(a - mean), abs(b - mean)):.4g} outside the "
                "interval, too far for float64 to solve for the parent std. a and b are absolute "
                f"values: for ±2 std around the mean pass a=mean-2*std, b=mean+2*std; or move "
                "mean into [a, b]."
            )
    check_sampleable(mean, std, a, b, where=where)
    return sample_truncated_(tensor, mean, std, a, b, generator)
