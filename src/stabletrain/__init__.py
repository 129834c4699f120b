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

from stabletrain import diagnostics, graph, init, models, monitoring, regularization, stability
from stabletrain.diagnostics import diagnose, lint
from stabletrain.graph import trace
from stabletrain.init import (
    Fans,
    InitReport,
    Rule,
    auto_init,
    calculate_gain,
    default_rules,
    gain,
    init_residual_,
    kaiming_normal_,
    kaiming_uniform_,
    layer_fans,
    looks_linear_,
    lsuv_,
)
from stabletrain.monitoring import (
    ConsoleSink,
    Finding,
    JSONLSink,
    MemorySink,
    TensorBoardSink,
    TrainingMonitor,
    every,
)
from stabletrain.regularization import (
    DropPath,
    decouple_weight_decay,
    drop_path_rates,
    elastic_net_penalty,
    explain_param_groups,
    l1_penalty,
    l2_penalty,
    max_norm_constraint,
    mc_predict,
    param_groups,
    proximal_l1,
    sparsity,
)
from stabletrain.stability import (
    StepGuard,
    adaptive_clip_grad_,
    clip_grad_norm_,
    clip_grad_value_,
    grad_norm,
)

__version__ = "0.1.0"

__all__ = [
    "ConsoleSink",
    "DropPath",
    "Fans",
    "Finding",
    "InitReport",
    "JSONLSink",
    "MemorySink",
    "Rule",
    "StepGuard",
    "TensorBoardSink",
    "TrainingMonitor",
    "__version__",
    "adaptive_clip_grad_",
    "auto_init",
    "calculate_gain",
    "clip_grad_norm_",
    "clip_grad_value_",
    "decouple_weight_decay",
    "default_rules",
    "diagnose",
    "diagnostics",
    "drop_path_rates",
    "elastic_net_penalty",
    "every",
    "explain_param_groups",
    "gain",
    "grad_norm",
    "graph",
    "init",
    "init_residual_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "l1_penalty",
    "l2_penalty",
    "layer_fans",
    "lint",
    "looks_linear_",
    "lsuv_",
    "max_norm_constraint",
    "mc_predict",
    "models",
    "monitoring",
    "param_groups",
    "proximal_l1",
    "regularization",
    "sparsity",
    "stability",
    "trace",
]
