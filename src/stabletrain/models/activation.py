"""Activation modules by name, class or factory, so every builder accepts the same options.

Builders put activation *modules* (``nn.ReLU()``, not ``F.relu``) in the network so that they
show up in ``model.named_modules()`` and :func:`stabletrain.init.activation_name` can read which
activation follows each layer.

==========  =================  ==========  =================
name        module             name        module
==========  =================  ==========  =================
relu        nn.ReLU            selu        nn.SELU
leaky_relu  nn.LeakyReLU(0.01) elu         nn.ELU
tanh        nn.Tanh            mish        nn.Mish
sigmoid     nn.Sigmoid         softplus    nn.Softplus
gelu        nn.GELU            identity    nn.Identity
silu        nn.SiLU            linear      nn.Identity
==========  =================  ==========  =================
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Literal

from torch import nn

__all__ = ["ACTIVATION_NAMES", "ActivationName", "ActivationSpec", "make_activation"]

ActivationName = Literal[
    "relu",
    "leaky_relu",
    "tanh",
    "sigmoid",
    "gelu",
    "silu",
    "selu",
    "elu",
    "mish",
    "softplus",
    "identity",
    "linear",
]
ActivationSpec = ActivationName | str | nn.Module | Callable[[], nn.Module]
"""A name from :data:`ACTIVATION_NAMES`, an ``nn.Module`` class (``nn.PReLU``), a factory
(``lambda: nn.LeakyReLU(0.2)``) or an instance (copied for every layer)."""

_TABLE: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "selu": nn.SELU,
    "elu": nn.ELU,
    "mish": nn.Mish,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
    "linear": nn.Identity,
}
ACTIVATION_NAMES: tuple[str, ...] = tuple(_TABLE)
"""The names :func:`make_activation` knows (case-insensitive)."""


def make_activation(activation: ActivationSpec, *, where: str = "make_activation") -> nn.Module:
    """Build a fresh activation module from a name, a module class, a factory or an instance.

    An instance is deep-copied, so a module with parameters (``nn.PReLU()``) gives every layer
    its own parameters instead of silently sharing one.

    Args:
        activation: a name from :data:`ACTIVATION_NAMES`, an ``nn.Module`` class, a callable
            taking no argument and returning a module, or a module instance.
        where: the caller's name, for error messages.

    Raises:
        ValueError: for an unknown name.
        TypeError: for anything else that does not produce an ``nn.Module``.

    Example:
        >>> make_activation("gelu")
        GELU(approximate='none')
        >>> make_activation(lambda: nn.LeakyReLU(0.2))
        LeakyReLU(negative_slope=0.2)
    """
    if isinstance(activation, str):
        key = activation.lower()
        if key not in _TABLE:
            valid = ", ".join(repr(n) for n in ACTIVATION_NAMES)
            raise ValueError(
                f"{where}: unknown activation {activation!r}; valid names are {valid}. For "
                "another one pass its nn.Module class (nn.PReLU) or a factory "
                "(lambda: nn.LeakyReLU(0.2))."
            )
        return _TABLE[key]()
    if isinstance(activation, nn.Module):
        return copy.deepcopy(activation)
    if callable(activation):
        module = activation()
        if isinstance(module, nn.Module):
            return module
        raise TypeError(
            f"{where}: the activation factory {activation!r} returned "
            f"{type(module).__name__}, not an nn.Module. Wrap a function f as a module, e.g. "
            "a small nn.Module subclass whose forward returns f(x)."
        )
    raise TypeError(
        f"{where}: activation must be a name ({', '.join(ACTIVATION_NAMES)}), an nn.Module class, "
        f"a factory or an instance, got {type(activation).__name__}."
    )
