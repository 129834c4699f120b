"""The no-decay rules a model declares itself: ``no_weight_decay()`` and
``no_weight_decay_keywords()``.

timm's models (and the official Swin, DeiT, BEiT, XCiT code they follow) state which parameters
their authors train without weight decay: ``model.no_weight_decay()`` returns names or
``fnmatch`` patterns (``{"pos_embed", "cls_token"}``, XCiT's ``{"pos_embed.*"}``), and Swin's
``no_weight_decay_keywords()`` returns substrings (``{"cpb_mlp", "logit_scale"}``). A submodule
may declare its own, relative to itself (XCiT's attention: ``{"temperature"}``); timm's optimizer
factory reads only the top-level model's, this reads every module's. The authors know things
the structure does not show (a Linear that computes a positional bias is still a Linear).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection

from torch import nn

__all__ = ["declared_no_decay"]


def _strings(module: nn.Module, name: str, attribute: str, where: str) -> list[str]:
    """What ``module.attribute()`` returns, as strings ([] if the module has no such method)."""
    method = getattr(module, attribute, None)
    if not callable(method):
        return []
    value = method()
    if isinstance(value, str) or not isinstance(value, Collection):
        raise TypeError(
            f"{where}: {name or 'the model'}'s {attribute}() returned "
            f"{type(value).__name__}, not a collection of parameter names; fix it, or pass "
            "model_no_decay=False to ignore it."
        )
    return [str(v) for v in value]


def declared_no_decay(model: nn.Module, *, where: str) -> Callable[[str], str | None]:
    """A function from a parameter's qualified name to the module whose declaration exempts it
    from decay (``""`` for the model itself), or None when no declaration names it."""
    patterns: list[tuple[str, str]] = []  # (qualified pattern, declaring module)
    keywords: list[tuple[str, str]] = []  # (substring of the name below the module, module)
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        declared = _strings(module, name, "no_weight_decay", where)
        patterns += [(prefix + p, name) for p in declared]
        declared = _strings(module, name, "no_weight_decay_keywords", where)
        keywords += [(k, name) for k in declared]

    def declaring(param: str) -> str | None:
        for pattern, module in patterns:
            if fnmatch.fnmatchcase(param, pattern):
                return module
        for keyword, module in keywords:
            prefix = f"{module}." if module else ""
            if param.startswith(prefix) and keyword in param[len(prefix) :]:
                return module
        return None

    return declaring
