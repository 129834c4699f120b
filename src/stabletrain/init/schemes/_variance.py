"""Variance scaling, ``Var(w) = scale / fan``, and its presets: standard, Xavier, He, LeCun.

Why it works (claim I5): for ``z = Σ_j w_j x_j`` with independent zero-mean weights,
``Var(z) = fan_in · Var(w) · E[x²]``; choosing ``Var(w) = gain² / fan_in`` with the activation's
gain keeps ``Var(z)`` constant from layer to layer. The uniform variant ``U(±√3·σ)`` and the
normal variant ``N(0, σ²)`` have the same variance (claim I8).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from stabletrain._checks import check_choice, check_real
from stabletrain.init.fans import Fans
from stabletrain.init.gain import ActivationLike, GainKind, gain
from stabletrain.init.schemes._truncated import TWO_SIGMA_STD, sample_truncated_
from stabletrain.init.schemes.core import (
    NORMAL_RANGE,
    FanMode,
    check_draws_fit,
    fan,
    gain_value,
    initializer,
    resolve_fans,
    std_for,
)

Distribution = Literal["normal", "truncated_normal", "uniform"]
DISTRIBUTIONS: tuple[Distribution, ...] = ("normal", "truncated_normal", "uniform")
FansLike = Fans | tuple[int, int] | None


def _variance_scaling(
    tensor: torch.Tensor,
    scale: float,
    mode: str,
    distribution: str,
    fans: FansLike,
    generator: torch.Generator | None,
    where: str,
) -> torch.Tensor:
    scale = check_real("scale", scale, where=where, positive=True)
    check_choice("distribution", distribution, DISTRIBUTIONS, where=where)
    resolved = resolve_fans(tensor, fans, where)
    fan(resolved, mode, where)  # a typo in mode fails on empty tensors too
    if tensor.numel() == 0:  # nothing to fill; torch.nn.init does the same
        return tensor
    std = std_for(scale, resolved, mode, where)
    bound = math.sqrt(3.0) * std  # uniform's
    parent = std / TWO_SIGMA_STD  # truncating at ±2σ shrinks the std by 0.8796
    largest = {"uniform": bound, "normal": NORMAL_RANGE * std}.get(distribution, 2 * parent)
    check_draws_fit(largest, tensor.dtype, where=where, cause=f"the std sqrt(scale/fan)={std:.4g}")
    if distribution == "uniform":
        return tensor.uniform_(-bound, bound, generator=generator)
    if distribution == "normal":
        return tensor.normal_(0.0, std, generator=generator)
    return sample_truncated_(tensor, 0.0, parent, -2 * parent, 2 * parent, generator)


@initializer
def variance_scaling_(
    tensor: torch.Tensor,
    scale: float = 1.0,
    mode: FanMode = "fan_in",
    distribution: Distribution = "truncated_normal",
    *,
    fans: FansLike = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill ``tensor`` with zero-mean draws of variance ``scale / fan``, in place.

    The one general scheme; every preset below is a one-line special case (as in JAX's
    ``jax.nn.initializers.variance_scaling``). ``"uniform"`` draws ``U(±√(3·scale/fan))``,
    ``"normal"`` ``N(0, scale/fan)`` and ``"truncated_normal"`` a normal truncated at ±2 of its
    own std, rescaled by 1/0.8796 so the variance is still ``scale/fan``.

    Args:
        tensor: a weight with at least 2 dims, or any tensor when ``fans`` is given.
        scale: the target ``fan · Var(w)``, e.g. ``gain²``.
        mode: ``"fan_in"`` (preserve activations), ``"fan_out"`` (preserve gradients) or
            ``"fan_avg"`` (Glorot's compromise).
        distribution: ``"normal"``, ``"truncated_normal"`` or ``"uniform"``.
        fans: explicit fans, e.g. ``layer_fans(lstm, "weight_hh_l0")`` for per-gate fans or
            those of a grouped convolution; by default computed from ``tensor``'s shape.
        generator: the random generator to draw from.

    Example:
        >>> w = variance_scaling_(torch.empty(512, 256), 2.0, "fan_in", "uniform",
        ...                       generator=torch.Generator().manual_seed(0))
        >>> round(w.var().item() * 256, 2)
        2.0
    """
    return _variance_scaling(
        tensor, scale, mode, distribution, fans, generator, "variance_scaling_"
    )


@initializer
def standard_(
    tensor: torch.Tensor, *, fans: FansLike = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The tutorials' "standard" init (标准初始化): ``U(±1/√fan_in)``, variance ``1/(3·fan_in)``.

    It is also PyTorch's default for Linear and ConvNd weights (``kaiming_uniform_(a=√5)``).
    Its gain is ``1/√3``: below every activation's, so the signal shrinks with depth (claim I4).

    >>> w = standard_(torch.empty(64, 100), generator=torch.Generator().manual_seed(0))
    >>> bool(w.abs().max() <= 0.1)
    True
    """
    return _variance_scaling(tensor, 1.0 / 3.0, "fan_in", "uniform", fans, generator, "standard_")


def _xavier(
    tensor: torch.Tensor,
    gain_: float | ActivationLike,
    distribution: str,
    fans: FansLike,
    generator: torch.Generator | None,
    where: str,
) -> torch.Tensor:
    g = gain_value(gain_, where=where, positive=True)
    return _variance_scaling(tensor, g * g, "fan_avg", distribution, fans, generator, where)


@initializer
def xavier_uniform_(
    tensor: torch.Tensor,
    gain: float | ActivationLike = 1.0,
    *,
    fans: FansLike = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Xavier/Glorot uniform: ``U(±gain·√(6 / (fan_in + fan_out)))``, in place.

    Glorot & Bengio (2010), "Understanding the difficulty of training deep feedforward neural
    networks": ``Var(w) = 2/(fan_in + fan_out)`` keeps forward and backward variance roughly
    constant for activations linear around 0 (tanh, softsign). ``gain`` is a number or an
    activation (its exact forward gain, see :func:`stabletrain.init.gain`).

    >>> w = xavier_uniform_(torch.empty(300, 100), generator=torch.Generator().manual_seed(0))
    >>> bool(w.abs().max() <= (6 / 400) ** 0.5)
    True
    """
    return _xavier(tensor, gain, "uniform", fans, generator, "xavier_uniform_")


@initializer
def xavier_normal_(
    tensor: torch.Tensor,
    gain: float | ActivationLike = 1.0,
    *,
    fans: FansLike = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Xavier/Glorot normal: ``N(0, gain²·2 / (fan_in + fan_out))``, in place (Glorot 2010).

    >>> w = xavier_normal_(torch.empty(300, 100), generator=torch.Generator().manual_seed(0))
    >>> round(w.var().item() * 200, 1)
    1.0
    """
    return _xavier(tensor, gain, "normal", fans, generator, "xavier_normal_")


def _he(
    tensor: torch.Tensor,
    a: float,
    mode: str,
    nonlinearity: ActivationLike,
    distribution: str,
    fans: FansLike,
    generator: torch.Generator | None,
    where: str,
) -> torch.Tensor:
    a = check_real("a", a, where=where)
    leaky = isinstance(nonlinearity, str) and nonlinearity.lower() == "leaky_relu"
    if a != 0.0 and not leaky:
        raise ValueError(
            f"{where}: a (the negative slope) applies to nonlinearity='leaky_relu' only, got "
            f"nonlinearity={nonlinearity!r} with a={a}. Pass nonlinearity='leaky_relu', or an "
            f"nn.LeakyReLU({a}) module."
        )
    # fan_in preserves activations (forward gain), fan_out gradients (backward gain); they are
    # equal for the ReLU family, so this matches torch.nn.init.kaiming_* there.
    kind: GainKind = "backward" if mode == "fan_out" else "forward"
    g = gain("leaky_relu", kind, negative_slope=a) if leaky else gain(nonlinearity, kind)
    return _variance_scaling(tensor, g * g, mode, distribution, fans, generator, where)


@initializer
def he_uniform_(
    tensor: torch.Tensor,
    a: float = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: ActivationLike = "leaky_relu",
    *,
    fans: FansLike = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He/Kaiming uniform: ``U(±gain·√(3/fan))``, ``gain = √2`` for ReLU, in place.

    He et al. (2015), "Delving Deep into Rectifiers": ReLU zeroes half of its input, so
    ``Var(w) = 2/fan_in`` keeps the variance constant through depth (claim I7). ``a`` is leaky
    ReLU's negative slope (gain ``√(2/(1 + a²))``); ``nonlinearity`` may be any activation (name,
    module or callable): its forward gain is used with ``fan_in``, its backward gain with
    ``fan_out``. Same signature as ``torch.nn.init.kaiming_uniform_``.

    >>> w = he_uniform_(torch.empty(256, 128), generator=torch.Generator().manual_seed(0))
    >>> round(w.var().item() * 128, 1)
    2.0
    """
    return _he(tensor, a, mode, nonlinearity, "uniform", fans, generator, "he_uniform_")


@initializer
def he_normal_(
    tensor: torch.Tensor,
    a: float = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: ActivationLike = "leaky_relu",
    *,
    fans: FansLike = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He/Kaiming normal: ``N(0, gain²/fan)``, ``gain = √2`` for ReLU, in place (He et al. 2015).

    >>> w = he_normal_(torch.empty(256, 128), nonlinearity="gelu",
    ...                generator=torch.Generator().manual_seed(0))
    >>> round(w.std().item() * 128 ** 0.5, 1)   # GELU's exact gain, 1.5335
    1.5
    """
    return _he(tensor, a, mode, nonlinearity, "normal", fans, generator, "he_normal_")


@initializer
def lecun_uniform_(
    tensor: torch.Tensor, *, fans: FansLike = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """LeCun uniform: ``U(±√(3/fan_in))``, variance ``1/fan_in`` (LeCun et al. 1998).

    >>> w = lecun_uniform_(torch.empty(256, 100), generator=torch.Generator().manual_seed(0))
    >>> round(w.var().item() * 100, 1)
    1.0
    """
    return _variance_scaling(tensor, 1.0, "fan_in", "uniform", fans, generator, "lecun_uniform_")


@initializer
def lecun_normal_(
    tensor: torch.Tensor, *, fans: FansLike = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """LeCun normal: ``N(0, 1/fan_in)``; with SELU, self-normalizing (Klambauer et al. 2017).

    JAX and Keras draw ``lecun_normal`` from a truncated normal; this is the plain normal, as
    ``torch.nn.init``'s ``*_normal_`` functions are (``variance_scaling_(w, 1.0)`` truncates).

    >>> w = lecun_normal_(torch.empty(256, 100), generator=torch.Generator().manual_seed(0))
    >>> round(w.var().item() * 100, 1)
    1.0
    """
    return _variance_scaling(tensor, 1.0, "fan_in", "normal", fans, generator, "lecun_normal_")
