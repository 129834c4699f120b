"""Regularization done right: parameter groups, penalties, decoupled decay, dropout variants.

>>> import torch
>>> from torch import nn
>>> from stabletrain.regularization import param_groups, l2_penalty
>>> model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
>>> opt = torch.optim.AdamW(param_groups(model, weight_decay=0.05), lr=1e-3)
>>> loss = l2_penalty(model, 1e-4)  # weights only: no biases, no norms
"""

from stabletrain.regularization._classify import CATEGORIES, Category
from stabletrain.regularization._explain import ParamGroupReport, ParamGroupRow
from stabletrain.regularization.param_groups import (
    DEFAULT_NO_DECAY,
    decay_parameters,
    explain_param_groups,
    param_groups,
)
from stabletrain.regularization.penalties import elastic_net_penalty, l1_penalty, l2_penalty

__all__ = [
    "CATEGORIES",
    "DEFAULT_NO_DECAY",
    "Category",
    "ParamGroupReport",
    "ParamGroupRow",
    "decay_parameters",
    "elastic_net_penalty",
    "explain_param_groups",
    "l1_penalty",
    "l2_penalty",
    "param_groups",
]
