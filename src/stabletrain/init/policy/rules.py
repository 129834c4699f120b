"""An init policy is data: ordered rules from (module type, parameter name, following operation)
to a scheme. The first rule that matches a parameter decides its init."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from stabletrain.graph import NORM_TYPES
from stabletrain.graph.ops import LINEAR_OPS
from stabletrain.init.policy._registry import REGISTRY

# Categories of "what follows the layer", for rules that apply to a family of activations.
CATEGORIES: dict[str, frozenset[str]] = {
    "relu_family": frozenset({"relu", "leaky_relu", "relu6"}),
    "smooth": frozenset(
        {
            "gelu",
            "gelu_tanh",
            "quick_gelu",
            "silu",
            "mish",
            "elu",
            "selu",
            "celu",
            "softplus",
            "hardswish",
        }
    ),
    "saturating": frozenset({"tanh", "sigmoid", "softsign", "hardtanh", "hardsigmoid"}),
}
# Following without an activation: "linear" (another layer, attention, a residual addition, or
# a normalization with no activation after it), "output" (model output, softmax, loss), or
# "unknown" (the layer was never called, or nothing consumed its output).
FOLLOWING_VALUES = (*CATEGORIES, "linear", "output", "unknown", "any")

# schemes decided by the parameter's role in the traced graph (see _roles.py)
ROLE_SCHEMES = ("logits", "embedding", "norm_weight")
# every name a rule may give: the registry's drawn schemes, the role schemes, and "keep"
SCHEMES = (*REGISTRY, *ROLE_SCHEMES, "keep")
RULE_KEYS = ("name", "scheme", "module", "param", "following", "dims", "op", "norm", "options")


@dataclass(frozen=True)
class Rule:
    """When a parameter matches every given condition, init it with ``scheme(**options)``.

    Args:
        name: the reason shown in the report.
        scheme: one of :data:`SCHEMES` (``"keep"`` leaves the parameter as it is).
        module: module type(s) the parameter's owner must be an instance of.
        param: glob on the parameter's own name (``"bias"``, ``"weight_hh_*"``).
        following: an activation name (``"gelu"``), a category (``"relu_family"``, ``"smooth"``,
            ``"saturating"``, ``"linear"``, ``"output"``, ``"unknown"``) or ``"any"``.
        dims: number of dims the parameter must have (``1`` for biases and gains).
        op: the operation(s) that read the parameter in the forward pass must include one of
            these (e.g. :data:`LINEAR_OPS`: used as a linear map's weight).
        norm: the layer's output must go into this normalization op (or one of these:
            ``"batch_norm"``, ``"layer_norm"``, ...) and nowhere else.
        options: keyword options of the scheme (``std``, ``value``, ``mode``, ``gain``; ``gain``
            ``"auto"`` is the following activation's exact gain, ``"auto_relu"`` the same or
            ReLU's ``sqrt(2)`` where no activation follows).

    Example:
        >>> Rule("GELU layers: trunc normal", "trunc_normal", module=nn.Linear,
        ...      following="gelu", options={"std": 0.02}).scheme
        'trunc_normal'
    """

    name: str
    scheme: str
    module: type[nn.Module] | tuple[type[nn.Module], ...] | None = None
    param: str | None = None
    following: str | None = None
    dims: int | None = None
    op: str | tuple[str, ...] | None = None
    norm: str | tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(
                f"Rule {self.name!r}: unknown scheme {self.scheme!r}; valid schemes are "
                f"{', '.join(SCHEMES)}."
            )
        if self.following is not None and self.following not in FOLLOWING_VALUES:
            from stabletrain.init.gain import ACTIVATIONS

            if self.following not in ACTIVATIONS:
                raise ValueError(
                    f"Rule {self.name!r}: unknown following {self.following!r}; use an "
                    f"activation name ({', '.join(ACTIVATIONS)}) or one of "
                    f"{', '.join(FOLLOWING_VALUES)}."
                )

    def matches(
        self,
        module: nn.Module,
        param: str,
        dims: int,
        following: str,
        ops: tuple[str, ...] = (),
        norm: str | None = None,
    ) -> bool:
        """Whether this rule applies to ``module``'s parameter ``param`` (``norm``: the
        normalization op that alone consumes the layer's output, if one does)."""
        if self.op is not None:
            wanted = (self.op,) if isinstance(self.op, str) else self.op
            if not set(wanted) & set(ops):
                return False
        if self.norm is not None:
            norms = (self.norm,) if isinstance(self.norm, str) else self.norm
            if norm not in norms:
                return False
        if self.module is not None and not isinstance(module, self.module):
            return False
        if self.param is not None and not fnmatch.fnmatchcase(param, self.param):
            return False
        if self.dims is not None and dims != self.dims:
            return False
        if self.following in (None, "any"):
            return True
        return following == self.following or following in CATEGORIES.get(self.following, ())


def as_rule(rule: Rule | Mapping[str, Any]) -> Rule:
    """A :class:`Rule` from a rule or a dict with :data:`RULE_KEYS`."""
    if isinstance(rule, Rule):
        return rule
    if not isinstance(rule, Mapping):
        raise TypeError(f"a policy rule must be a Rule or a dict, got {type(rule).__name__}.")
    unknown = sorted(set(rule) - set(RULE_KEYS))
    if unknown:
        raise ValueError(f"unknown rule key(s) {unknown}; valid keys are {', '.join(RULE_KEYS)}.")
    if "scheme" not in rule:
        raise ValueError(f"a policy rule needs a 'scheme' (one of {', '.join(SCHEMES)}).")
    return Rule(**{"name": rule.get("name", f"custom: {rule['scheme']}"), **rule})


RECURRENT = (nn.RNNBase, nn.RNNCellBase)


def default_rules(*, output: str = "logits", forget_bias: float | None = 1.0) -> tuple[Rule, ...]:
    """The tutorials' decision tree (claim I10) as rules, most specific first.

    ReLU family -> He (exact gain); GELU/SiLU/Mish/ELU/... -> He with their own exact gain;
    tanh/sigmoid -> Xavier (gain 1, the documents' rule); recurrent weights -> orthogonal per
    gate (hidden-to-hidden) and Xavier per gate (input-to-hidden); biases 0 (an LSTM's forget
    gate ``forget_bias``, Jozefowicz et al. 2015); normalization weight 1 (``"norm_weight"``:
    one the model set to zero, the last norm of a residual branch as in timm's ResNets, is
    kept: the branch starts as the identity, Goyal et al. 2017), bias 0; the output
    layer (and a tied table that is also the LM head, and a router before a softmax)
    ``"logits"``: fitted so the step-0 loss is ``1.025 ln C`` (logits of std
    ``sqrt(0.05·ln C)`` where Gaussian) (or
    ``output="xavier_uniform"``, ``"zeros"``); embedding and position tables ``"embedding"``,
    by what consumes them (a normalization: the model's own scale is kept; a residual stream:
    ``N(0, 1/dim)``, or the tied table's std); a weight whose output goes only into a
    BatchNorm: He normal with ``fan_out`` and the gain of the activation after the norm (ReLU's
    where the norm feeds a residual addition), the convention of torchvision's and timm's
    CNNs (He et al. 2015, section 2.2: either fan keeps the signal; the norm fixes the forward
    scale, so the weight's scale only sets its effective step size, and the families' learning
    rates are tuned for this one); a layer followed by no activation Xavier.
    Rules by activation apply to
    parameters the forward pass used as a linear map's weight (:data:`LINEAR_OPS`), so custom
    layers are covered and positional or layer-scale parameters are left to their module.
    """
    return (
        Rule("normalization: weight", "norm_weight", module=NORM_TYPES, param="weight"),
        Rule("normalization: bias 0", "zeros", module=NORM_TYPES, param="bias"),
        Rule(
            "LSTM bias: forget gate",
            "constant",
            module=(nn.LSTM, nn.LSTMCell),
            param="bias_*",
            options={"forget_bias": forget_bias},
        ),
        Rule(
            "recurrent hidden-to-hidden: orthogonal per gate",
            "orthogonal",
            module=RECURRENT,
            param="weight_hh*",
        ),
        Rule(
            "recurrent input-to-hidden: Xavier per gate",
            "xavier_uniform",
            module=RECURRENT,
            param="weight_*",
        ),
        Rule("bias: 0", "zeros", dims=1, param="*bias*"),
        Rule("output layer", output, following="output", op=LINEAR_OPS, options={"gain": 1.0}),
        Rule(
            "embedding: by what consumes it",
            "embedding",
            module=(nn.Embedding, nn.EmbeddingBag),
            param="weight",
        ),
        Rule(
            "attention in_proj: Xavier per q/k/v block",
            "xavier_uniform",
            module=nn.MultiheadAttention,
            param="*proj_weight",
        ),
        Rule(
            "BatchNorm follows: He, fan_out",
            "he_normal",
            norm="batch_norm",
            op=LINEAR_OPS,
            options={"mode": "fan_out", "gain": "auto_relu"},
        ),
        Rule(
            "ReLU family: He",
            "he_normal",
            following="relu_family",
            op=LINEAR_OPS,
            options={"gain": "auto"},
        ),
        Rule(
            "smooth activation: He with its exact gain",
            "he_normal",
            following="smooth",
            op=LINEAR_OPS,
            options={"gain": "auto"},
        ),
        Rule("tanh/sigmoid: Xavier", "xavier_uniform", following="saturating", op=LINEAR_OPS),
        Rule("no activation follows: Xavier", "xavier_uniform", following="linear", op=LINEAR_OPS),
    )


def check_rules(rules: Iterable[Rule | Mapping[str, Any]]) -> tuple[Rule, ...]:
    """Validate user rules (dicts or Rules) into a tuple of Rules."""
    if isinstance(rules, Rule | Mapping | str):
        raise TypeError("policy must be a sequence of rules (Rule objects or dicts).")
    return tuple(as_rule(r) for r in rules)
