"""Fan-in and fan-out of a weight: inputs summed into one output, outputs one input reaches.

Variance-preserving schemes (Xavier, He, LeCun) set ``Var(w) = scale / fan``, so a wrong fan is a
wrong init. ``torch.nn.init`` computes fans from the tensor alone (dim 0 = outputs, dim 1 = inputs,
the rest a receptive field), which is wrong for grouped and transposed convolutions, embeddings,
and packed recurrent gates and attention projections:

==================================  ==============  =====================  ======================
layer (weight shape)                fan_in          fan_out                torch's generic rule
==================================  ==============  =====================  ======================
Linear (out, in)                    in              out                    same
ConvNd (out, in/g, *k)              in/g · Πk       out/g · Πk             fan_out = out · Πk
ConvTransposeNd (in, out/g, *k)     in/g · Πk       out/g · Πk             in and out swapped
Embedding (num, dim)                1 (one row)     dim                    (dim, num)
RNN/LSTM/GRU (gates · hidden, n)    n               hidden (per gate)      gates · hidden
MultiheadAttention in_proj (3E, E)  E               E (per q/k/v)          3E
Bilinear (out, in1, in2)            in1 · in2       out · in2              same
==================================  ==============  =====================  ======================

``fan_in`` is the number of terms summed into one output element (so ``Var(y) = fan_in · Var(w) ·
E[x²]``); ``fan_out`` is the number of output elements one input element reaches (so the gradient
of an input sums ``fan_out`` terms). Strides are ignored, as in He et al. (2015) and PyTorch.

Example:
    >>> import torch.nn as nn
    >>> layer_fans(nn.Conv2d(32, 64, 3, groups=32))
    Fans(fan_in=9, fan_out=18)
    >>> layer_fans(nn.LSTM(10, 20), "weight_hh_l0")
    Fans(fan_in=20, fan_out=20)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from stabletrain._checks import check_positive_int
from stabletrain._units import is_hf_conv1d

__all__ = ["Fans", "compute_fans", "is_batched_weight", "layer_fans", "recurrent_gates"]


class Fans(NamedTuple):
    """Fan-in and fan-out of one weight tensor (or of one block of it)."""

    fan_in: int
    fan_out: int

    @property
    def fan_avg(self) -> float:
        """The mean of fan_in and fan_out, as used by Xavier/Glorot."""
        return (self.fan_in + self.fan_out) / 2


def compute_fans(
    tensor: torch.Tensor,
    *,
    groups: int = 1,
    blocks: int = 1,
    transposed: bool = False,
    batched: bool = False,
) -> Fans:
    """Fans of a weight with PyTorch's layout, corrected for groups, packed blocks and transposes.

    Args:
        tensor: a weight with at least 2 dims, ``(out, in, *kernel)`` (or ``(in, out, *kernel)``
            when ``transposed``).
        groups: the layer's ``groups`` (grouped and depthwise convolutions): each output channel
            sees ``in/groups`` inputs, each input reaches ``out/groups`` outputs.
        blocks: number of independent blocks packed along dim 0 (4 for LSTM gates, 3 for GRU gates
            and for attention's q/k/v): fans are those of one block.
        transposed: the weight belongs to a ConvTransposeNd, whose layout is ``(in, out/groups,
            *kernel)``; with ``batched``, each matrix is stored ``(in, out)``.
        batched: dim 0 is a batch of independent matrices, one per expert (``(experts, out,
            in)``, as Hugging Face Mixtral/Qwen-MoE store ``gate_up_proj``): fans are those of one
            matrix.

    Raises:
        TypeError: ``tensor`` is not a tensor; ``groups``/``blocks`` are not ints.
        ValueError: for a tensor with fewer than 2 dims (a bias or a norm gain has no fans), or
            when ``groups``/``blocks`` are not >= 1 or do not divide the channel dims.

    Example:
        >>> compute_fans(torch.empty(64, 1, 3, 3), groups=64)   # depthwise conv
        Fans(fan_in=9, fan_out=9)
    """
    where = "compute_fans"
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(
            f"{where}: expected a weight tensor (e.g. layer.weight), got {type(tensor).__name__}."
        )
    if tensor.dim() < 2:
        raise ValueError(
            f"{where}: fans are defined for weights with at least 2 dims, got a tensor of shape "
            f"{tuple(tensor.shape)}. Biases and norm gains have no fans: initialize them with "
            "zeros_/constant_, or pass fans=Fans(fan_in, fan_out) explicitly."
        )
    if batched:
        if tensor.dim() < 3:
            raise ValueError(
                f"{where}: batched=True needs a stack of matrices (experts, out, in), got a tensor "
                f"of shape {tuple(tensor.shape)}."
            )
        return compute_fans(tensor[0], groups=groups, blocks=blocks, transposed=transposed)
    check_positive_int("groups", groups, where=where)
    check_positive_int("blocks", blocks, where=where)
    receptive = math.prod(tensor.shape[2:])
    rows, cols = tensor.shape[0], tensor.shape[1]
    if rows % blocks:
        raise ValueError(
            f"{where}: blocks={blocks} does not divide dim 0 of a tensor of shape "
            f"{tuple(tensor.shape)}."
        )
    rows //= blocks
    if transposed:  # (in, out/groups, *k)
        if rows % groups:
            raise ValueError(f"{where}: groups={groups} does not divide in_channels={rows}.")
        return Fans(rows // groups * receptive, cols * receptive)
    if rows % groups:
        raise ValueError(f"{where}: groups={groups} does not divide out_channels={rows}.")
    return Fans(cols * receptive, rows // groups * receptive)


def recurrent_gates(module: nn.Module) -> int:
    """Number of gate blocks packed in a recurrent layer's weights: RNN 1, GRU 3, LSTM 4."""
    if isinstance(module, nn.LSTM | nn.LSTMCell):
        return 4
    if isinstance(module, nn.GRU | nn.GRUCell):
        return 3
    return 1


def is_batched_weight(module: nn.Module, weight: torch.Tensor) -> bool:
    """A 3-D weight of a mixture-of-experts module (class name says ``Expert``): one matrix
    per expert, not a convolution kernel."""
    return weight.dim() == 3 and "expert" in type(module).__name__.lower()


def layer_fans(module: nn.Module, name: str = "weight", *, transposed: bool = False) -> Fans:
    """Fans of the parameter ``name`` of ``module``, per gate / per q-k-v block where packed.

    Knows Linear, ConvNd, ConvTransposeNd (groups and the reversed layout), Embedding and
    EmbeddingBag, RNN/LSTM/GRU and their cells (per gate), MultiheadAttention's packed
    ``in_proj_weight`` (per q/k/v block), Bilinear, transformers' GPT-2 ``Conv1D`` (whose
    weight is stored ``(in, out)``, the transpose of Linear's) and the 3-D expert weights of
    mixture-of-experts modules (fans of one expert's matrix, stored ``(experts, out, in)``, or
    ``(experts, in, out)`` with ``transposed=True``); any other module's weight falls back to
    :func:`compute_fans`' generic rule.

    Raises:
        TypeError: ``module`` is not an ``nn.Module`` or ``name`` not a string.
        ValueError: if ``module`` has no parameter ``name`` or it has fewer than 2 dims.

    Example:
        >>> layer_fans(nn.MultiheadAttention(64, 4), "in_proj_weight")
        Fans(fan_in=64, fan_out=64)
    """
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"layer_fans: expected the layer (an nn.Module), got {type(module).__name__}; for a "
            "bare tensor use compute_fans(tensor)."
        )
    if not isinstance(name, str):
        raise TypeError(
            f"layer_fans: name must be a parameter name such as 'weight', got {name!r}."
        )
    params = dict(module.named_parameters(recurse=False))
    if name not in params:
        valid = ", ".join(sorted(params)) or "none"
        raise ValueError(
            f"layer_fans: {type(module).__name__} has no parameter {name!r}; its parameters are "
            f"{valid}."
        )
    weight = params[name]
    if isinstance(module, nn.Embedding | nn.EmbeddingBag):
        # y = onehot(i) @ W: one unit-valued input per output, each row feeds `dim` outputs.
        return Fans(1, weight.shape[1])
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return compute_fans(weight, groups=module.groups, transposed=True)
    if isinstance(module, nn.modules.conv._ConvNd):
        return compute_fans(weight, groups=module.groups)
    if isinstance(module, nn.RNNBase | nn.RNNCellBase) and weight.dim() == 2:
        if name.startswith("weight_hr"):  # LSTM projection (proj_size, hidden): one block
            return compute_fans(weight)
        return compute_fans(weight, blocks=recurrent_gates(module))
    if isinstance(module, nn.MultiheadAttention) and name == "in_proj_weight":
        return compute_fans(weight, blocks=3)
    if is_hf_conv1d(module) and weight.dim() == 2:  # y = x @ W + b with W (in, out)
        return Fans(weight.shape[0], weight.shape[1])
    if is_batched_weight(module, weight):
        return compute_fans(weight, batched=True, transposed=transposed)
    return compute_fans(weight)
