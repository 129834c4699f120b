"""What each parameter of a model is, decided by structure, never by name patterns alone.

The categories (the reason a parameter is or is not decayed):

========== ==============================================================================
weight     multiplies the input: Linear/Conv/RNN/attention weights, or any parameter that
           the forward pass used as a linear map's weight (``F.linear``, ``matmul``, ...)
bias       a shift: every parameter named ``*bias*`` outside a normalization layer
norm       the affine parameters of a normalization layer: BatchNorm, LayerNorm,
           GroupNorm, InstanceNorm, RMSNorm, or a custom module whose class name says
           ``Norm`` and whose parameters are 1-D
gain       a parameter with at most one dimension above 1, applied elementwise: layer-scale
           gammas (``C``, or ``C×1×1`` for images), attention temperatures and logit scales
           (``heads×1×1``), custom gates; the same with or without an example input
embedding  an embedding table read by lookup (``nn.Embedding``, ``F.embedding``)
positional a parameter broadcast over the batch and added or concatenated to activations:
           positional embeddings, class tokens (leading dimension 1, or observed as added;
           a vector such as a ``1×1×C`` class token is told from a gain by its name)
========== ==============================================================================

Without an example input the decision uses the owner module's type and the parameter's shape;
with one, parameters of custom modules are classified by the operations that read them in one
traced forward pass (:func:`stabletrain.graph.trace`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from torch import nn

from stabletrain.graph import NORM_TYPES, Graph, ParamUse, is_norm
from stabletrain.graph.ops import ADD_OPS, LINEAR_OPS, MUL_OPS, NORM_OPS

Category = Literal["weight", "bias", "norm", "gain", "embedding", "positional"]
CATEGORIES: tuple[Category, ...] = ("weight", "bias", "norm", "gain", "embedding", "positional")

WEIGHT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Bilinear,
    nn.modules.conv._ConvNd,
    nn.RNNBase,
    nn.RNNCellBase,
    nn.MultiheadAttention,
)
EMBEDDING_TYPES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)
_EMBEDDING_OPS = frozenset({"embedding", "embedding_bag"})


@dataclass(frozen=True)
class ParamInfo:
    """One trainable or frozen parameter, once, with its category and the reason for it."""

    name: str  # first qualified name (named_parameters order)
    aliases: tuple[str, ...]  # other names of the same tensor (tied or shared weights)
    param: nn.Parameter
    module: str  # qualified name of the module that owns it
    category: Category
    reason: str

    @property
    def trainable(self) -> bool:
        """Whether the optimizer should see it (``requires_grad``)."""
        return self.param.requires_grad


_POSITIONAL_NAME = re.compile(r"(^|_)(pos|position|positional|cls|class)(_|$)|pos_?emb", re.I)


def is_vector(param: nn.Parameter) -> bool:
    """At most one dimension above 1 (``C``, ``C×1×1``, ``heads×1×1``, a scalar): never a
    matrix, whatever the broadcast dimensions it is stored with."""
    return sum(1 for size in param.shape if size > 1) <= 1


_TOKEN_NAME = re.compile(r"tok(en)?(_|$)|(^|_)(pos|position|positional|cls|class)(_|$)|pos_?emb")


def _by_use(use: ParamUse, ndim: int) -> tuple[Category, str] | None:
    """The category of a custom module's parameter from the operations that read it (vectors
    only when a normalization op reads them: gains are told by shape, with or without a trace)."""
    ops = set(use.ops)
    if ops & NORM_OPS:
        return "norm", "affine parameter of a normalization op"
    if ndim <= 1:
        return None
    if ops & set(LINEAR_OPS):
        op = next(o for o in use.ops if o in LINEAR_OPS)
        return "weight", f"used as a linear map's weight ({op})"
    if ops & _EMBEDDING_OPS:
        return "embedding", "read by an embedding lookup"
    if ops & MUL_OPS:
        return "gain", "multiplies activations elementwise (a gain, e.g. layer scale)"
    added = ops & (ADD_OPS | {"cat"}) or any(f.kind in ("add", "residual") for f in use.following)
    if added:
        return "positional", "added or concatenated to activations (positional/class token)"
    return None


def _by_shape(local: str, param: nn.Parameter) -> tuple[Category, str]:
    """The category of a custom module's parameter from its shape (and, for tables, its name)."""
    if is_vector(param):
        if _TOKEN_NAME.search(local):
            return "positional", "a class/register token or positional vector (by name)"
        shape = "×".join(map(str, param.shape)) or "scalar"
        return "gain", f"a vector ({shape}) of a custom module: an elementwise gain, scale or shift"
    if param.shape[0] == 1:
        return "positional", "broadcast over the batch (leading dim 1): positional or class token"
    if _POSITIONAL_NAME.search(local):
        # a (T, C) table read by slicing: only a traced forward sees it added; the name is the
        # best evidence without one (pass example_input to decide by use)
        return "positional", "named like a positional table or class token"
    return "weight", "parameter with ndim >= 2 of a custom module: a weight matrix"


def _category(
    module: nn.Module, local: str, param: nn.Parameter, use: ParamUse | None
) -> tuple[Category, str]:
    kind = type(module).__name__
    if isinstance(module, NORM_TYPES):
        return "norm", f"{kind} parameter"
    if is_norm(module):
        return "norm", f"{kind}: custom normalization (1-D affine parameters)"
    if "bias" in local:
        return "bias", f"{kind} bias"
    if isinstance(module, EMBEDDING_TYPES):
        return "embedding", f"{kind} table"
    if isinstance(module, WEIGHT_TYPES):
        return "weight", f"{kind} weight"
    if use is not None:
        observed = _by_use(use, 1 if is_vector(param) else param.ndim)
        if observed is not None:
            return observed
    category, reason = _by_shape(local, param)
    if use is None and param.requires_grad:
        reason += " (by shape)"
    return category, reason


def classify(model: nn.Module, graph: Graph | None = None) -> list[ParamInfo]:
    """Every distinct parameter of ``model`` in registration order, with its category.

    Tied parameters appear once, under their first name, with the other names in ``aliases``.
    ``graph`` (from :func:`stabletrain.graph.trace`) refines custom modules' parameters.
    """
    modules = dict(model.named_modules(remove_duplicate=False))
    first: dict[int, str] = {}
    aliases: dict[int, list[str]] = {}
    params: dict[int, nn.Parameter] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        key = id(param)
        if key in first:
            aliases[key].append(name)
            continue
        first[key], aliases[key], params[key] = name, [], param
    infos = []
    for key, name in first.items():
        owner, _, local = name.rpartition(".")
        use = graph.params.get(name) if graph is not None else None
        category, reason = _category(modules[owner], local, params[key], use)
        infos.append(ParamInfo(name, tuple(aliases[key]), params[key], owner, category, reason))
    return infos
