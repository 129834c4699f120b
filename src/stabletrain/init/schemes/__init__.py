"""Every initialization scheme as a torch-style in-place function.

Each ``name_(tensor, ..., generator=None)`` fills ``tensor`` in place under ``no_grad`` and
returns it, for float16, bfloat16, float32 and float64 on any device, like ``torch.nn.init``.
Fan-based schemes accept ``fans=`` (see :func:`stabletrain.init.layer_fans`) for the layers whose
fans the shape alone does not tell: grouped and transposed convolutions, packed recurrent gates
and attention projections, embeddings.

=====================  ====================================  ===============================
scheme                 distribution                          use for
=====================  ====================================  ===============================
zeros_, constant_      a constant (claim I1: never weights)  biases, norm shifts / gains
small_random_          N(0, 0.01²)                           shallow nets (claim I3)
standard_              U(±1/√fan_in)                         torch's default (claim I4)
xavier_uniform_/normal Var = gain²·2/(fan_in + fan_out)      tanh, sigmoid, softsign, logits
he_uniform_/normal_    Var = gain²/fan, gain √2 for ReLU     ReLU family, GELU, SiLU
lecun_uniform_/normal_ Var = 1/fan_in                        SELU, linear layers
variance_scaling_      Var = scale/fan                       the general case of the above
trunc_normal_          N(μ, σ²) truncated to [a, b]          transformers (std 0.02)
orthogonal_            Haar-orthogonal, per gate block       recurrent weights, deep linear
identity_, dirac_      the identity map                      IRNN, DiracNets
=====================  ====================================  ===============================
"""

from stabletrain.init.schemes._basic import (
    constant_,
    normal_,
    ones_,
    small_random_,
    trunc_normal_,
    uniform_,
    zeros_,
)
from stabletrain.init.schemes._structured import dirac_, identity_, orthogonal_
from stabletrain.init.schemes._variance import (
    DISTRIBUTIONS,
    Distribution,
    he_normal_,
    he_uniform_,
    lecun_normal_,
    lecun_uniform_,
    standard_,
    variance_scaling_,
    xavier_normal_,
    xavier_uniform_,
)
from stabletrain.init.schemes.core import FAN_MODES, FanMode

__all__ = [
    "DISTRIBUTIONS",
    "FAN_MODES",
    "Distribution",
    "FanMode",
    "constant_",
    "dirac_",
    "he_normal_",
    "he_uniform_",
    "identity_",
    "lecun_normal_",
    "lecun_uniform_",
    "normal_",
    "ones_",
    "orthogonal_",
    "small_random_",
    "standard_",
    "trunc_normal_",
    "uniform_",
    "variance_scaling_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]
