"""What each activation makes measurable: dead units (ReLU family) and saturation (tanh, sigmoid).

An activation is known by its canonical name (:func:`stabletrain.init.activation_name` for
modules; the graph's op names for functional calls). The monitor observes either the
activation's output (an activation module, hooked) or its input, the layer's output (a
functional activation seen by :func:`stabletrain.graph.trace`); both tests below are given in
both spaces and agree exactly:

- **dead** (activations with a dead region, :data:`DEAD_REGION`: ReLU, ReLU6): a unit is alive on
  a batch when some output is > 0; ``f(z) > 0`` if and only if ``z > 0``, so the test is the
  same in both spaces. Smooth rectifiers (SiLU, GELU, Mish, ELU, leaky ReLU...) have a non-zero
  slope below 0: a unit at or below zero still gets a gradient and can recover, so it is never
  dead and is not tested.
- **saturated** (bounded activations): ``|y - c| > level * h`` for an output range centred on
  ``c`` with half-width ``h`` (tanh: ``|y| > 0.99``; sigmoid: ``y`` within 0.5% of 0 or 1 at the
  default ``level = 0.99``), or the equivalent ``|z - c'| > t`` on the input: tanh
  ``t = atanh(level)``, sigmoid ``2 atanh(level)`` (``logit((1 + level) / 2)``), hardsigmoid
  ``3 level``, softsign ``level / (1 - level)``, hardtanh the output test itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from torch import nn

from stabletrain.init import activation_name

Space = Literal["output", "input"]

RECTIFIERS = frozenset(
    {
        "relu",
        "relu6",
        "leaky_relu",
        "elu",
        "celu",
        "selu",
        "gelu",
        "gelu_tanh",
        "quick_gelu",
        "silu",
        "mish",
        "hardswish",
    }
)
DEAD_REGION = frozenset({"relu", "relu6"})
"""Rectifiers whose slope is exactly 0 for every input <= 0: their units can die."""
SATURATING = frozenset({"tanh", "sigmoid", "hardtanh", "hardsigmoid", "softsign"})


@dataclass(frozen=True)
class ActivationKind:
    """The tests one activation supports, in the space the monitor observes it in."""

    name: str
    space: Space
    rectifier: bool  # has a dead region: dead units are measured
    center: float = 0.0  # saturated where |v - center| > threshold
    threshold: float = math.inf

    @property
    def saturating(self) -> bool:
        """Whether the activation is bounded, so that saturation is measured."""
        return math.isfinite(self.threshold)


def activation_kind(
    name: str, params: dict[str, float], *, level: float, space: Space
) -> ActivationKind | None:
    """The tests for activation ``name`` observed in ``space``; None when it supports neither."""
    if name in RECTIFIERS:
        return ActivationKind(name, space, rectifier=name in DEAD_REGION)
    if name not in SATURATING:
        return None
    if name == "hardtanh":
        lo, hi = params.get("min_val", -1.0), params.get("max_val", 1.0)
        return ActivationKind(name, space, False, (lo + hi) / 2, level * (hi - lo) / 2)
    if space == "output":
        center, half = (0.5, 0.5) if name in ("sigmoid", "hardsigmoid") else (0.0, 1.0)
        return ActivationKind(name, space, False, center, level * half)
    inverse = {
        "tanh": math.atanh(level),
        "sigmoid": 2 * math.atanh(level),
        "hardsigmoid": 3 * level,
        "softsign": level / (1 - level),
    }
    return ActivationKind(name, space, False, 0.0, inverse[name])


def module_kind(module: nn.Module, *, level: float) -> ActivationKind | None:
    """The kind of an activation module (``nn.ReLU()``, ``nn.Tanh()``...), observed at its output;
    None for any other module."""
    if not isinstance(module, _ACTIVATION_MODULES):
        return None
    params = {}
    if isinstance(module, nn.Hardtanh):  # also ReLU6, which is a rectifier first
        params = {"min_val": float(module.min_val), "max_val": float(module.max_val)}
    name = "leaky_relu" if isinstance(module, nn.RReLU) else activation_name(module)
    return activation_kind(name, params, level=level, space="output")


_ACTIVATION_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardsigmoid,
    nn.Softsign,
)
