"""The names ``torch.nn.init`` users look for: ``kaiming_uniform_``, ``kaiming_normal_`` and
``calculate_gain``, with torch's signatures, so code ported from torch runs unchanged.

- :func:`kaiming_uniform_` / :func:`kaiming_normal_` are :func:`~stabletrain.init.he_uniform_` /
  :func:`~stabletrain.init.he_normal_` under torch's name and positional order
  ``(tensor, a, mode, nonlinearity, generator)``. For ``linear``, ``relu`` and ``leaky_relu``
  (what Kaiming init is used with) they draw exactly what torch draws. For other activations they
  use the exact gain (torch: tanh 5/3, exact 1.5925; sigmoid 1, exact 1.8462; SELU 3/4, exact
  1), and, with ``mode="fan_out"``, the backward gain; they also accept any activation (``"gelu"``,
  ``nn.SiLU()``), which torch refuses.
- :func:`calculate_gain` follows torch's table by default (``convention="torch"``), so a ported
  ``std = calculate_gain("tanh") / sqrt(fan)`` gives the same number; for activations torch has
  no value for (GELU, SiLU, Mish, ...) it returns the exact gain, and ``convention="exact"``
  returns the exact gain for every activation (:func:`stabletrain.init.gain`).

>>> import torch
>>> from stabletrain import init
>>> w = init.kaiming_normal_(torch.empty(256, 128), mode="fan_out", nonlinearity="relu")
>>> init.calculate_gain("tanh"), round(init.calculate_gain("tanh", convention="exact"), 4)
(1.6666666666666667, 1.5925)
"""

from __future__ import annotations

import torch

from stabletrain._checks import check_choice
from stabletrain.init.gain import (
    _TORCH_NAMES,
    CONV_NAMES,
    ActivationLike,
    GainConvention,
    activation_name,
    gain,
)
from stabletrain.init.schemes import FanMode, he_normal_, he_uniform_

__all__ = ["TORCH_NONLINEARITIES", "calculate_gain", "kaiming_normal_", "kaiming_uniform_"]

TORCH_NONLINEARITIES: tuple[str, ...] = ("linear", *CONV_NAMES, *_TORCH_NAMES[1:])
"""The names ``torch.nn.init.calculate_gain`` knows; ``calculate_gain`` returns torch's value
for these by default."""


def calculate_gain(
    nonlinearity: ActivationLike,
    param: float | None = None,
    *,
    convention: GainConvention = "torch",
) -> float:
    """``torch.nn.init.calculate_gain`` with the same signature and, by default, the same values.

    Args:
        nonlinearity: an activation name, module or callable. Under ``convention="torch"``,
            torch's names (:data:`TORCH_NONLINEARITIES`, in any case) and the modules and
            functions of those activations (``nn.Tanh()``, ``nn.LeakyReLU(0.2)``, ``F.relu``)
            give torch's value; any other activation gives its exact forward gain (torch has
            none for it).
        param: leaky ReLU's negative slope (default 0.01), as in torch; ignored by the other
            names under ``convention="torch"``, like torch does.
        convention: ``"torch"`` (default: torch's table, for ported code) or ``"exact"``
            (``1/sqrt(E[f(z)²])`` for ``z ~ N(0, 1)``, see :func:`stabletrain.init.gain`).

    Raises:
        ValueError: an unknown activation name or convention, a non-numeric or bool ``param``
            for leaky ReLU (torch raises the same).

    Example:
        >>> calculate_gain("leaky_relu", 0.2) == torch.nn.init.calculate_gain("leaky_relu", 0.2)
        True
        >>> round(calculate_gain("gelu"), 4)   # torch has no value: the exact gain
        1.5335
    """
    check_choice("convention", convention, ("torch", "exact"), where="calculate_gain")
    if convention == "torch":
        if isinstance(nonlinearity, str):
            name = activation_name(nonlinearity)  # "Tanh", "conv2d", "identity" → torch's names
            if name in TORCH_NONLINEARITIES:
                return float(torch.nn.init.calculate_gain(name, param))  # type: ignore[arg-type]
        else:
            try:  # a module or function torch has a value for (nn.Tanh(), nn.LeakyReLU(0.2))
                return gain(nonlinearity, convention="torch")
            except ValueError:
                pass  # torch has no value for it: the exact gain below
    leaky = isinstance(nonlinearity, str) and nonlinearity.lower() == "leaky_relu"
    if leaky and param is not None:
        if isinstance(param, bool) or not isinstance(param, int | float):
            raise ValueError(
                f"calculate_gain: negative_slope {param!r} is not a valid number; pass a float "
                "such as 0.01."
            )
        return gain("leaky_relu", negative_slope=float(param))
    return gain(nonlinearity)


def kaiming_uniform_(
    tensor: torch.Tensor,
    a: float = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: ActivationLike = "leaky_relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He/Kaiming uniform ``U(±gain·√(3/fan))`` in place: :func:`~stabletrain.init.he_uniform_`
    with ``torch.nn.init.kaiming_uniform_``'s signature (He et al. 2015).

    Identical draws to torch for ``linear``, ``relu`` and ``leaky_relu`` (with slope ``a``);
    exact gains for every other activation (see the module docstring).

    Raises:
        ValueError: ``a != 0`` with a ``nonlinearity`` other than ``"leaky_relu"`` (torch ignores
            ``a`` there, which hides a bug); an unknown ``mode`` or activation.

    Example:
        >>> w = kaiming_uniform_(torch.empty(256, 128), nonlinearity="relu")
        >>> round(w.var().item() * 128, 1)
        2.0
    """
    return he_uniform_(tensor, a, mode, nonlinearity, generator=generator)


def kaiming_normal_(
    tensor: torch.Tensor,
    a: float = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: ActivationLike = "leaky_relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He/Kaiming normal ``N(0, gain²/fan)`` in place: :func:`~stabletrain.init.he_normal_`
    with ``torch.nn.init.kaiming_normal_``'s signature (He et al. 2015).

    Identical draws to torch for ``linear``, ``relu`` and ``leaky_relu`` (with slope ``a``);
    exact gains for every other activation (see the module docstring).

    Raises:
        ValueError: ``a != 0`` with a ``nonlinearity`` other than ``"leaky_relu"`` (torch ignores
            ``a`` there, which hides a bug); an unknown ``mode`` or activation.

    Example:
        >>> w = kaiming_normal_(torch.empty(256, 128), mode="fan_out", nonlinearity="relu")
        >>> round(w.var().item() * 256, 1)
        2.0
    """
    return he_normal_(tensor, a, mode, nonlinearity, generator=generator)
