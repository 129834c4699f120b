"""stabletrain: make neural networks train.

The right initialization for every layer, regularization done right, numerical stability and a
training-health monitor, for PyTorch.

>>> import torch.nn as nn
>>> import stabletrain as st
>>> layer = nn.Linear(128, 64)
>>> _ = st.init.xavier_uniform_(layer.weight, gain="tanh")
>>> round(st.gain("gelu"), 4)
1.5335

The names below are imported on first use (PEP 562), so ``import stabletrain`` costs nothing
until one is used: ``stabletrain lab --list`` and ``stabletrain --help`` start without
importing PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stabletrain import diagnostics, graph, init, models, monitoring, regularization, stability
    from stabletrain.diagnostics import diagnose, lint
    from stabletrain.findings import Finding
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
        plan_init,
    )
    from stabletrain.monitoring import (
        ConsoleSink,
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
    "plan_init",
    "proximal_l1",
    "regularization",
    "sparsity",
    "stability",
    "trace",
]

# name -> the module that defines it ("" : the subpackage of that name)
_LAZY: dict[str, str] = {
    "diagnostics": "",  # the subpackage itself
    "graph": "",  # the subpackage itself
    "init": "",  # the subpackage itself
    "models": "",  # the subpackage itself
    "monitoring": "",  # the subpackage itself
    "regularization": "",  # the subpackage itself
    "stability": "",  # the subpackage itself
    "diagnose": "stabletrain.diagnostics",
    "lint": "stabletrain.diagnostics",
    "trace": "stabletrain.graph",
    "Fans": "stabletrain.init",
    "InitReport": "stabletrain.init",
    "Rule": "stabletrain.init",
    "auto_init": "stabletrain.init",
    "calculate_gain": "stabletrain.init",
    "kaiming_normal_": "stabletrain.init",
    "kaiming_uniform_": "stabletrain.init",
    "default_rules": "stabletrain.init",
    "gain": "stabletrain.init",
    "init_residual_": "stabletrain.init",
    "layer_fans": "stabletrain.init",
    "looks_linear_": "stabletrain.init",
    "lsuv_": "stabletrain.init",
    "plan_init": "stabletrain.init",
    "ConsoleSink": "stabletrain.monitoring",
    "Finding": "stabletrain.findings",
    "JSONLSink": "stabletrain.monitoring",
    "MemorySink": "stabletrain.monitoring",
    "TensorBoardSink": "stabletrain.monitoring",
    "TrainingMonitor": "stabletrain.monitoring",
    "every": "stabletrain.monitoring",
    "DropPath": "stabletrain.regularization",
    "decouple_weight_decay": "stabletrain.regularization",
    "drop_path_rates": "stabletrain.regularization",
    "elastic_net_penalty": "stabletrain.regularization",
    "explain_param_groups": "stabletrain.regularization",
    "l1_penalty": "stabletrain.regularization",
    "l2_penalty": "stabletrain.regularization",
    "max_norm_constraint": "stabletrain.regularization",
    "mc_predict": "stabletrain.regularization",
    "param_groups": "stabletrain.regularization",
    "proximal_l1": "stabletrain.regularization",
    "sparsity": "stabletrain.regularization",
    "StepGuard": "stabletrain.stability",
    "adaptive_clip_grad_": "stabletrain.stability",
    "clip_grad_norm_": "stabletrain.stability",
    "clip_grad_value_": "stabletrain.stability",
    "grad_norm": "stabletrain.stability",
}


def __getattr__(name: str) -> Any:
    """Import ``name`` from its module on first use and keep it (PEP 562)."""
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'stabletrain' has no attribute {name!r}")
    module = importlib.import_module(f"stabletrain.{name}" if where == "" else where)
    value = module if where == "" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
