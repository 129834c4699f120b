"""From a recording to answers: what follows each layer, and where the residual branches are."""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from torch import nn

from stabletrain.graph.ops import DROPOUT_OPS, op_kind
from stabletrain.graph.recorder import Call, Op, Recording

FollowingKind = Literal[
    "activation", "norm", "residual", "add", "layer", "attention", "output", "other", "unused"
]


@dataclass(frozen=True)
class Following:
    """An operation that consumes a layer's output (after view/reshape/dropout/pooling).

    ``then`` is what follows a normalization, so ``Linear -> BatchNorm -> ReLU`` reads as
    ``Following("norm", "batch_norm", then=Following("activation", "relu"))``. ``node`` is the
    recording's node of the op's result (for ``x * sigmoid(x)`` the product's); it takes no part
    in comparisons, so one layer's calls still describe alike.
    """

    kind: FollowingKind
    op: str
    params: tuple[tuple[str, float], ...] = ()
    module: str = ""
    via_dropout: bool = False
    then: Following | None = None
    node: int = field(default=-1, compare=False, repr=False)

    def describe(self) -> str:
        """A short readable form: ``"batch_norm -> relu"``."""
        text = self.op + (
            f"({', '.join(f'{k}={v:g}' for k, v in self.params)})" if self.params else ""
        )
        if self.via_dropout:
            text = "dropout -> " + text
        return f"{text} -> {self.then.describe()}" if self.then else text


@dataclass
class LayerInfo:
    """One module that holds parameters directly, as the forward pass used it."""

    name: str
    module: nn.Module
    order: tuple[int, ...]  # execution order of each call
    following: tuple[Following, ...]
    # per call, the node of the first activation's result (-1: none), as in ``activation``
    activation_nodes: tuple[int, ...] = ()

    @property
    def calls(self) -> int:
        """How many times the forward pass called it."""
        return len(self.order)

    @property
    def activation(self) -> Following | None:
        """The first activation reached, directly or after a normalization."""
        return first_activation(self.following)

    @property
    def norm_follows(self) -> bool:
        """Whether a normalization consumes the output before any activation."""
        return any(f.kind == "norm" for f in self.following)

    def follows(self, kind: FollowingKind) -> bool:
        """Whether some consumer of the output is of ``kind``."""
        return any(f.kind == kind for f in self.following)


def first_activation(following: tuple[Following, ...]) -> Following | None:
    """The first activation in ``following``, directly or after a normalization."""
    for f in following:
        if f.kind == "activation":
            return f
        if f.kind == "norm" and f.then is not None and f.then.kind == "activation":
            return f.then
    return None


@dataclass(frozen=True)
class ParamUse:
    """How the forward pass used one parameter: the ops that read it and what followed them."""

    name: str
    ops: tuple[str, ...]  # e.g. ("linear",), ("conv2d",), ("getitem",)
    following: tuple[Following, ...]


@dataclass(frozen=True)
class ResidualBranch:
    """``out = shortcut(x) + branch(x)``: the layers of the branch, in execution order."""

    add_op: int
    layers: tuple[str, ...]
    weights: tuple[str, ...]  # the layers that are not normalizations
    shortcut: tuple[str, ...]  # a projection on the other side of the addition, if any
    last_norm: str | None  # a normalization after the last weight layer, if any
    tail_activation: str | None = None  # an activation between those layers and the addition
    pre_norm: str | None = None  # the normalization the branch starts with (Pre-LN), if any
    # the weight layers whose output reaches the addition through no other weight layer: the
    # last layer, or several where parallel sub-branches are summed (Phi, GPT-J, GPT-NeoX:
    # x + attn(ln(x)) + mlp(ln(x))); computed for Pre-LN branches, else ``(last_layer,)``
    ends: tuple[str, ...] = ()

    @property
    def last_layer(self) -> str | None:
        """The branch's last layer that is not a normalization."""
        return self.weights[-1] if self.weights else None

    @property
    def depth(self) -> int:
        """Number of weight layers in the branch (Fixup's m)."""
        return len(self.weights)


NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


def is_norm(module: nn.Module) -> bool:
    """A normalization layer: one of :data:`NORM_TYPES`, or a custom module whose class name
    says ``Norm`` and whose own parameters are all 1-D (Hugging Face ``LlamaRMSNorm``,
    ``T5LayerNorm``).

    Example:
        >>> is_norm(nn.LayerNorm(4)), is_norm(nn.Linear(4, 4))
        (True, False)
    """
    if isinstance(module, NORM_TYPES):
        return True
    own = list(module.parameters(recurse=False))
    return "norm" in type(module).__name__.lower() and bool(own) and all(p.ndim <= 1 for p in own)


@dataclass
class DataflowIndex:
    """Who produced and who consumed every tensor node of a recorded forward pass.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from stabletrain.graph import trace
        >>> g = trace(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), torch.randn(4, 2))
        >>> index = DataflowIndex(g.recording)
        >>> [op.name for op in index.consumers[g.recording.ops[0].outputs[0]]]
        ['relu']
    """

    rec: Recording
    producer: dict[int, Op] = field(default_factory=dict)
    consumers: dict[int, list[Op]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        for op in self.rec.ops:
            for n in op.outputs:
                self.producer[n] = op
            for n in dict.fromkeys(op.inputs):
                self.consumers[n].append(op)

    def is_constant(self, node: int) -> bool:
        """Produced by no recorded op and not a model input: a constant, a buffer's copy."""
        return node not in self.producer and node not in self.rec.input_nodes

    def descendants(self, node: int, until: int) -> set[int]:
        """Nodes computed from ``node`` by the ops before op ``until`` (one forward sweep)."""
        reached = {node}
        first = self.producer[node].index + 1 if node in self.producer else 0
        for op in self.rec.ops[first:until]:
            if not reached.isdisjoint(op.inputs):
                reached.update(op.outputs)
        return reached

    def meet(self, a: int, b: int) -> tuple[int, set[int], set[int]] | None:
        """The latest node both ``a`` and ``b`` are computed from, and the nodes after it on
        each side (``a``'s ancestors and ``a`` itself, then ``b``'s).

        Node ids grow in execution order (an op's outputs get ids after its inputs), so walking
        back from both sides in decreasing id order meets the latest common ancestor first and
        visits only the nodes after it: linear in the size of the block, not of the model.
        """
        sides: dict[int, int] = {a: 1, b: 2}
        heap = sorted((-a, -b))  # a valid heap
        while heap:
            n = -heapq.heappop(heap)
            mask = sides[n]
            if mask == 3:
                side_a = {m for m, s in sides.items() if s & 1 and m > n}
                side_b = {m for m, s in sides.items() if s & 2 and m > n}
                return n, side_a, side_b
            op = self.producer.get(n)
            if op is None:
                continue
            for m in op.inputs:
                if m not in sides:
                    sides[m] = mask
                    heapq.heappush(heap, -m)
                elif sides[m] | mask != sides[m]:
                    sides[m] |= mask
        return None


def _follow(
    index: DataflowIndex, node: int, residual_adds: set[int], dropout: bool = False, depth: int = 0
) -> list[Following]:
    if depth > 64:
        return [Following("other", "deep")]
    found: list[Following] = []
    if node in index.rec.output_nodes:
        found.append(Following("output", "model output", via_dropout=dropout))
    for op in index.consumers.get(node, []):
        kind = op_kind(op.name)
        others = [n for n in op.inputs if n != node]
        if kind == "transparent":
            drop = dropout or op.name in DROPOUT_OPS
            for out in op.outputs:
                found += _follow(index, out, residual_adds, drop, depth + 1)
        elif kind == "activation":
            name, params, result = op.name, op.act_params, _first(op)
            gate = _gate_of(index, op, node) if name == "sigmoid" else None
            if gate is not None:
                name, params, result = "silu", (), _first(gate)
            found.append(Following("activation", name, params, op.module, dropout, node=result))
        elif kind == "norm":
            after = _follow(index, op.outputs[0], residual_adds, depth=depth + 1)
            then = next((f for f in after if f.kind == "activation"), after[0] if after else None)
            found.append(Following("norm", op.name, (), op.module, dropout, then, _first(op)))
        elif kind in ("add", "mul") and all(index.is_constant(n) for n in others):
            for out in op.outputs:  # a shift or scale by a constant
                found += _follow(index, out, residual_adds, dropout, depth + 1)
        elif kind == "mul" and any(_is_sigmoid_of(index, n, node) for n in others):
            continue  # x * sigmoid(x): reported as silu at the sigmoid
        elif kind == "add":
            found.append(
                Following(
                    "residual" if op.index in residual_adds else "add",
                    op.name,
                    (),
                    op.module,
                    dropout,
                )
            )
        elif kind in ("output", "attention"):
            found.append(Following(kind, op.name, (), op.module, dropout))
        elif op.params:
            found.append(Following("layer", op.name, (), op.module, dropout))
        else:
            found.append(Following("other", op.name, (), op.module, dropout))
    return found


def _first(op: Op) -> int:
    return op.outputs[0] if op.outputs else -1


def _is_sigmoid_of(index: DataflowIndex, node: int, x: int) -> bool:
    op = index.producer.get(node)
    return op is not None and op.name == "sigmoid" and op.inputs == (x,)


def _gate_of(index: DataflowIndex, sigmoid: Op, x: int) -> Op | None:
    """The product ``x * sigmoid(x)`` that gates ``x``, if any."""
    return next(
        (
            op
            for op in index.consumers.get(sigmoid.outputs[0], [])
            if op.name == "mul" and x in op.inputs
        ),
        None,
    )


def _residuals(index: DataflowIndex, calls: list[Call], model: nn.Module) -> list[ResidualBranch]:
    by_output: dict[int, Call] = {}
    for call in calls:
        if call.outputs:
            by_output[call.outputs[0]] = call
    modules = dict(model.named_modules(remove_duplicate=False))
    branches = []
    for op in index.rec.ops:
        if op_kind(op.name) != "add" or len(op.inputs) != 2 or op.inputs[0] == op.inputs[1]:
            continue
        a, b = op.inputs
        if index.is_constant(a) or index.is_constant(b):
            continue
        met = index.meet(a, b)
        if met is None:
            continue
        root, anc_a, anc_b = met  # root: the block's input
        below = index.descendants(root, until=op.index) - {root}
        side_a, side_b = anc_a & below, anc_b & below
        layers_a = [by_output[n] for n in sorted(side_a) if n in by_output]
        layers_b = [by_output[n] for n in sorted(side_b) if n in by_output]
        branch, shortcut, side = (
            (layers_b, layers_a, side_b)
            if len(layers_b) >= len(layers_a)
            else (layers_a, layers_b, side_a)
        )
        lookups = (nn.Embedding, nn.EmbeddingBag)  # summed embeddings are not a residual
        if not branch or any(isinstance(modules[c.module], lookups) for c in branch + shortcut):
            continue
        names = tuple(dict.fromkeys(c.module for c in sorted(branch, key=lambda c: c.order)))
        weights = [n for n in names if not is_norm(modules[n])]
        last = weights[-1] if weights else None
        tail = names[names.index(last) + 1 :] if last else names
        last_norm = next((n for n in reversed(tail) if is_norm(modules[n])), None)
        pre_norm = names[0] if weights and is_norm(modules[names[0]]) else None
        shortcut_names = tuple(dict.fromkeys(c.module for c in shortcut))
        tail_name = last_norm or last
        tail_out = max((c.outputs[0] for c in branch if c.module == tail_name), default=None)
        tail_act = next(
            (
                index.producer[n].name
                for n in sorted(side)
                if tail_out is not None
                and n > tail_out
                and n in index.producer
                and op_kind(index.producer[n].name) == "activation"
            ),
            None,
        )
        ends = (
            _branch_ends(index, [c for c in branch if c.module in weights], op.index)
            if pre_norm is not None
            else (last,)
            if last
            else ()
        )
        branches.append(
            ResidualBranch(
                op.index,
                names,
                tuple(weights),
                shortcut_names,
                last_norm,
                tail_act,
                pre_norm,
                ends,
            )
        )
    return branches


def _branch_ends(index: DataflowIndex, calls: list[Call], add: int) -> tuple[str, ...]:
    """The layers among ``calls`` whose output reaches op ``add`` without passing through
    another of the ``calls``' layers, in execution order."""
    ends = []
    for call in sorted(calls, key=lambda c: c.order):
        if not call.outputs:
            continue
        reached = index.descendants(call.outputs[0], until=add)
        if not any(
            other.module != call.module and not reached.isdisjoint(other.inputs) for other in calls
        ):
            ends.append(call.module)
    return tuple(dict.fromkeys(ends))


def _reads(
    index: DataflowIndex, op: Op, adds: set[int], depth: int = 0
) -> list[tuple[str, list[Following]]]:
    """(op name, what follows its result) for each use of the parameters ``op`` reads.

    An op that only views its parameter (``W.transpose(1, 2)``, ``W[e]``) passes it on: the ops
    that consume the view use the parameter too, so batched expert weights read through a
    transpose by ``_grouped_mm`` are seen as a linear map's weights.
    """
    if op.inputs or op_kind(op.name) != "transparent" or depth > 4:
        return [(op.name, _follow(index, op.outputs[0], adds) if op.outputs else [])]
    found: list[tuple[str, list[Following]]] = [(op.name, [])]
    for out in op.outputs:
        for consumer in index.consumers.get(out, []):
            found += _reads(index, consumer, adds, depth + 1)
    return found


def analyse(
    rec: Recording, model: nn.Module
) -> tuple[list[LayerInfo], list[ParamUse], list[ResidualBranch]]:
    """Per-layer and per-parameter following operations, and the residual branches."""
    index = DataflowIndex(rec)
    branches = _residuals(index, rec.calls, model)
    adds = {b.add_op for b in branches}
    orders: dict[str, list[int]] = defaultdict(list)
    following: dict[str, list[Following]] = defaultdict(list)
    activations: dict[str, list[int]] = defaultdict(list)
    for call in rec.calls:
        orders[call.module].append(call.order)
        after = _follow(index, call.outputs[0], adds) if call.outputs else []
        following[call.module] += after
        act = first_activation(tuple(after))
        activations[call.module].append(act.node if act is not None else -1)
    # parameters used outside their module's own call (tied weights, functional use)
    inside = {(c.module, i) for c in rec.calls for i in range(c.first_op, c.last_op)}
    param_ops: dict[str, list[str]] = defaultdict(list)
    param_following: dict[str, list[Following]] = defaultdict(list)
    for op in rec.ops:
        if not op.params:
            continue
        for name, after in _reads(index, op, adds):
            for p in dict.fromkeys(op.params):
                param_ops[p].append(name)
                param_following[p] += after
                owner = p.rpartition(".")[0]
                if (owner, op.index) not in inside:
                    following[owner] += after
    uses = [
        ParamUse(p, tuple(dict.fromkeys(param_ops[p])), tuple(dict.fromkeys(param_following[p])))
        for p in param_ops
    ]
    layers = [
        LayerInfo(
            name,
            model.get_submodule(name),
            tuple(order),
            tuple(dict.fromkeys(following[name])),
            tuple(activations[name]),
        )
        for name, order in orders.items()
    ]
    return layers, uses, branches
