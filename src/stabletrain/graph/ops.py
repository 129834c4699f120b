"""What each observed torch operation is, for the question "what follows this layer?".

Operation names are canonical: the last component of the function's name without the in-place
``_`` and the dunder underscores (``torch.Tensor.__iadd__`` -> ``add``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from torch.overrides import resolve_name

OpKind = Literal["activation", "norm", "transparent", "add", "mul", "output", "attention", "other"]

# activation op -> (canonical activation name of stabletrain.init.gain, positional params)
ACTIVATION_OPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "relu": ("relu", ()),
    "leaky_relu": ("leaky_relu", ("negative_slope",)),
    "rrelu": ("leaky_relu", ()),
    "prelu": ("leaky_relu", ()),
    "tanh": ("tanh", ()),
    "sigmoid": ("sigmoid", ()),
    "gelu": ("gelu", ()),
    "gelu_tanh": ("gelu_tanh", ()),
    "quick_gelu": ("quick_gelu", ()),  # no torch op: recorded from activation modules
    "silu": ("silu", ()),
    "mish": ("mish", ()),
    "elu": ("elu", ("alpha",)),
    "selu": ("selu", ()),
    "celu": ("celu", ("alpha",)),
    "softplus": ("softplus", ("beta", "threshold")),
    "hardtanh": ("hardtanh", ("min_val", "max_val")),
    "relu6": ("relu6", ()),
    "hardswish": ("hardswish", ()),
    "hardsigmoid": ("hardsigmoid", ()),
    "softsign": ("softsign", ()),
}
NORM_OPS = frozenset(
    {"batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "local_response_norm"}
)
# ops that move or convert values without changing them
VALUE_PRESERVING_OPS = frozenset(
    {
        "view",
        "reshape",
        "flatten",
        "unflatten",
        "permute",
        "transpose",
        "t",
        "contiguous",
        "squeeze",
        "unsqueeze",
        "clone",
        "to",
        "float",
        "half",
        "double",
        "bfloat16",
        "type",
        "type_as",
        "movedim",
    }
)
# ops that select or repeat part of a tensor's values
SELECTION_OPS = frozenset({"getitem", "narrow", "chunk", "split", "unbind", "expand", "expand_as"})
CONCAT_OPS = frozenset({"cat", "stack"})
# ops that pass a layer's output on to what follows, for the question "what follows this layer?"
TRANSPARENT_OPS = (
    VALUE_PRESERVING_OPS
    | SELECTION_OPS
    | CONCAT_OPS
    | frozenset(
        {
            "pad",
            "dropout",
            "dropout1d",
            "dropout2d",
            "dropout3d",
            "alpha_dropout",
            "feature_alpha_dropout",
            "max_pool1d",
            "max_pool2d",
            "max_pool3d",
            "avg_pool1d",
            "avg_pool2d",
            "avg_pool3d",
            "adaptive_avg_pool1d",
            "adaptive_avg_pool2d",
            "adaptive_avg_pool3d",
            "adaptive_max_pool1d",
            "adaptive_max_pool2d",
            "adaptive_max_pool3d",
            "max_pool2d_with_indices",
            "mean",
        }
    )
)
DROPOUT_OPS = frozenset(o for o in TRANSPARENT_OPS if "dropout" in o)
ADD_OPS = frozenset({"add", "radd", "iadd", "sub", "rsub", "isub"})
MUL_OPS = frozenset({"mul", "rmul", "imul"})
OUTPUT_OPS = frozenset(
    {
        "softmax",
        "log_softmax",
        "cross_entropy",
        "nll_loss",
        "mse_loss",
        "l1_loss",
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "kl_div",
        "smooth_l1_loss",
        "huber_loss",
        "argmax",
    }
)
ATTENTION_OPS = frozenset({"scaled_dot_product_attention", "matmul", "bmm", "einsum", "baddbmm"})

# operations that use a parameter as a linear map's weight: what makes a custom module a layer
LINEAR_OPS: tuple[str, ...] = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "matmul",
    "mm",
    "bmm",
    "einsum",
    "addmm",
    "_grouped_mm",  # batched expert weights (Hugging Face Mixtral, Qwen-MoE)
    "grouped_mm",
    "bilinear",
    "multi_head_attention_forward",
)


def op_name(func: Callable[..., Any]) -> str:
    """Canonical name of a torch function, method or dunder."""
    full = str(resolve_name(func) or getattr(func, "__name__", repr(func)))
    name = full.rsplit(".", 1)[-1]
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name.startswith(("i", "r")) and name[1:] in ("add", "sub", "mul", "truediv"):
            name = name[1:]
    if name.endswith("_") and not name.endswith("__"):
        name = name[:-1]
    return name


def op_kind(name: str) -> OpKind:
    """Which role an operation plays after a layer."""
    if name in ACTIVATION_OPS:
        return "activation"
    if name in NORM_OPS:
        return "norm"
    if name in TRANSPARENT_OPS:
        return "transparent"
    if name in ADD_OPS:
        return "add"
    if name in MUL_OPS:
        return "mul"
    if name in OUTPUT_OPS:
        return "output"
    if name in ATTENTION_OPS:
        return "attention"
    return "other"


def activation_params(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, float]:
    """The parameters of an activation call, e.g. leaky_relu's negative_slope."""
    params: dict[str, float] = {}
    for position, key in enumerate(ACTIVATION_OPS[name][1], start=1):
        value = kwargs.get(key, args[position] if len(args) > position else None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            params[key] = float(value)
    return params
