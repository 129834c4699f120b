"""Regularization done right: parameter groups, penalties, decoupled decay, dropout variants.

>>> import torch
>>> from torch import nn
>>> from stabletrain.regularization import param_groups, l2_penalty
>>> model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
>>> opt = torch.optim.AdamW(param_groups(model, weight_decay=0.05), lr=1e-3)
>>> loss = l2_penalty(model, 1e-4)  # weights only: no biases, no norms
"""

from stabletrain.regularization._explain import ParamGroupReport, ParamGroupRow
from stabletrain.regularization.classify import CATEGORIES, Category
from stabletrain.regularization.decoupled import (
    DECAY_SCALINGS,
    DecayScaling,
    DecoupledWeightDecay,
    decouple_weight_decay,
)
from stabletrain.regularization.dropout import (
    ClassicDropout,
    DropPath,
    classic_dropout,
    drop_path,
    drop_path_rates,
)
from stabletrain.regularization.max_norm import (
    MAX_NORM_LAYERS,
    MaxNormConstraint,
    max_norm_,
    max_norm_constraint,
)
from stabletrain.regularization.mc_dropout import (
    DROPOUT_TYPES,
    MCPrediction,
    mc_dropout_mode,
    mc_predict,
)
from stabletrain.regularization.param_groups import (
    DEFAULT_NO_DECAY,
    decay_parameters,
    explain_param_groups,
    param_groups,
)
from stabletrain.regularization.penalties import elastic_net_penalty, l1_penalty, l2_penalty
from stabletrain.regularization.proximal import (
    L1_KEY,
    ProximalL1,
    SparsityReport,
    SparsityRow,
    proximal_l1,
    soft_threshold_,
    sparsity,
)

__all__ = [
    "CATEGORIES",
    "DECAY_SCALINGS",
    "DEFAULT_NO_DECAY",
    "DROPOUT_TYPES",
    "L1_KEY",
    "MAX_NORM_LAYERS",
    "Category",
    "ClassicDropout",
    "DecayScaling",
    "DecoupledWeightDecay",
    "DropPath",
    "MCPrediction",
    "MaxNormConstraint",
    "ParamGroupReport",
    "ParamGroupRow",
    "ProximalL1",
    "SparsityReport",
    "SparsityRow",
    "classic_dropout",
    "decay_parameters",
    "decouple_weight_decay",
    "drop_path",
    "drop_path_rates",
    "elastic_net_penalty",
    "explain_param_groups",
    "l1_penalty",
    "l2_penalty",
    "max_norm_",
    "max_norm_constraint",
    "mc_dropout_mode",
    "mc_predict",
    "param_groups",
    "proximal_l1",
    "soft_threshold_",
    "sparsity",
]
