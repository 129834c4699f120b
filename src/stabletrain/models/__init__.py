"""Readable builders for the architectures the tutorials discuss: MLP, residual MLP, CNN, RNN,
Transformer.

Every builder returns a plain ``nn.Module`` with named children and PyTorch's default
initialization, so that the tests, the benchmarks and ``stabletrain lab`` can apply and compare
initialization, normalization and regularization choices on the same models.

>>> import torch
>>> from stabletrain import models
>>> net = models.mlp(16, 2, depth=3, width=32, activation="tanh", norm="layer")
>>> net(torch.randn(4, 16)).shape
torch.Size([4, 2])
"""

from stabletrain.models.activation import (
    ACTIVATION_NAMES,
    ActivationName,
    ActivationSpec,
    make_activation,
)
from stabletrain.models.cnn import cnn
from stabletrain.models.mlp import NORMS, NormName, mlp
from stabletrain.models.residual import Residual
from stabletrain.models.resmlp import resmlp
from stabletrain.models.rnn import RNN_KINDS, RecurrentModel, RNNKind, rnn
from stabletrain.models.tasks import adding_problem
from stabletrain.models.transformer import (
    NORM_POSITIONS,
    NormPosition,
    Transformer,
    TransformerBlock,
    causal_mask,
    transformer,
)

__all__ = [
    "ACTIVATION_NAMES",
    "NORMS",
    "NORM_POSITIONS",
    "RNN_KINDS",
    "ActivationName",
    "ActivationSpec",
    "NormName",
    "NormPosition",
    "RNNKind",
    "RecurrentModel",
    "Residual",
    "Transformer",
    "TransformerBlock",
    "adding_problem",
    "causal_mask",
    "cnn",
    "make_activation",
    "mlp",
    "resmlp",
    "rnn",
    "transformer",
]
