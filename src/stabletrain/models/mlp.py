"""A multilayer perceptron with optional normalization, dropout and residual blocks."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from stabletrain._checks import check_choice, check_positive_int
from stabletrain.models._layers import NORMS, NormName, make_norm1d
from stabletrain.models._validate import check_dropout
from stabletrain.models.activation import ActivationSpec, make_activation
from stabletrain.models.residual import Residual

__all__ = ["NORMS", "NormName", "mlp"]


def _hidden_layers(
    in_features: int,
    width: int,
    activation: ActivationSpec,
    norm: NormName | None,
    dropout: float,
    bias: bool,
) -> list[tuple[str, nn.Module]]:
    """Linear -> norm (if any) -> activation -> dropout (if > 0), as (name, module) pairs."""
    layers: list[tuple[str, nn.Module]] = [("linear", nn.Linear(in_features, width, bias=bias))]
    norm_layer = make_norm1d(norm, width)
    if norm_layer is not None:
        layers.append(("norm", norm_layer))
    layers.append(("act", make_activation(activation, where="mlp")))
    if dropout > 0:
        layers.append(("dropout", nn.Dropout(dropout)))
    return layers


def mlp(
    in_features: int,
    out_features: int,
    depth: int,
    width: int,
    activation: ActivationSpec = "relu",
    norm: NormName | None = None,
    dropout: float = 0.0,
    residual: bool = False,
    bias: bool = True,
) -> nn.Sequential:
    """A fully connected network: ``depth`` hidden blocks of size ``width``, then a Linear head.

    Each hidden block is ``Linear -> norm -> activation -> dropout``, the order the tutorials use
    (norm before the activation, as in Ioffe & Szegedy 2015, "Batch Normalization"; dropout
    after it, so it precedes the next layer's norm, see claim R10). Names and indexing:

    - ``residual=False``: one flat ``nn.Sequential`` named ``linear1, norm1, act1, dropout1,
      linear2, ..., head``, so ``model[0]`` is the first Linear and ``model[-1]`` the head.
    - ``residual=True``: ``hidden1, ..., hidden{depth}, head``. Each ``width -> width`` block is
      a :class:`Residual`, ``x + block(x)`` (He et al. 2016); the first block has no skip when
      ``in_features != width`` (the shapes differ) and is a plain ``nn.Sequential``. These
      branches end in the activation; for branches that end in a weight layer (the basic block,
      the one Fixup and zero-init residual are defined for) use :func:`~stabletrain.models.resmlp`.

    Layers keep PyTorch's default initialization; use :mod:`stabletrain.init` to change it.

    Args:
        in_features: size of each input sample; inputs are ``(batch, in_features)``.
        out_features: size of each output sample.
        depth: number of hidden blocks (>= 1); the network has ``depth + 1`` Linear layers.
        width: size of every hidden layer.
        activation: a name (``"relu"``, ``"tanh"``, ``"gelu"``, ...; see
            :data:`~stabletrain.models.ACTIVATION_NAMES`), an ``nn.Module`` class, a factory or
            an instance (copied for each block).
        norm: ``None``, ``"batch"`` (``nn.BatchNorm1d``) or ``"layer"`` (``nn.LayerNorm``).
        dropout: drop probability in ``[0, 1)`` after each activation; no module when 0.
        residual: wrap the ``width -> width`` hidden blocks in a skip connection.
        bias: whether every Linear layer, the head included, has a bias.

    Returns:
        an ``nn.Sequential`` mapping ``(batch, in_features)`` to ``(batch, out_features)``.

    Raises:
        ValueError: for ``depth < 1``, a non-positive size, an unknown activation or norm, or a
            dropout outside ``[0, 1)``.

    Example:
        >>> import torch
        >>> model = mlp(784, 10, depth=2, width=128, norm="batch", dropout=0.1)
        >>> [type(m).__name__ for m in model]  # doctest: +NORMALIZE_WHITESPACE
        ['Linear', 'BatchNorm1d', 'ReLU', 'Dropout', 'Linear', 'BatchNorm1d', 'ReLU', 'Dropout',
         'Linear']
        >>> model(torch.randn(32, 784)).shape
        torch.Size([32, 10])
    """
    where = "mlp"
    in_features = check_positive_int("in_features", in_features, where=where)
    out_features = check_positive_int("out_features", out_features, where=where)
    depth = check_positive_int("depth", depth, where=where)
    width = check_positive_int("width", width, where=where)
    check_choice("norm", norm, NORMS, where=where)
    dropout = check_dropout(dropout, where=where)

    children: list[tuple[str, nn.Module]] = []
    for i in range(1, depth + 1):
        fan_in = in_features if i == 1 else width
        layers = _hidden_layers(fan_in, width, activation, norm, dropout, bias)
        if not residual:
            children.extend((f"{name}{i}", module) for name, module in layers)
            continue
        block = nn.Sequential(OrderedDict(layers))
        children.append((f"hidden{i}", Residual(block) if fan_in == width else block))
    children.append(("head", nn.Linear(width, out_features, bias=bias)))
    return nn.Sequential(OrderedDict(children))
