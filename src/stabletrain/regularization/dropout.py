"""Dropout variants: stochastic depth (DropPath), its per-block rates, and classic dropout.

- :func:`drop_path` / :class:`DropPath` drop a whole residual branch per sample (stochastic
  depth, Huang et al. 2016, "Deep Networks with Stochastic Depth"), scaling kept samples by
  1/(1−p) so that E[output] = input and evaluation needs no rescaling.
- :func:`drop_path_rates` gives the paper's linear rule, one rate per block.
- :func:`classic_dropout` / :class:`ClassicDropout` are dropout as first published (Hinton et al.
  2012; Srivastava et al. 2014): no scaling in training, outputs multiplied by the keep
  probability 1−p at evaluation. torch's ``nn.Dropout`` is the inverted form; claim R7 of the
  tutorials says the two agree in expectation (see :func:`classic_dropout`).

All draw their masks with ``Tensor.bernoulli_`` in the input's dtype on the input's device, from
``generator`` if one is given (it must live on that device) or torch's global generator.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stabletrain._checks import check_generator, check_positive_int, check_real

__all__ = ["ClassicDropout", "DropPath", "classic_dropout", "drop_path", "drop_path_rates"]


def _check_rate(name: str, value: Any, *, where: str) -> float:
    """Return ``value`` as a float in [0, 1], else raise."""
    rate = check_real(name, value, where=where, non_negative=True)
    if rate > 1.0:
        raise ValueError(
            f"{where}: {name} is a probability and must be in [0, 1], got {rate}; "
            "pass e.g. 0.1 for a 10% drop rate."
        )
    return rate


def _check_input(x: Any, training: Any, generator: Any, *, where: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor, got {type(x).__name__}.")
    if not x.is_floating_point():
        raise TypeError(
            f"{where}: expected a floating-point tensor, got dtype {x.dtype}; "
            "cast it with x.float() first."
        )
    if not isinstance(training, bool):
        raise TypeError(
            f"{where}: training must be a bool (e.g. self.training), got {type(training).__name__}."
        )
    check_generator(generator, x.device, where=where)
    return x


def _keep_mask(
    x: torch.Tensor, shape: tuple[int, ...], keep: float, generator: torch.Generator | None
) -> torch.Tensor:
    """1 with probability ``keep``, else 0, in ``x``'s dtype and on its device."""
    mask = torch.empty(shape, dtype=x.dtype, device=x.device)
    return mask.bernoulli_(keep, generator=generator)


def drop_path(
    x: torch.Tensor,
    p: float,
    training: bool = True,
    *,
    scale_by_keep: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``p``.

    Each sample ``b`` of the batch (dim 0) keeps its entire branch output with probability
    1−p, ``out[b] = m_b · x[b] / (1−p)`` with ``m_b ~ Bernoulli(1−p)``, so that
    E[out] = x (Huang et al. 2016, "Deep Networks with Stochastic Depth"). Use it on the branch
    before the residual addition: ``x + drop_path(f(x), p, self.training)``. The mask has shape
    ``(B, 1, ..., 1)``, so any rank works ((B, C), (B, T, C), (B, C, H, W), ...) as long as the
    batch is dim 0.

    Args:
        x: the branch output, floating point, batch first.
        p: drop probability in [0, 1]. ``p == 1`` returns zeros (no division by 1−p = 0).
        training: drop only in training; at evaluation (or with ``p == 0``) ``x`` itself is
            returned.
        scale_by_keep: divide kept samples by 1−p (inverted scaling, the default). Without
            it E[out] = (1−p)·x, the paper's original form, which multiplies the branch by 1−p
            at evaluation; this function does not, so do that yourself.
        generator: random generator on ``x``'s device (default: torch's global one).

    Returns:
        A tensor of ``x``'s shape, dtype and device.

    Raises:
        TypeError: ``x`` is not a floating-point tensor, ``training`` not a bool, ``generator``
            not a ``torch.Generator``.
        ValueError: ``p`` outside [0, 1], a 0-d ``x`` in training, a generator on another
            device type than ``x``.

    Example:
        >>> import torch
        >>> x = torch.ones(8, 3)
        >>> out = drop_path(x, 0.5, generator=torch.Generator().manual_seed(0))
        >>> bool(((out == 0) | (out == 2)).all()), bool((out == out[:, :1]).all())
        (True, True)
        >>> drop_path(x, 0.5, training=False) is x
        True
    """
    where = "drop_path"
    _check_input(x, training, generator, where=where)
    p = _check_rate("p", p, where=where)
    if not training or p == 0.0:
        return x
    if x.dim() == 0:
        raise ValueError(
            f"{where}: x has no batch dimension (a 0-d tensor); pass a tensor of shape (B, ...)."
        )
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)  # (B, 1, ..., 1): one draw per sample
    keep = 1.0 - p
    if keep == 0.0:
        return x * x.new_zeros(shape)  # stays in the autograd graph, unlike zeros_like
    mask = _keep_mask(x, shape, keep, generator)
    if not scale_by_keep:
        return x * mask
    if 1.0 / keep <= torch.finfo(x.dtype).max:
        return x * mask.div_(keep)
    # 1/keep is inf in x's dtype (float16 with p > 0.99998): scale after masking, so a dropped
    # sample stays 0 (not 0·inf = NaN) and a kept one is x/keep, inf only where that overflows
    return (x * mask).div_(keep)


class DropPath(nn.Module):
    """Stochastic depth as a module: :func:`drop_path` with the module's ``training`` flag.

    Args:
        p: drop probability in [0, 1] (:func:`drop_path_rates` gives one per block).
        scale_by_keep: divide kept samples by 1−p (see :func:`drop_path`).

    Example:
        >>> import torch
        >>> layer = DropPath(0.2)
        >>> layer
        DropPath(p=0.2)
        >>> x = torch.randn(4, 5)
        >>> layer.eval()(x) is x
        True
    """

    def __init__(self, p: float, *, scale_by_keep: bool = True) -> None:
        super().__init__()
        self.p = _check_rate("p", p, where="DropPath")
        self.scale_by_keep = bool(scale_by_keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training, scale_by_keep=self.scale_by_keep)

    def extra_repr(self) -> str:
        return f"p={self.p}" + ("" if self.scale_by_keep else ", scale_by_keep=False")


def drop_path_rates(num_blocks: int, max_rate: float) -> list[float]:
    """Per-block drop rates of the linear decay rule: ``p_l = max_rate · l / L``, l = 1..L.

    Huang et al. 2016 ("Deep Networks with Stochastic Depth", eq. 4) set the survival
    probability of block l of L to 1 − (l/L)(1 − p_L): the input is always kept, early blocks
    (low-level features) almost always, the last block with probability p_L (0.5 in the paper).
    This returns the drop rates 1 − survival, so the last block gets ``max_rate`` and the first
    ``max_rate / L``. (Some code uses ``max_rate · l / (L−1)`` for l = 0..L−1 instead, which
    gives the first block rate 0; it is ``[max_rate * l / (L - 1) for l in range(L)]``.)

    Args:
        num_blocks: L, the number of residual blocks (>= 1).
        max_rate: the last block's drop rate, in [0, 1].

    Example:
        >>> drop_path_rates(4, 0.2)
        [0.05, 0.1, 0.15000000000000002, 0.2]
        >>> blocks = [DropPath(p) for p in drop_path_rates(12, 0.1)]
    """
    where = "drop_path_rates"
    num_blocks = check_positive_int("num_blocks", num_blocks, where=where)
    max_rate = _check_rate("max_rate", max_rate, where=where)
    return [max_rate * block / num_blocks for block in range(1, num_blocks + 1)]


def classic_dropout(
    x: torch.Tensor,
    p: float,
    training: bool = True,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Dropout as first published: zero units in training, scale by 1−p at evaluation.

    Training: ``out = m ⊙ x`` with ``m_i ~ Bernoulli(1−p)`` per element and no rescaling, so
    E[out] = (1−p)·x. Evaluation: ``out = (1−p)·x``, the expected training activation (the
    "weight scaling inference rule" of Hinton et al. 2012, "Improving neural networks by
    preventing co-adaptation of feature detectors"; Srivastava et al. 2014, "Dropout: A Simple
    Way to Prevent Neural Networks from Overfitting").

    Equivalence with torch's inverted ``nn.Dropout`` (claim R7): inverted dropout computes
    ``m ⊙ x / (1−p)`` in training and ``x`` at evaluation, so in each form the expected
    training activation equals the evaluation activation; the two differ only by the constant
    factor 1−p in both phases. A next layer with weights W after classic dropout computes
    exactly what one with weights (1−p)·W computes after inverted dropout, for every mask and in
    both phases, so the two train the same family of functions; inverted dropout just does the
    scaling in training and leaves inference untouched.

    Args:
        x: floating-point input, any shape.
        p: drop probability in [0, 1].
        training: drop (training) or scale by 1−p (evaluation).
        generator: random generator on ``x``'s device (default: torch's global one).

    Raises:
        TypeError: ``x`` is not a floating-point tensor, ``training`` not a bool, ``generator``
            not a ``torch.Generator``.
        ValueError: ``p`` outside [0, 1], a generator on another device type than ``x``.

    Example:
        >>> import torch
        >>> x = torch.ones(2, 3)
        >>> classic_dropout(x, 0.25, training=False)
        tensor([[0.7500, 0.7500, 0.7500],
                [0.7500, 0.7500, 0.7500]])
        >>> out = classic_dropout(x, 0.25, generator=torch.Generator().manual_seed(0))
        >>> bool(((out == 0) | (out == 1)).all())  # kept units are not rescaled
        True
    """
    where = "classic_dropout"
    _check_input(x, training, generator, where=where)
    p = _check_rate("p", p, where=where)
    keep = 1.0 - p
    if p == 0.0:
        return x
    if not training:
        return x * keep
    if keep == 0.0:
        return x * x.new_zeros(())
    return x * _keep_mask(x, tuple(x.shape), keep, generator)


class ClassicDropout(nn.Module):
    """Classic (non-inverted) dropout as a module: :func:`classic_dropout` with ``training``.

    Args:
        p: drop probability in [0, 1].

    Example:
        >>> import torch
        >>> layer = ClassicDropout(0.5).eval()
        >>> layer
        ClassicDropout(p=0.5)
        >>> layer(torch.full((3,), 4.0))
        tensor([2., 2., 2.])
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = _check_rate("p", p, where="ClassicDropout")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return classic_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
