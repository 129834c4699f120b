"""Structured schemes: orthogonal (per block), identity and Dirac."""

from __future__ import annotations

import math

import torch

from stabletrain._checks import check_positive_int
from stabletrain.init.gain import ActivationLike
from stabletrain.init.schemes.core import LOW_PRECISION, gain_value, initializer


@initializer
def orthogonal_(
    tensor: torch.Tensor,
    gain: float | ActivationLike = 1.0,
    *,
    blocks: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill ``tensor`` with a (semi-)orthogonal matrix times ``gain``, per block, in place.

    Saxe et al. (2014), "Exact solutions to the nonlinear dynamics of learning in deep linear
    neural networks": all singular values are 1, so norms are preserved exactly through any
    depth or number of time steps (claim I9). Drawn from the Haar measure: QR of a Gaussian
    matrix with the signs of R's diagonal moved into Q. Dims after the first are flattened.

    ``blocks`` splits dim 0 into equal blocks, each orthogonal on its own: pass 4 for an LSTM's
    ``weight_hh`` (one block per gate), 3 for a GRU's. Applying orthogonal init to the fused
    ``(4·hidden, hidden)`` matrix, as ``torch.nn.init.orthogonal_`` does, leaves each gate's
    block with singular values well below 1.

    ``gain`` is a number or an activation (name, module or callable: its exact forward gain,
    see :func:`stabletrain.init.gain`), so ``orthogonal_(w, gain="tanh")`` scales by 1.5925.

    Example:
        >>> w = orthogonal_(torch.empty(4 * 8, 8), blocks=4,
        ...                 generator=torch.Generator().manual_seed(0))
        >>> g = w[8:16]   # the forget gate's block
        >>> torch.allclose(g @ g.T, torch.eye(8), atol=1e-5)
        True
    """
    where = "orthogonal_"
    g = gain_value(gain, where=where, fits=tensor.dtype)
    blocks = check_positive_int("blocks", blocks, where=where)
    if tensor.dim() < 2:
        raise ValueError(
            f"{where}: needs a tensor with at least 2 dims, got shape {tuple(tensor.shape)}; a "
            "1-D tensor has no orthogonal structure (use zeros_/constant_ for biases)."
        )
    if tensor.shape[0] % blocks:
        raise ValueError(
            f"{where}: blocks={blocks} does not divide dim 0 of shape {tuple(tensor.shape)}."
        )
    if tensor.numel() == 0:
        return tensor
    rows, cols = tensor.shape[0] // blocks, math.prod(tensor.shape[1:])
    dtype = torch.float32 if tensor.dtype in LOW_PRECISION else tensor.dtype
    flat = torch.empty(blocks, rows, cols, dtype=dtype, device=tensor.device)
    flat.normal_(0.0, 1.0, generator=generator)
    if rows < cols:
        flat = flat.mT
    q, r = torch.linalg.qr(flat)
    q *= torch.diagonal(r, dim1=-2, dim2=-1).sign().unsqueeze(-2)
    if rows < cols:
        q = q.mT
    return tensor.copy_(q.reshape(tensor.shape).mul_(g))


@initializer
def identity_(tensor: torch.Tensor, gain: float | ActivationLike = 1.0) -> torch.Tensor:
    """Fill a 2-D ``tensor`` with ``gain`` times the identity (ones on the diagonal), in place.

    A layer initialized this way passes its input through unchanged: the init of IRNN's
    recurrent weights (Le et al. 2015) and of blocks meant to start as identity maps.
    ``gain`` is a number or an activation name, module or callable (its exact forward gain).

    >>> identity_(torch.empty(2, 3)).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    g = gain_value(gain, where="identity_", fits=tensor.dtype)
    if tensor.dim() != 2:
        raise ValueError(
            f"identity_: needs a 2-D tensor, got shape {tuple(tensor.shape)}; for convolution "
            "weights (3 to 5 dims) use dirac_."
        )
    tensor.zero_()
    tensor.diagonal().fill_(g)
    return tensor


@initializer
def dirac_(
    tensor: torch.Tensor, groups: int = 1, gain: float | ActivationLike = 1.0
) -> torch.Tensor:
    """Fill a convolution weight with a Dirac delta, so the convolution is the identity map.

    For ``(out, in/groups, *kernel)`` weights: in each group, output channel ``d`` copies input
    channel ``d`` at the kernel's centre, times ``gain``. Used to start residual-free deep
    CNNs as identities (Zagoruyko & Komodakis 2017, DiracNets). ``gain`` is a number or an
    activation name, module or callable (its exact forward gain).

    >>> w = dirac_(torch.empty(2, 2, 3))
    >>> w[0, 0].tolist(), w[0, 1].tolist()
    ([0.0, 1.0, 0.0], [0.0, 0.0, 0.0])
    """
    where = "dirac_"
    g = gain_value(gain, where=where, fits=tensor.dtype)
    groups = check_positive_int("groups", groups, where=where)
    if tensor.dim() not in (3, 4, 5):
        raise ValueError(
            f"{where}: needs a 3-, 4- or 5-D convolution weight, got shape "
            f"{tuple(tensor.shape)}; for 2-D weights use identity_."
        )
    if tensor.shape[0] % groups:
        raise ValueError(
            f"{where}: groups={groups} does not divide out_channels={tensor.shape[0]}."
        )
    per_group = tensor.shape[0] // groups
    tensor.zero_()
    if tensor.numel() == 0:
        return tensor
    diag = torch.arange(min(per_group, tensor.shape[1]), device=tensor.device)
    centre = tuple(k // 2 for k in tensor.shape[2:])
    for group in range(groups):
        index: tuple[torch.Tensor | int, ...] = (group * per_group + diag, diag, *centre)
        tensor[index] = g
    return tensor
