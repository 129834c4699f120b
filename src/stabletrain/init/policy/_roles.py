"""The roles parameters play in what the model computes, read from one traced forward pass.

A parameter's init is decided by the role that fixes the scale of what it produces:

- **logits**: a linear map whose result is the model's output or goes into a softmax or a
  classification loss (a classifier head, an LM head, an MoE router). Logits ``~ N(0, σ²)``
  over ``C`` classes give an expected cross-entropy of about ``ln C + σ²/2``; the layer is
  fitted on the example batch so the step-0 loss is ``1.025 · ln C`` (``σ = sqrt(0.05 · ln
  C)`` where Gaussian): a model that starts knowing nothing, not one that is confidently
  wrong. A table that is both the input embedding and the output projection (tied LM heads)
  takes this role: it decides what the model emits.
- **tables**: an embedding or position table followed by a normalization before any residual
  addition or layer has a free scale (the norm removes it); one that feeds a residual stream
  directly sets that stream's scale.
- **pre-norm branches**: ``x + F(norm(x))`` blocks (Pre-LN Transformers); each branch's last
  layer is scaled relative to the stream it adds into, ``1/sqrt(N)`` for ``N`` such branches, as
  GPT-2 scales its residual projections by ``1/sqrt(2·n_layer)`` (Radford et al. 2019).
- **attention queries**: where the scores ``q·kᵀ`` reach the softmax without the ``1/sqrt(d)``
  of Vaswani et al. (2017) (T5 folds it into the query's init), the query projection takes it.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from stabletrain._units import is_hf_conv1d
from stabletrain.graph import DataflowIndex, Following, Graph, is_norm
from stabletrain.graph.ops import ADD_OPS, LINEAR_OPS, MUL_OPS, NORM_OPS, op_kind

# consumers that make a layer's output logits over its last dim (regression losses do not)
LOGIT_CONSUMERS = frozenset(
    {"model output", "softmax", "log_softmax", "cross_entropy", "nll_loss", "argmax"}
)
_LOOKUP_OPS = frozenset({"embedding", "embedding_bag"})
TableRole = Literal["stream", "normalized", "attention"]


# the step-0 loss on the example batch exceeds ln C by this fraction: logits as large as the 5%
# bound allows (every earlier layer's gradient scales with them), less what another batch and
# real labels add (measured on the real-model zoo: up to +2.2% of ln C on held-out data)
LOGIT_LOSS_EXCESS = 0.025


# a tied table also writes the input, so each token's own logit starts about √d times the others
# (h ≈ e_x / |e_x|): the loss rises faster than σ²/2 and the margin has to be kept
TIED_LOGIT_LOSS_EXCESS = 0.01

# ... and is then fitted to a larger step-0 loss than an untied head: the same table is the
# input embedding, whose scale the blocks want large (T5's own table has std 1; T5 trained 6.5%
# worse than its own init at 1.025 ln V, 3% at 1.035), so it takes the largest logits the 5%
# bound allows, less the margin another batch adds: fitted to 1.035 ln V, the zoo's tied LMs
# measured up to 1.044 ln V on held-out batches (1.049 at 1.04, and 1.050 on an 8-row example
# batch's own targets); an untied head keeps 2.5% (a vision head's labels are not uniform).
TIED_FIT_EXCESS = 0.035


def logit_std(classes: int, excess: float = LOGIT_LOSS_EXCESS) -> float:
    """The std of Gaussian logits over ``classes`` classes that starts the loss at
    ``≈ (1 + excess) · ln C``.

    ``E[logsumexp(z)] ≈ ln C + σ²/2`` for ``z ~ N(0, σ²)``; ``σ² = 2 · excess · ln C`` makes the
    excess ``excess · ln C`` (default :data:`LOGIT_LOSS_EXCESS`, 2.5%). ``auto_init`` draws
    logits layers at this std, then fits them to the loss itself (:func:`fitted_logit_std`).

    Example:
        >>> round(logit_std(256), 4)
        0.5266
    """
    return math.sqrt(2 * excess * math.log(classes))


# rows of logits the step-0 loss fit reads (a sample: the loss is a mean over rows)
_FIT_ROWS = 8192


def fitted_logit_std(
    logits: torch.Tensor, classes: int, excess: float = LOGIT_LOSS_EXCESS, per_class: bool = False
) -> float:
    """The std to scale ``logits`` to so their cross-entropy against uniform random targets
    is ``(1 + excess) · ln C``, or NaN where ``logits`` are not over ``classes`` classes or
    are constant. ``per_class``: each class's mean over the rows is removed first (the
    layer's bias will take it, see :func:`stabletrain.init._calibrate.calibrate`'s ``centre``).

    With ``z`` the logits centred per row, the expected loss of a uniform target is
    ``mean_rows logsumexp(s·z)``: 0 extra at ``s = 0``, increasing and convex in ``s``, so
    bisection finds the scale ``s``. Measuring the loss instead of assuming
    ``E[logsumexp] ≈ ln C + σ²/2`` is exact where logits are not Gaussian: the input token's
    own logit of a tied LM head, per-class offsets of pooled ReLU features.

    Example:
        >>> z = torch.randn(4096, 10, generator=torch.Generator().manual_seed(0))
        >>> s = fitted_logit_std(z, 10) / float(z.std())
        >>> loss = torch.logsumexp(s * (z - z.mean(-1, keepdim=True)), -1).mean()
        >>> round(float(loss) / math.log(10), 3)
        1.025
    """
    if logits.dim() == 0 or logits.shape[-1] != classes or classes < 2:
        return math.nan
    z = logits.detach().double().reshape(-1, classes)[:_FIT_ROWS]
    if per_class:
        z = z - z.mean(0, keepdim=True)
    z = z - z.mean(-1, keepdim=True)
    spread = float(z.std()) if z.numel() > 1 else 0.0
    if not 0 < spread < math.inf:
        return math.nan
    goal = (1 + excess) * math.log(classes)

    def loss(s: float) -> float:
        return float(torch.logsumexp(s * z, -1).mean())

    lo, hi = 0.0, 1.0 / spread
    while loss(hi) < goal and hi < 1e12:
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if loss(mid) < goal else (lo, mid)
    return (lo + hi) / 2 * float(logits.detach().double().std())


@dataclass(frozen=True)
class Logits:
    """A parameter (or layer) that produces logits over ``classes`` classes."""

    layer: str  # the module whose call computes the logits ('' for a functional use)
    classes: int
    fan_in: int
    kind: Literal["output", "router"]
    tied: bool  # the same tensor is also read by an embedding lookup

    @property
    def std(self) -> float:
        """The std the logits are drawn at, :func:`logit_std` (1% of excess when tied)."""
        return logit_std(self.classes, TIED_LOGIT_LOSS_EXCESS if self.tied else LOGIT_LOSS_EXCESS)

    @property
    def fit_excess(self) -> float:
        """The step-0 loss excess the fit aims for: :data:`TIED_FIT_EXCESS` for a tied table,
        :data:`LOGIT_LOSS_EXCESS` otherwise."""
        return TIED_FIT_EXCESS if self.tied else LOGIT_LOSS_EXCESS

    def describe(self) -> str:
        """Why this role decided, for the report."""
        what = "router logits (softmax)" if self.kind == "router" else "output logits"
        tied = ", tied: also the input embedding" if self.tied else ""
        return (
            f"{what} over {self.classes} classes{tied}: drawn at std {self.std:.3g}, fitted on "
            f"the example batch to a step-0 loss of {1 + self.fit_excess:g}·ln C"
        )


@dataclass
class Roles:
    """What :func:`find_roles` read from a graph."""

    logits: dict[str, Logits] = field(default_factory=dict)  # parameter name -> role
    tables: dict[str, TableRole] = field(default_factory=dict)  # lookup parameter -> role
    prenorm_tails: dict[str, str] = field(default_factory=dict)  # last layer -> its branch's norm
    query_factors: dict[str, tuple[float, int]] = field(default_factory=dict)  # layer -> (×, d)

    def stream_std(self, params: dict[str, nn.Parameter]) -> float | None:
        """The std of a tied logits table (it sets the stream's scale), if there is one."""
        for name, role in self.logits.items():
            if role.tied and name in params:
                return role.std / math.sqrt(role.fan_in)
        return None


def _classes_and_fan_in(module: nn.Module, weight: nn.Parameter) -> tuple[int, int]:
    if is_hf_conv1d(module):  # (in, out)
        return int(weight.shape[1]), int(weight.shape[0])
    return int(weight.shape[0]), math.prod(int(s) for s in weight.shape[1:])


def _logit_kind(following: tuple[Following, ...]) -> Literal["output", "router"] | None:
    outputs = [f for f in following if f.kind == "output"]
    if not outputs or any(f.op not in LOGIT_CONSUMERS for f in outputs):
        return None
    return "output" if any(f.op != "softmax" for f in outputs) else "router"


def _logits(graph: Graph, model: nn.Module) -> dict[str, Logits]:
    names = {id(p): n for n, p in model.named_parameters()}
    lookups = {n for n, u in graph.params.items() if _LOOKUP_OPS & set(u.ops)}
    found: dict[str, Logits] = {}
    for layer in graph.layers.values():
        kind = _logit_kind(layer.following)
        if kind is None:
            continue
        for p in layer.module.parameters(recurse=False):
            name = names.get(id(p))
            if name is None or p.dim() < 2 or not p.requires_grad:
                continue
            classes, fan_in = _classes_and_fan_in(layer.module, p)
            if isinstance(layer.module, nn.Embedding | nn.EmbeddingBag):
                continue  # a lookup that is the output: no linear map to scale
            if classes >= 2:
                found[name] = Logits(layer.name, classes, fan_in, kind, name in lookups)
    for name, use in graph.params.items():  # functional heads: F.linear(h, self.wte.weight)
        kind = _logit_kind(use.following)
        if name in found or kind is None or not set(use.ops) & set(LINEAR_OPS):
            continue
        p = model.get_parameter(name)
        if p.dim() == 2 and p.shape[0] >= 2 and p.requires_grad:
            found[name] = Logits("", int(p.shape[0]), int(p.shape[1]), kind, name in lookups)
    return found


def _table_role(
    index: DataflowIndex, start: list[int], residual_adds: set[int], norms: set[str]
) -> TableRole:
    """Follow a lookup's result through additions (token + position), views and constant
    scales: a norm reached first makes its scale free."""
    seen, todo, roles = set(start), list(start), set()
    while todo:
        node = todo.pop()
        for op in index.consumers.get(node, []):
            kind = op_kind(op.name)
            if op.name in NORM_OPS or op.module in norms:  # a custom norm: pow, mean, rsqrt
                roles.add("normalized")
                continue
            passes = kind == "transparent" or (
                op.name in ADD_OPS | MUL_OPS and op.index not in residual_adds and not op.params
            )
            if passes:
                for out in op.outputs:
                    if out not in seen:
                        seen.add(out)
                        todo.append(out)
            elif kind == "attention":
                roles.add("attention")
            elif op.index in residual_adds or op.params:
                roles.add("stream")  # a residual stream or a layer reads it as it is
            else:
                roles.add("other")
    if seen & set(index.rec.output_nodes):
        roles.add("stream")
    if "stream" in roles:
        return "stream"
    if "attention" in roles:
        return "attention"  # a position bias of the attention scores (T5)
    return "normalized" if roles == {"normalized"} else "stream"


def _tables(graph: Graph, model: nn.Module) -> dict[str, TableRole]:
    index = DataflowIndex(graph.recording)
    adds = {b.add_op for b in graph.residuals}
    starts: dict[str, list[int]] = {}
    for op in graph.recording.ops:
        if op.name in _LOOKUP_OPS and op.params:
            starts.setdefault(op.params[0], []).extend(op.outputs)
    roles: dict[str, TableRole] = {}
    norms = {n for n, m in model.named_modules() if is_norm(m)}
    for name, nodes in starts.items():
        roles[name] = _table_role(index, nodes, adds, norms)
    return roles


def _query_factors(graph: Graph) -> dict[str, tuple[float, int]]:
    index = DataflowIndex(graph.recording)
    by_output = {c.outputs[0]: c.module for c in graph.recording.calls if c.outputs}
    found: dict[str, tuple[float, int]] = {}
    for op in graph.recording.ops:
        if op.name != "scaled_dot_product_attention" or not op.inputs:
            continue
        params = dict(op.act_params)
        head_dim = int(params.get("head_dim", 0))
        scale = params.get("scale")
        if scale is None or head_dim <= 0 or scale <= 0:
            continue  # SDPA's default scale is 1/sqrt(head_dim)
        factor = 1 / (math.sqrt(head_dim) * scale)
        if abs(factor - 1) < 1e-3:
            continue
        layer = _producing_layer(index, by_output, op.inputs[0])
        if layer is not None:
            found[layer] = (factor, head_dim)
    return found


def _producing_layer(index: DataflowIndex, by_output: dict[int, str], node: int) -> str | None:
    """The nearest layer call upstream of ``node`` (node ids grow in execution order)."""
    heap, seen = [-node], {node}
    while heap:
        n = -heapq.heappop(heap)
        if n in by_output:
            return by_output[n]
        op = index.producer.get(n)
        for m in op.inputs if op is not None else ():
            if m not in seen:
                seen.add(m)
                heapq.heappush(heap, -m)
    return None


def find_roles(graph: Graph, model: nn.Module) -> Roles:
    """Logits layers, lookup tables, pre-norm branch ends and unscaled attention queries."""
    tails = {
        end: b.pre_norm
        for b in graph.residuals
        if b.pre_norm is not None and b.last_norm is None
        for end in b.ends
    }
    return Roles(_logits(graph, model), _tables(graph, model), tails, _query_factors(graph))
