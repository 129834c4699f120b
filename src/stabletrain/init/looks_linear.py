"""Looks-linear init: a chain of layers joined by ReLUs that computes a linear map at init.

Balduzzi et al. (2017), "The Shattered Gradients Problem: If resnets are the answer, then what
is the question?": since ReLU(h) − ReLU(−h) = h, a layer whose output units come in mirrored
pairs ``[B; −B]`` followed by a ReLU, and a next layer whose input weights come in opposite
pairs ``[C, −C]``, compute ``C·B·x`` exactly. With orthogonal blocks the whole chain is an
isometry at init, however deep: the gradients of a plain (no normalization, no skip) depth-100
ReLU MLP stay as well conditioned as a linear network's, where He init (which preserves only
the *average* signal) lets them shatter. Training then breaks the mirror symmetry, because the
two halves see different ReLU patterns.

Weights, for a layer with ``mirror_in`` (its input is ``[ReLU(h); ReLU(−h)]``) and
``mirror_out`` (its output feeds a ReLU and the next link), with B orthogonal:

================== ================== ====================
mirror_in          mirror_out         weight
================== ================== ====================
no                 yes                [B; −B]
yes                yes                [[B, −B], [−B, B]]
yes                no                 [B, −B]
================== ================== ====================
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from stabletrain._checks import check_float_tensor, check_generator
from stabletrain.graph import Graph
from stabletrain.graph.ops import LINEAR_OPS, TRANSPARENT_OPS
from stabletrain.init.gain import ActivationLike
from stabletrain.init.schemes import orthogonal_
from stabletrain.init.schemes.core import gain_value

__all__ = ["looks_linear_", "relu_chains"]

_CHAIN_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def looks_linear_(
    weight: torch.Tensor,
    *,
    mirror_in: bool,
    mirror_out: bool,
    gain: float | ActivationLike = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill a Linear or ConvNd weight with the looks-linear pattern, in place.

    ``mirror_out`` splits the output units (dim 0) into two halves, ``B`` and ``−B``;
    ``mirror_in`` splits the input units (dim 1) into ``C`` and ``−C``, to read a mirrored
    layer through a ReLU. ``B`` is orthogonal times ``gain``
    (:func:`stabletrain.init.orthogonal_`).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> w1 = looks_linear_(torch.empty(8, 3), mirror_in=False, mirror_out=True, generator=gen)
        >>> w2 = looks_linear_(torch.empty(2, 8), mirror_in=True, mirror_out=False, generator=gen)
        >>> x = torch.randn(5, 3)
        >>> torch.allclose(torch.relu(x @ w1.T) @ w2.T, x @ (w2[:, :4] @ w1[:4]).T, atol=1e-6)
        True
    """
    where = "looks_linear_"
    check_float_tensor(weight, where=where)
    check_generator(generator, weight.device, where=where)
    gain = gain_value(gain, where=where, fits=weight.dtype)
    if weight.dim() < 2:
        raise ValueError(f"{where}: needs a weight with >= 2 dims, got {tuple(weight.shape)}.")
    rows, cols = weight.shape[0], weight.shape[1]
    for flag, size, what in ((mirror_out, rows, "output"), (mirror_in, cols, "input")):
        if flag and size % 2:
            raise ValueError(
                f"{where}: mirroring needs an even number of {what} units, got {size} in "
                f"shape {tuple(weight.shape)}; use an even width or he_normal_."
            )
    half = torch.empty(
        rows // 2 if mirror_out else rows,
        cols // 2 if mirror_in else cols,
        *weight.shape[2:],
        dtype=weight.dtype,
        device=weight.device,
    )
    orthogonal_(half, gain, generator=generator)
    if mirror_in:
        half = torch.cat([half, -half], dim=1)
    if mirror_out:
        half = torch.cat([half, -half], dim=0)
    with torch.no_grad():
        weight.copy_(half)
    return weight


def _consumers(graph: Graph) -> dict[int, list[int]]:
    """Tensor node -> indices of the ops that read it."""
    readers: dict[int, list[int]] = defaultdict(list)
    for op in graph.recording.ops:
        for node in dict.fromkeys(op.inputs):
            readers[node].append(op.index)
    return readers


def relu_chains(graph: Graph, model: nn.Module) -> dict[str, tuple[bool, bool]]:
    """Layers linked ``layer -> ReLU -> next layer``: name -> ``(mirror_in, mirror_out)``.

    A link needs: a Linear or ConvNd (groups 1, called once) whose output's only reader is a
    ReLU (reshapes in between allowed), whose output's only reader is the next such layer, and
    an even number of output units. Layers in no link are not listed.
    """
    modules = dict(model.named_modules(remove_duplicate=False))
    ops = graph.recording.ops
    readers = _consumers(graph)

    def sole_reader(node: int) -> tuple[int, int] | None:
        """The op reading ``node`` and its output, through reshapes; None if not exactly one."""
        while True:
            found = readers.get(node, [])
            if len(found) != 1 or not ops[found[0]].outputs:
                return None
            op = ops[found[0]]
            if op.name in TRANSPARENT_OPS and "dropout" not in op.name and "pool" not in op.name:
                node = op.outputs[0]
                continue
            return op.index, op.outputs[0]

    def eligible(name: str) -> bool:
        info, module = graph.layers.get(name), modules.get(name)
        return (
            info is not None
            and info.calls == 1
            and isinstance(module, _CHAIN_TYPES)
            and getattr(module, "groups", 1) == 1
        )

    flags: dict[str, list[bool]] = {}
    for call in graph.recording.calls:
        if not call.outputs or not eligible(call.module):
            continue
        after = sole_reader(call.outputs[0])
        if after is None or ops[after[0]].name != "relu":
            continue
        nxt = sole_reader(after[1])
        if nxt is None or ops[nxt[0]].name not in LINEAR_OPS:
            continue
        owners = {p.rpartition(".")[0] for p in ops[nxt[0]].params}
        if len(owners) != 1:
            continue
        (following,) = owners
        weight = getattr(modules.get(call.module), "weight", None)
        if not eligible(following) or weight is None or weight.shape[0] % 2:
            continue
        flags.setdefault(call.module, [False, False])[1] = True
        flags.setdefault(following, [False, False])[0] = True
    return {name: (mirror_in, mirror_out) for name, (mirror_in, mirror_out) in flags.items()}
