"""The policy's schemes by name: one function each, used by the rules (valid names) and by the
application (what a name draws). Adding a scheme is adding one entry here."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from stabletrain.init.fans import Fans, recurrent_gates
from stabletrain.init.schemes import (
    Distribution,
    FanMode,
    constant_,
    normal_,
    orthogonal_,
    standard_,
    trunc_normal_,
    variance_scaling_,
    zeros_,
)


@dataclass(frozen=True)
class Draw:
    """What a scheme needs besides the tensor: the owner, the parameter's own name, the gain
    the rule resolved (the activation's, or the rule's ``gain`` option), the rule's other
    options, the fans (per expert for batched weights) and the generator."""

    module: nn.Module
    pname: str
    gain: float
    options: Mapping[str, Any]
    fans: Fans | None
    generator: torch.Generator | None


Scheme = Callable[[torch.Tensor, Draw], "float | None"]
"""Draw a parameter in place; return the gain it used, ``None`` for a scheme without one."""


def _variance(kind: str, mode: FanMode, distribution: Distribution) -> Scheme:
    """``Var(w) = gain² / fan``, Xavier's fan the average; LeCun's gain is 1 whatever follows."""

    def draw(p: torch.Tensor, d: Draw) -> float:
        g = 1.0 if kind == "lecun" else d.gain
        fan_mode = d.options.get("mode", mode)
        variance_scaling_(p, g * g, fan_mode, distribution, fans=d.fans, generator=d.generator)
        return g

    return draw


def _orthogonal(p: torch.Tensor, d: Draw) -> float:
    """Orthogonal (Saxe et al. 2014), per gate block for recurrent weights."""
    rnn = isinstance(d.module, nn.RNNBase | nn.RNNCellBase)
    orthogonal_(p, d.gain, blocks=recurrent_gates(d.module) if rnn else 1, generator=d.generator)
    return d.gain


def _constant(p: torch.Tensor, d: Draw) -> None:
    """``value`` (default 0); with ``forget_bias``, an LSTM bias: 0, its forget gate the value."""
    if "forget_bias" not in d.options:
        constant_(p, d.options.get("value", 0.0))
        return
    zeros_(p)  # gates i, f, g, o
    forget = d.options["forget_bias"]
    if forget is not None and d.pname.startswith("bias_ih"):
        hidden = p.shape[0] // 4
        constant_(p[hidden : 2 * hidden], forget)


def _zeros(p: torch.Tensor, d: Draw) -> None:
    zeros_(p)


def _ones(p: torch.Tensor, d: Draw) -> None:
    constant_(p, 1.0)


def _normal(p: torch.Tensor, d: Draw) -> None:
    normal_(p, d.options.get("mean", 0.0), d.options.get("std", 0.02), generator=d.generator)


def _standard(p: torch.Tensor, d: Draw) -> None:
    """PyTorch's default for Linear/Conv weights (U(±1/√fan_in)), the tutorials' "standard"."""
    standard_(p, fans=d.fans, generator=d.generator)


def _trunc_normal(p: torch.Tensor, d: Draw) -> None:
    std = d.options.get("std", 0.02)
    trunc_normal_(p, 0.0, std, -2 * std, 2 * std, generator=d.generator)


REGISTRY: dict[str, Scheme] = {
    "he_normal": _variance("he", "fan_in", "normal"),
    "he_uniform": _variance("he", "fan_in", "uniform"),
    "xavier_uniform": _variance("xavier", "fan_avg", "uniform"),
    "xavier_normal": _variance("xavier", "fan_avg", "normal"),
    "lecun_normal": _variance("lecun", "fan_in", "normal"),
    "lecun_uniform": _variance("lecun", "fan_in", "uniform"),
    "orthogonal": _orthogonal,
    "zeros": _zeros,
    "ones": _ones,
    "constant": _constant,
    "normal": _normal,
    "trunc_normal": _trunc_normal,
    "standard": _standard,
}
"""Scheme name -> the function that draws it (the role schemes, decided by the graph, and
``"keep"`` are not here)."""


def resolved_gain(option: Any, act_gain: float | None) -> float:
    """A rule's ``gain`` option as a number: ``"auto"`` is the following activation's exact
    gain (1 where none), ``"auto_relu"`` the same with √2 where none (He's)."""
    if option in ("auto", "auto_relu"):
        if act_gain is not None:
            return act_gain
        return 1.0 if option == "auto" else math.sqrt(2.0)
    return float(option)
