"""A residual MLP whose branches end in a weight layer: the basic block of He et al. 2016 on
vectors, the block Fixup (Zhang et al. 2019) is defined for."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from stabletrain._checks import check_choice, check_positive_int
from stabletrain.models._layers import NORMS, NormName, make_norm1d
from stabletrain.models._validate import check_dropout
from stabletrain.models.activation import ActivationSpec, make_activation
from stabletrain.models.residual import Residual

__all__ = ["resmlp"]


def _branch(
    width: int, activation: ActivationSpec, norm: NormName | None, dropout: float, bias: bool
) -> nn.Sequential:
    """``fc1 -> norm1 -> act -> dropout -> fc2 -> norm2``, the optional layers left out."""
    layers: list[tuple[str, nn.Module | None]] = [
        ("fc1", nn.Linear(width, width, bias=bias)),
        ("norm1", make_norm1d(norm, width)),
        ("act", make_activation(activation, where="resmlp")),
        ("dropout", nn.Dropout(dropout) if dropout > 0 else None),
        ("fc2", nn.Linear(width, width, bias=bias)),
        ("norm2", make_norm1d(norm, width)),
    ]
    return nn.Sequential(OrderedDict((n, m) for n, m in layers if m is not None))


def resmlp(
    in_features: int,
    out_features: int,
    blocks: int,
    width: int,
    activation: ActivationSpec = "relu",
    norm: NormName | None = None,
    dropout: float = 0.0,
    bias: bool = True,
) -> nn.Sequential:
    """A stem, ``blocks`` residual blocks ``x + fc2(act(fc1(x)))``, then a Linear head.

    .. math::

        h_0 = \\mathrm{act}(W_s x), \\qquad h_{l} = h_{l-1} + W_2^{(l)}\\,
        \\mathrm{act}(W_1^{(l)} h_{l-1}), \\qquad y = W_h h_L.

    Each branch has two weight layers and *ends in one* (He et al. 2016, "Deep Residual Learning
    for Image Recognition", with the activation inside the branch as in Zhang, Dauphin & Ma
    2019, "Fixup Initialization"). That makes the block exactly the identity when its last layer
    is zero while the branch still gets a gradient, so ``init_residual_(model, x, "zero")`` and
    ``"fixup"`` apply as published. :func:`~stabletrain.models.mlp` with ``residual=True`` is the
    other block, ``x + act(W x)``: its branch ends in the activation, and a zeroed ReLU branch
    would never train (``relu'(0) = 0``).

    With ``norm``, each Linear of a branch is followed by a norm layer, as in the basic block's
    ``conv-BN-ReLU-conv-BN``; the branch's last norm weight is then what zero-init sets to 0
    (Goyal et al. 2017). Names: ``stem, norm (if any), act, block1, ..., block{blocks}, head``;
    inside a block, ``block1.block.fc1, norm1, act, dropout, fc2, norm2`` (optional layers left
    out). Weight layers: ``2·blocks + 2``. Every layer keeps PyTorch's default initialization.

    Args:
        in_features: size of each input sample; inputs are ``(batch, in_features)``.
        out_features: size of each output sample.
        blocks: number of residual blocks (>= 1).
        width: size of the residual stream and of every hidden layer.
        activation: a name (``"relu"``, ``"tanh"``, ``"gelu"``, ...), an ``nn.Module`` class, a
            factory or an instance (copied for each use); used after the stem and inside each
            branch.
        norm: ``None``, ``"batch"`` (``nn.BatchNorm1d``) or ``"layer"`` (``nn.LayerNorm``).
        dropout: drop probability in ``[0, 1)`` after each branch's activation.
        bias: whether every Linear layer has a bias.

    Returns:
        an ``nn.Sequential`` mapping ``(batch, in_features)`` to ``(batch, out_features)``.

    Raises:
        ValueError: for a non-positive size or number of blocks, an unknown activation or norm,
            or a dropout outside ``[0, 1)``.

    Example:
        >>> import torch
        >>> from stabletrain import init
        >>> net = resmlp(64, 10, blocks=3, width=32)
        >>> [name for name, _ in net.named_children()]
        ['stem', 'act', 'block1', 'block2', 'block3', 'head']
        >>> x = torch.randn(8, 64)
        >>> _ = init.init_residual_(net, x, "zero")
        >>> stem = net.act(net.stem(x))
        >>> torch.allclose(net(x), net.head(stem))  # every block is the identity
        True
    """
    where = "resmlp"
    in_features = check_positive_int("in_features", in_features, where=where)
    out_features = check_positive_int("out_features", out_features, where=where)
    blocks = check_positive_int("blocks", blocks, where=where)
    width = check_positive_int("width", width, where=where)
    check_choice("norm", norm, NORMS, where=where)
    dropout = check_dropout(dropout, where=where)

    children: list[tuple[str, nn.Module]] = [("stem", nn.Linear(in_features, width, bias=bias))]
    stem_norm = make_norm1d(norm, width)
    if stem_norm is not None:
        children.append(("norm", stem_norm))
    children.append(("act", make_activation(activation, where=where)))
    for i in range(1, blocks + 1):
        children.append((f"block{i}", Residual(_branch(width, activation, norm, dropout, bias))))
    children.append(("head", nn.Linear(width, out_features, bias=bias)))
    return nn.Sequential(OrderedDict(children))
