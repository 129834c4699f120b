"""stabletrain: make neural networks train.

The right initialization for every layer, regularization done right, numerical stability and a
training-health monitor, for PyTorch.

>>> import torch.nn as nn
>>> import stabletrain as st
>>> layer = nn.Linear(128, 64)
>>> _ = st.init.xavier_uniform_(layer.weight, gain="tanh")
>>> round(st.gain("gelu"), 4)
1.5335
"""

from stabletrain import graph, init, models
from stabletrain.graph import trace
from stabletrain.init import (
    Fans,
    InitReport,
    Rule,
    auto_init,
    default_rules,
    gain,
    init_residual_,
    layer_fans,
    lsuv_,
)

__version__ = "0.1.0"

__all__ = [
    "Fans",
    "InitReport",
    "Rule",
    "__version__",
    "auto_init",
    "default_rules",
    "gain",
    "graph",
    "init",
    "init_residual_",
    "layer_fans",
    "lsuv_",
    "models",
    "trace",
]
