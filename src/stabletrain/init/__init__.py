"""Weight initialization: every scheme, the right fans for every layer, gains for any activation.

>>> import torch.nn as nn
>>> from stabletrain import init
>>> layer = nn.Linear(256, 256)
>>> _ = init.he_normal_(layer.weight, nonlinearity="gelu")
>>> _ = init.zeros_(layer.bias)
"""

from stabletrain.init.fans import Fans, compute_fans, layer_fans, recurrent_gates
from stabletrain.init.gain import (
    ACTIVATIONS,
    ActivationLike,
    GainConvention,
    GainKind,
    activation_name,
    gain,
)
from stabletrain.init.looks_linear import looks_linear_
from stabletrain.init.lsuv import lsuv_
from stabletrain.init.policy import InitReport, Rule, auto_init, default_rules, plan_init
from stabletrain.init.residual import RESIDUAL_MODES, ResidualMode, init_residual_
from stabletrain.init.schemes import (
    DISTRIBUTIONS,
    FAN_MODES,
    Distribution,
    FanMode,
    constant_,
    dirac_,
    he_normal_,
    he_uniform_,
    identity_,
    lecun_normal_,
    lecun_uniform_,
    normal_,
    ones_,
    orthogonal_,
    small_random_,
    standard_,
    trunc_normal_,
    uniform_,
    variance_scaling_,
    xavier_normal_,
    xavier_uniform_,
    zeros_,
)
from stabletrain.init.torch_names import (
    TORCH_NONLINEARITIES,
    calculate_gain,
    kaiming_normal_,
    kaiming_uniform_,
)

__all__ = [
    "ACTIVATIONS",
    "DISTRIBUTIONS",
    "FAN_MODES",
    "RESIDUAL_MODES",
    "TORCH_NONLINEARITIES",
    "ActivationLike",
    "Distribution",
    "FanMode",
    "Fans",
    "GainConvention",
    "GainKind",
    "InitReport",
    "ResidualMode",
    "Rule",
    "activation_name",
    "auto_init",
    "calculate_gain",
    "compute_fans",
    "constant_",
    "default_rules",
    "dirac_",
    "gain",
    "he_normal_",
    "he_uniform_",
    "identity_",
    "init_residual_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "layer_fans",
    "lecun_normal_",
    "lecun_uniform_",
    "looks_linear_",
    "lsuv_",
    "normal_",
    "ones_",
    "orthogonal_",
    "plan_init",
    "recurrent_gates",
    "small_random_",
    "standard_",
    "trunc_normal_",
    "uniform_",
    "variance_scaling_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]
