"""Variance-preserving gains for any activation, computed rather than looked up.

For a layer ``y = W x`` followed by ``f`` and ``z ~ N(0, 1)`` pre-activations, the next layer's
pre-activation variance is ``fan_in · Var(w) · E[f(z)²]`` and the gradient that reaches ``z`` is
scaled by ``E[f'(z)²]`` (He et al. 2015, "Delving Deep into Rectifiers", eqs. 7 and 13). So the
weight std that keeps variance constant through depth is ``gain / sqrt(fan)`` with

- forward gain  ``g_f = 1 / sqrt(E[f(z)²])``  (use with ``mode="fan_in"``),
- backward gain ``g_b = 1 / sqrt(E[f'(z)²])`` (use with ``mode="fan_out"``).

Expectations over ``N(0, 1)`` are integrated with composite Gauss–Legendre quadrature
(8 nodes per panel of width 0.01 on [-12, 12], float64): panel edges fall on the kinks of ReLU,
hardtanh, ReLU6 and hardswish, so piecewise activations integrate to float precision, where
Gauss–Hermite quadrature is off by 5% for hardtanh's derivative. Derivatives of callables come
from autograd. Closed forms are used where they exist: linear 1, ReLU √2, leaky ReLU
√(2 / (1 + a²)) (both directions).

Values (``kind="forward"`` / ``"backward"``; torch's ``calculate_gain`` where it has one):

=============  ========  ========  ===========
activation     forward   backward  torch
=============  ========  ========  ===========
linear         1.0000    1.0000    1.0000
relu           1.4142    1.4142    1.4142
leaky_relu     1.4141    1.4141    1.4141 (a=0.01)
tanh           1.5925    1.4674    1.6667 (5/3)
sigmoid        1.8462    4.7226    1.0000
gelu           1.5335    1.4811    --
gelu_tanh      1.5336    1.4812    --
quick_gelu     1.5395    1.4915    --
silu           1.6765    1.6233    --
mish           1.4868    1.4448    --
elu            1.2452    1.2234    --
selu           1.0000    0.9660    0.7500
celu           1.2452    1.2234    --
softplus       1.0419    1.8462    --
hardtanh       1.3920    1.2103    --
relu6          1.4142    1.4142    --
hardswish      1.7367    1.6701    --
hardsigmoid    1.8978    6.0081    --
softsign       2.3375    2.0958    --
=============  ========  ========  ===========

Where torch differs, its values are heuristics, not variance-preserving: tanh 5/3 (exact 1.5925),
sigmoid 1 (exact 1.8462; sigmoid's output is not zero-mean, so its second moment, not its
variance, is what the next layer sees) and SELU 3/4, while SELU is self-normalizing with LeCun's
``Var(w) = 1/fan_in``, gain 1 (Klambauer et al. 2017). ``convention="torch"`` returns torch's
table for compatibility.

Xavier/Glorot (2010) assume the linear regime of tanh (f'(0) = 1, gain 1); use
``xavier_*_(w, gain=1.0)`` to follow the tutorials' rule, or ``gain("tanh")`` for the exact value.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain._checks import check_choice, check_real

__all__ = [
    "ACTIVATIONS",
    "ActivationLike",
    "GainConvention",
    "GainKind",
    "activation_name",
    "gain",
    "quick_gelu",
]

ActivationLike = str | nn.Module | Callable[[torch.Tensor], torch.Tensor]
GainKind = Literal["forward", "backward"]
GainConvention = Literal["exact", "torch"]

_Fn = Callable[[torch.Tensor], torch.Tensor]


def quick_gelu(z: torch.Tensor) -> torch.Tensor:
    """``z · σ(1.702 z)``: the sigmoid approximation of GELU that CLIP uses (Hendrycks & Gimpel
    2016, "Gaussian Error Linear Units", section 2), transformers' ``QuickGELUActivation``.

    Example:
        >>> round(float(quick_gelu(torch.tensor(1.0))), 4)
        0.8458
    """
    return z * torch.sigmoid(1.702 * z)


# name -> (builder taking the parameters, default parameters)
_REGISTRY: dict[str, tuple[Callable[..., _Fn], dict[str, float]]] = {
    "linear": (lambda: lambda z: z, {}),
    "relu": (lambda: F.relu, {}),
    "leaky_relu": (
        lambda negative_slope: lambda z: F.leaky_relu(z, negative_slope),
        {"negative_slope": 0.01},
    ),
    "tanh": (lambda: torch.tanh, {}),
    "sigmoid": (lambda: torch.sigmoid, {}),
    "gelu": (lambda: F.gelu, {}),
    "gelu_tanh": (lambda: lambda z: F.gelu(z, approximate="tanh"), {}),
    "quick_gelu": (lambda: quick_gelu, {}),
    "silu": (lambda: F.silu, {}),
    "mish": (lambda: F.mish, {}),
    "elu": (lambda alpha: lambda z: F.elu(z, alpha), {"alpha": 1.0}),
    "selu": (lambda: F.selu, {}),
    "celu": (lambda alpha: lambda z: F.celu(z, alpha), {"alpha": 1.0}),
    "softplus": (
        lambda beta, threshold: lambda z: F.softplus(z, beta, threshold),
        {"beta": 1.0, "threshold": 20.0},
    ),
    "hardtanh": (
        lambda min_val, max_val: lambda z: F.hardtanh(z, min_val, max_val),
        {"min_val": -1.0, "max_val": 1.0},
    ),
    "relu6": (lambda: F.relu6, {}),
    "hardswish": (lambda: F.hardswish, {}),
    "hardsigmoid": (lambda: F.hardsigmoid, {}),
    "softsign": (lambda: F.softsign, {}),
}
ACTIVATIONS: tuple[str, ...] = tuple(_REGISTRY)
"""Activation names :func:`gain` knows (aliases: identity, swish, gelu_new, conv*, ...)."""

# torch's names for linear maps: each has the identity's gain
CONV_NAMES = (
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)
_ALIASES = {
    "identity": "linear",
    "none": "linear",
    "swish": "silu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "quickgelu": "quick_gelu",
    **dict.fromkeys(CONV_NAMES, "linear"),
}
_TORCH_NAMES = ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu")

_FUNCTIONS: dict[Callable[..., torch.Tensor], str] = {
    F.relu: "relu",
    torch.relu: "relu",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    F.gelu: "gelu",
    F.silu: "silu",
    F.mish: "mish",
    F.elu: "elu",
    F.selu: "selu",
    torch.selu: "selu",
    F.celu: "celu",
    F.softplus: "softplus",
    F.hardtanh: "hardtanh",
    F.relu6: "relu6",
    F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid",
    F.softsign: "softsign",
    F.leaky_relu: "leaky_relu",
}


def _module_spec(module: nn.Module) -> tuple[str, dict[str, float]] | None:
    """Map a torch activation module to (name, parameters); None for unknown modules."""
    simple: dict[type[nn.Module], str] = {
        nn.Identity: "linear",
        nn.ReLU: "relu",
        nn.Tanh: "tanh",
        nn.Sigmoid: "sigmoid",
        nn.SiLU: "silu",
        nn.Mish: "mish",
        nn.SELU: "selu",
        nn.ReLU6: "relu6",
        nn.Hardswish: "hardswish",
        nn.Hardsigmoid: "hardsigmoid",
        nn.Softsign: "softsign",
    }
    if type(module) in simple:
        return simple[type(module)], {}
    if isinstance(module, nn.GELU):
        return ("gelu_tanh" if module.approximate == "tanh" else "gelu"), {}
    if isinstance(module, nn.LeakyReLU):
        return "leaky_relu", {"negative_slope": float(module.negative_slope)}
    if isinstance(module, nn.PReLU):  # several slopes: their mean, the slope at init (0.25)
        return "leaky_relu", {"negative_slope": float(module.weight.detach().mean())}
    if isinstance(module, nn.ELU | nn.CELU):
        return type(module).__name__.lower(), {"alpha": float(module.alpha)}
    if isinstance(module, nn.Softplus):
        return "softplus", {"beta": float(module.beta), "threshold": float(module.threshold)}
    if isinstance(module, nn.Hardtanh):
        return "hardtanh", {"min_val": float(module.min_val), "max_val": float(module.max_val)}
    return None


def _canonical(name: str, params: dict[str, float]) -> tuple[str, tuple[tuple[str, float], ...]]:
    key = _ALIASES.get(name.lower(), name.lower())
    check_choice("activation", key, ACTIVATIONS, where="gain")
    defaults = _REGISTRY[key][1]
    unknown = set(params) - set(defaults)
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise ValueError(
            f"gain: unknown parameter(s) {sorted(unknown)} for activation {key!r}; it takes: "
            f"{valid}."
        )
    merged = {k: check_real(k, params.get(k, v), where="gain") for k, v in defaults.items()}
    return key, tuple(sorted(merged.items()))


def activation_name(activation: ActivationLike) -> str:
    """A readable name for an activation: its canonical name if known, else its repr.

    >>> activation_name(nn.GELU(approximate="tanh"))
    'gelu_tanh'
    """
    if isinstance(activation, str):
        return _ALIASES.get(activation.lower(), activation.lower())
    if isinstance(activation, nn.Module):
        spec = _module_spec(activation)
        return spec[0] if spec else repr(activation)
    if activation in _FUNCTIONS:
        return _FUNCTIONS[activation]
    return getattr(activation, "__name__", repr(activation))


@functools.cache
def _nodes() -> tuple[torch.Tensor, torch.Tensor]:
    """Composite Gauss–Legendre nodes and N(0, 1)-density weights on [-12, 12], float64."""
    x, w = np.polynomial.legendre.leggauss(8)
    edges = np.arange(-1200, 1201) / 100.0  # exact multiples of 0.01: kinks fall on edges
    lo, hi = edges[:-1, None], edges[1:, None]
    z = ((hi - lo) / 2 * x + (hi + lo) / 2).ravel()
    weights = ((hi - lo) / 2 * w).ravel() * np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
    return torch.from_numpy(z), torch.from_numpy(weights)


def _expectation_sq(fn: _Fn, kind: GainKind, what: str) -> float:
    """E[f(z)²] (forward) or E[f'(z)²] (backward) for z ~ N(0, 1)."""
    z, w = _nodes()
    z = z.clone().requires_grad_(kind == "backward")
    try:
        with torch.enable_grad():
            y = fn(z)
            if not isinstance(y, torch.Tensor) or y.shape != z.shape:
                raise TypeError("it did not return a tensor of the input's shape")
            if not y.is_floating_point():
                raise TypeError(f"it returned a {y.dtype} tensor, not a real floating-point one")
            if kind == "backward":
                (y,) = torch.autograd.grad(y.sum(), z, allow_unused=False)
    except ValueError as err:  # the activation refuses its parameters (hardtanh min > max)
        raise ValueError(f"gain: {what} cannot be evaluated: {err}") from err
    except Exception as err:  # whatever a user's callable raises, gain() raises TypeError
        raise TypeError(
            f"gain: cannot evaluate {what} elementwise on a 1-D float64 tensor ({err}). Pass an "
            f"activation name ({', '.join(ACTIVATIONS)}), a torch activation module, or an "
            "elementwise differentiable callable."
        ) from err
    second_moment = float((w * y.detach() ** 2).sum())
    if not math.isfinite(second_moment) or second_moment <= 0:
        raise ValueError(
            f"gain: E[f{'' if kind == 'forward' else chr(39)}(z)^2] of {what} is "
            f"{second_moment}; no finite gain exists (is the activation constant?)."
        )
    return second_moment


@functools.cache
def _named_gain(name: str, params: tuple[tuple[str, float], ...], kind: GainKind) -> float:
    p = dict(params)
    if name == "linear":
        return 1.0
    if name == "relu":
        return math.sqrt(2.0)
    if name == "leaky_relu":  # √(2/(1 + a²)), without overflowing a² for a huge slope
        return math.sqrt(2.0) / math.hypot(1.0, p["negative_slope"])
    builder = _REGISTRY[name][0]
    return 1.0 / math.sqrt(_expectation_sq(builder(**p), kind, repr(name)))


_NORMALIZING_MODULES = (nn.Softmax, nn.Softmin, nn.LogSoftmax, nn.Softmax2d)
_NORMALIZING_FUNCTIONS = (
    torch.softmax,
    torch.log_softmax,
    F.softmax,
    F.log_softmax,
    F.softmin,
    torch.Tensor.softmax,
    torch.Tensor.log_softmax,
)


def _refuse_normalizing(activation: ActivationLike) -> None:
    """Raise for softmax and its kin: each output depends on a whole slice of inputs."""
    normalizing = isinstance(activation, _NORMALIZING_MODULES) or any(
        activation is f for f in _NORMALIZING_FUNCTIONS
    )
    if not normalizing:
        return
    raise ValueError(
        f"gain: {activation_name(activation)} is not an elementwise activation: it normalizes "
        "over a whole dim (each output depends on every input of its slice), so no "
        "variance-preserving gain exists for it (integrated elementwise over z ~ N(0, 1) like "
        "the others, it would give a meaningless ~5e7). "
        "The layer before a softmax produces logits: initialize it as linear "
        "(gain('linear') = 1), or with a small std for a classifier or LM head "
        "(stabletrain.auto_init does both); for attention scores, scale q·kᵀ by 1/sqrt(d_k)."
    )


def gain(
    activation: ActivationLike = "linear",
    kind: GainKind = "forward",
    *,
    convention: GainConvention = "exact",
    **params: float,
) -> float:
    """The weight-std multiplier that keeps variance constant through ``activation``.

    ``std(w) = gain / sqrt(fan)``; forward gain ``1/sqrt(E[f(z)²])``, backward gain
    ``1/sqrt(E[f'(z)²])`` for ``z ~ N(0, 1)`` (He et al. 2015). See the module docstring for the
    table of values and where they differ from ``torch.nn.init.calculate_gain``.

    Args:
        activation: a name (see :data:`ACTIVATIONS`), a torch activation module
            (``nn.GELU(approximate="tanh")``, ``nn.LeakyReLU(0.1)``, ...), a torch function
            (``F.silu``) or any elementwise callable.
        kind: ``"forward"`` (preserves activations; pair with fan_in) or ``"backward"``
            (preserves gradients; pair with fan_out).
        convention: ``"exact"`` (computed) or ``"torch"`` (torch's table; forward only, names
            ``linear, sigmoid, tanh, relu, leaky_relu, selu``).
        **params: the activation's parameters when given by name (``negative_slope``, ``alpha``,
            ``beta``, ``threshold``, ``min_val``, ``max_val``).

    Raises:
        ValueError: unknown name, kind, convention or parameter; a parameter the activation
            refuses (hardtanh's ``min_val > max_val``); no finite gain (a constant activation,
            NaN or inf values); softmax, log-softmax or softmin (module or function), which
            normalize over a dim and are not elementwise: the layer before them produces
            logits, initialized as linear (gain 1) or smaller.
        TypeError: an object that is not an activation; a callable that fails on a 1-D float64
            tensor (whatever it raises) or returns something else than a real floating-point
            tensor of the input's shape.

    Example:
        >>> round(gain("relu"), 4), round(gain("gelu"), 4)
        (1.4142, 1.5335)
        >>> round(gain("tanh"), 4), round(gain("tanh", convention="torch"), 4)
        (1.5925, 1.6667)
        >>> round(gain(nn.LeakyReLU(0.2)), 4)
        1.3868
    """
    check_choice("kind", kind, ("forward", "backward"), where="gain")
    check_choice("convention", convention, ("exact", "torch"), where="gain")
    _refuse_normalizing(activation)
    if isinstance(activation, nn.Module):
        spec = _module_spec(activation)
        if spec is not None:
            return gain(spec[0], kind, convention=convention, **{**spec[1], **params})
        if convention == "exact" and not params:
            return 1.0 / math.sqrt(_expectation_sq(activation, kind, repr(activation)))
    elif callable(activation) and not isinstance(activation, str):
        if activation in _FUNCTIONS:
            return gain(_FUNCTIONS[activation], kind, convention=convention, **params)
        if convention == "exact" and not params:
            return 1.0 / math.sqrt(_expectation_sq(activation, kind, repr(activation)))
    if not isinstance(activation, str):
        if params or convention != "exact":
            raise ValueError(
                f"gain: parameters and convention='torch' apply to named activations only; got "
                f"{activation!r} with {params or convention!r}."
            )
        raise TypeError(
            f"gain: expected an activation name, module or callable, got "
            f"{type(activation).__name__}."
        )
    name, canonical = _canonical(activation, params)
    if convention == "torch":
        check_choice("activation for convention='torch'", name, _TORCH_NAMES, where="gain")
        if kind != "forward":
            raise ValueError("gain: convention='torch' has forward gains only; use kind='forward'.")
        param = dict(canonical).get("negative_slope")
        return float(torch.nn.init.calculate_gain(name, param))  # type: ignore[arg-type]
    return _named_gain(name, canonical, kind)
