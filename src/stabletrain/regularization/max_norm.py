"""Max-norm constraint: every unit's incoming weight vector kept inside a ball of radius c.

Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov 2014, "Dropout: A Simple Way to
Prevent Neural Networks from Overfitting" (JMLR 15, Sec. 5.1): after each update, project the
incoming weights w_i of every hidden unit i onto ‖w_i‖₂ <= c,

    w_i ← w_i · min(1, c / ‖w_i‖)

which lets dropout use large learning rates without the weights blowing up (typical c: 3–4).

The unit of each layer type (what "incoming weight vector" means for its weight tensor):

- ``Linear`` (out, in), ``Bilinear`` (out, in1, in2), ``Conv{1,2,3}d`` (out, in/groups, *k):
  dim 0, the norm taken over everything else;
- ``ConvTranspose{1,2,3}d`` (in, out/groups, *k): output channel g·(out/groups) + j is column j
  of the rows of group g, so the weight is viewed as (groups, in/groups, out/groups, *k) and
  the norm taken over dims 1, 3, ... for each (g, j);
- ``Embedding`` / ``EmbeddingBag`` (num, dim): dim 0, each embedding vector (``nn.Embedding``'s
  own ``max_norm`` renormalizes only the rows a batch looks up, at lookup time);
- transformers' GPT-2 ``Conv1D`` (in, out): dim 1.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import overload

import torch
from torch import nn
from torch.optim import Optimizer

from stabletrain._checks import FLOAT_DTYPES, check_real
from stabletrain._norms import at_most, norm_dtype, vector_norm
from stabletrain._units import CONV_TRANSPOSE, Units, is_hf_conv1d
from stabletrain._wrappers import unwrap_model
from stabletrain.regularization._hooks import OptimizerHook, check_optimizer

__all__ = ["MAX_NORM_LAYERS", "MaxNormConstraint", "max_norm_", "max_norm_constraint"]

MAX_NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Bilinear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    *CONV_TRANSPOSE,
    nn.Embedding,
    nn.EmbeddingBag,
)


class _Target:
    """A weight to constrain, its units, and what its per-step projection needs precomputed."""

    __slots__ = ("axis", "dims", "name", "tensor", "units")

    def __init__(self, name: str, tensor: torch.Tensor, units: Units) -> None:
        self.name, self.tensor, self.units = name, tensor, units
        self.dims = units.reduce_dims(tensor.dim())  # the dims a unit's norm reduces
        # the one dim along which the keepdim norms differ (0 for a whole-tensor unit); None
        # for grouped transposed convolutions, whose units span two dims of their view
        self.axis = None if units.groups > 1 or tensor.dim() == 0 else (units.dim or 0)

    def norms(self, p: float) -> torch.Tensor:
        """The unit norms, keepdim (broadcastable against :meth:`view`): finite wherever
        representable, 0 for a unit with no values (:func:`stabletrain._norms.vector_norm`)."""
        view = self.view()
        if not self.dims and view.dim():  # one unit per element: vector_norm(dim=[]) takes all
            return view.abs().to(norm_dtype(view.dtype))
        return vector_norm(view, p, self.dims, keepdim=True)

    def view(self) -> torch.Tensor:
        """The tensor, split into groups where needed (a view: in-place ops reach the weight)."""
        return self.tensor if self.units.groups == 1 else self.units.view(self.tensor)


def _check_norm_type(norm_type: float, *, where: str) -> float:
    if norm_type == float("inf"):
        return float("inf")
    p = check_real("norm_type", norm_type, where=where)
    if p < 1:
        raise ValueError(
            f"{where}: norm_type must be >= 1 (a norm), got {p}; use 2 (the paper's), 1 or inf."
        )
    return p


def _check_dtype(t: torch.Tensor, name: str, *, where: str = "max_norm_") -> None:
    if t.dtype not in FLOAT_DTYPES:
        valid = ", ".join(str(d).removeprefix("torch.") for d in FLOAT_DTYPES)
        raise TypeError(
            f"{where}: {name} has dtype {t.dtype}; a max-norm constraint is for real "
            f"floating-point weights ({valid}): cast it with .float(), or constrain "
            "torch.view_as_real(w) for a complex weight."
        )


def _tensor_units(t: torch.Tensor, dim: int | None, *, name: str, where: str) -> Units:
    if dim is None:
        return Units(0 if t.dim() >= 2 else None)  # a vector or a scalar is one unit
    if isinstance(dim, bool) or not isinstance(dim, int) or not -t.dim() <= dim < max(t.dim(), 1):
        raise ValueError(
            f"{where}: dim={dim!r} is out of range for {name} of shape {tuple(t.shape)}; use an "
            f"int in [{-t.dim()}, {t.dim() - 1}], the dim that indexes the units, or None."
        )
    return Units(dim % t.dim() if t.dim() else None)


def _layer_units(module: nn.Module, t: torch.Tensor, dim: int | None, name: str) -> Units:
    if dim is not None:
        return _tensor_units(t, dim, name=name, where="max_norm_")
    if isinstance(module, CONV_TRANSPOSE):
        return Units(1, module.groups)  # (in, out/groups, *k)
    if is_hf_conv1d(module):
        return Units(1)  # (in, out)
    return Units(0)


def _targets(
    module: nn.Module,
    layers: tuple[type[nn.Module], ...],
    dim: int | None,
    exclude: Collection[str],
) -> list[_Target]:
    """The weight of every matching layer (each tensor once), with its units."""
    found: list[_Target] = []
    seen: set[int] = set()
    for layer, m in module.named_modules():
        if not (isinstance(m, layers) or is_hf_conv1d(m)) or layer in exclude:
            continue
        weight = getattr(m, "weight", None)
        name = f"{layer}.weight" if layer else "weight"
        if not isinstance(weight, torch.Tensor) or id(weight) in seen or name in exclude:
            continue
        seen.add(id(weight))
        found.append(_Target(name, weight, _layer_units(m, weight, dim, name)))
    return found


def _apply(targets: list[_Target], c: float, p: float) -> list[torch.Tensor]:
    """Rescale every unit above c to norm c (at most); return each target's unit norms before
    (keepdim).

    One norm kernel per tensor; then, per (device, dtype, layout) of the norms and dtype of the
    weights, one concatenation, one factor computation (:func:`_factors`: exactly 1 inside the
    ball and for units whose norm is not finite, which are left as they are) and one split back
    into views shaped like the norms; then one fused multiplication. Call under
    ``torch.no_grad()``.
    """
    norms = [t.norms(p) for t in targets]
    buckets: dict[tuple[torch.device, torch.dtype, int, int | None, torch.dtype], list[int]] = {}
    for i, (t, n) in enumerate(zip(targets, norms, strict=True)):
        buckets.setdefault((n.device, n.dtype, n.dim(), t.axis, t.tensor.dtype), []).append(i)
    factors: list[torch.Tensor | None] = [None] * len(targets)
    for (_, dtype, _, axis, weights), idx in buckets.items():
        if axis is None:  # grouped: flatten, then view each part back
            flat = torch.cat([norms[i].flatten() for i in idx])
        else:  # cat along the unit axis: the split parts have the norms' shapes already
            flat = torch.cat([norms[i] for i in idx], dim=axis)
        scale = _factors(flat, c, dtype, weights)
        sizes = [norms[i].numel() for i in idx]
        for i, part in zip(idx, torch.split(scale, sizes, dim=axis or 0), strict=True):
            factors[i] = part if axis is not None else part.view(norms[i].shape)
    torch._foreach_mul_([t.view() for t in targets], [f for f in factors if f is not None])
    return norms


def _factors(
    norms: torch.Tensor, c: float, dtype: torch.dtype, weights: torch.dtype
) -> torch.Tensor:
    """(c/‖w_i‖)·(1 − δ) for the units above c, exactly 1 for the others (and non-finite ones).

    The comparison is exact (against the largest value of the norms' dtype <= c, never c
    rounded up), and δ = u_w + 4·eps covers the roundings on the way (the product rounded to
    the weights' dtype, u_w = eps_w/2; the norm, the quotient and the factor in the norms'
    dtype), so a rescaled unit ends at most at c (within the norm kernel's own rounding) and
    a second projection leaves it bit for bit.
    """
    bound = at_most(c, dtype).to(norms.device)
    over = torch.isfinite(norms) & (norms > bound)
    shrink = 1.0 - (torch.finfo(weights).eps / 2 + 4 * torch.finfo(dtype).eps)
    rescaled = bound / torch.where(over, norms, bound) * shrink
    return torch.where(over, rescaled, torch.ones_like(norms))


def _flat(norms: torch.Tensor, target: _Target) -> torch.Tensor:
    """Unit norms as returned: 1-D in output-unit order, 0-d for a whole-tensor unit."""
    return norms.reshape(()) if target.units.dim is None else norms.flatten()


@overload
def max_norm_(
    target: torch.Tensor, max_value: float, *, dim: int | None = None, norm_type: float = 2.0
) -> torch.Tensor: ...


@overload
def max_norm_(
    target: nn.Module, max_value: float, *, dim: int | None = None, norm_type: float = 2.0
) -> dict[str, torch.Tensor]: ...


def max_norm_(
    target: torch.Tensor | nn.Module,
    max_value: float,
    *,
    dim: int | None = None,
    norm_type: float = 2.0,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Rescale each unit's weight vector to norm <= c, in place; return the norms before.

    w_i ← w_i · min(1, c / ‖w_i‖) for every unit i (Srivastava et al. 2014, "Dropout", JMLR,
    Sec. 5.1). Units inside the ball are left bit for bit; units whose norm is NaN or inf are
    left as they are; a rescaled unit ends at c·(1 − δ), δ a few units in the last place
    (float32: 5e-7, float16: 5e-4), never above c, so projecting twice changes nothing. A
    unit with no values has norm 0. No host sync on an accelerator.

    Args:
        target: a weight tensor, or a module: the weight of every ``Linear``, ``Bilinear``,
            ``Conv*``, ``ConvTranspose*``, ``Embedding(Bag)`` (and GPT-2 ``Conv1D``) in it,
            each with its layer's units (see the module docstring).
        max_value: c > 0.
        dim: the dim that indexes the units (each slice along it is one unit, as in
            ``torch.renorm``). None (recommended): dim 0 for a tensor with >= 2 dims (one unit
            for a vector), each layer's output units for a module. An int overrides it for
            every weight (grouped transposed convolutions then lose their group split).
        norm_type: the norm's order p >= 1 (2 in the paper).

    Returns:
        For a tensor: the unit norms before (1-D, 0-d for one unit). For a module:
        ``{weight name: unit norms before}``; ``norms[i]`` is output unit i.

    Raises:
        TypeError: ``target`` is neither a tensor nor a module, or a weight is not real
            floating point (integer, bool, complex).
        ValueError: c <= 0, a dim out of range, p < 1.

    Example:
        >>> import torch
        >>> w = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
        >>> max_norm_(w, 1.0)
        tensor([5.0000, 0.5000])
        >>> w  # row 0 rescaled to norm 1, row 1 inside the ball
        tensor([[0.6000, 0.8000],
                [0.3000, 0.4000]])
    """
    where = "max_norm_"
    c = check_real("max_value", max_value, where=where, positive=True)
    p = _check_norm_type(norm_type, where=where)
    with torch.no_grad():
        if isinstance(target, torch.Tensor):
            _check_dtype(target, "the tensor")
            units = _tensor_units(target, dim, name="the tensor", where=where)
            single = _Target("0", target, units)
            return _flat(_apply([single], c, p)[0], single)
        if not isinstance(target, nn.Module):
            raise TypeError(
                f"{where}: expected a tensor or an nn.Module, got {type(target).__name__}."
            )
        targets = _targets(target, MAX_NORM_LAYERS, dim, ())
        for t in targets:
            _check_dtype(t.tensor, t.name)
        if not targets:
            raise ValueError(
                f"{where}: {type(target).__name__} has no Linear, Bilinear, Conv, ConvTranspose or "
                "Embedding layer; pass its weight tensor with dim=<the unit dim> instead."
            )
        norms = _apply(targets, c, p)
        return {t.name: _flat(n, t) for t, n in zip(targets, norms, strict=True)}


class MaxNormConstraint(OptimizerHook):
    """The handle of :func:`max_norm_constraint`; ``remove()`` it or leave its ``with`` block.

    ``names``: the constrained weights; ``last_norms``: their unit norms measured before the
    latest projection (device tensors).
    """

    where = "max_norm_constraint"

    def __init__(
        self, optimizer: Optimizer, targets: list[_Target], max_value: float, norm_type: float
    ) -> None:
        super().__init__(optimizer)
        self._targets = targets
        self.max_value = max_value
        self.norm_type = norm_type
        self.names = [t.name for t in targets]
        self._last: list[torch.Tensor] = []
        self._register(before=False, after=True)

    @property
    def last_norms(self) -> dict[str, torch.Tensor]:
        """``{weight name: unit norms}`` measured before the latest projection ({} before)."""
        return {t.name: _flat(n, t) for t, n in zip(self._targets, self._last, strict=True)}

    def _after_step(self) -> None:
        self._last = _apply(self._targets, self.max_value, self.norm_type)


def max_norm_constraint(
    optimizer: Optimizer,
    model: nn.Module,
    max_value: float,
    *,
    norm_type: float = 2.0,
    layers: Collection[type[nn.Module]] = MAX_NORM_LAYERS,
    exclude: Collection[str] = (),
) -> MaxNormConstraint:
    """Apply :func:`max_norm_` to the model's layer weights after every optimizer step.

    After each ``optimizer.step()``: w_i ← w_i · min(1, c / ‖w_i‖) for every output unit i of
    every selected weight (Srivastava et al. 2014, "Dropout", JMLR, Sec. 5.1), so the
    constraint holds whenever the step has returned. Units are picked per layer type (see the
    module docstring); biases are not constrained. One norm kernel per weight and one fused
    multiplication; no host sync on an accelerator.

    Runs after ``step()`` returns, so ``optimizer.step(closure)`` is constrained like a plain
    step. One constraint per optimizer: a second call before ``remove()`` raises (it would
    project twice per step); constrain every layer in one call.

    Args:
        optimizer: the ``torch.optim.Optimizer`` that updates the model.
        model: the model whose layers to constrain; only weights the optimizer holds are.
        max_value: c > 0 (the paper uses 3–4 with dropout).
        norm_type: the norm's order p >= 1.
        layers: the layer types whose ``weight`` is constrained (default
            :data:`MAX_NORM_LAYERS`).
        exclude: layer or weight names to leave free (e.g. the classifier ``"head"``).

    Returns:
        A :class:`MaxNormConstraint` handle; ``remove()`` it or use it in ``with``.

    Raises:
        TypeError: a non-optimizer, a non-module, a ``layers`` entry that is not a module type.
        ValueError: c <= 0, p < 1, no weight selected (an empty constraint is a typo), or the
            optimizer already has a max-norm constraint.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Linear(4, 3)
        >>> opt = torch.optim.SGD(model.parameters(), lr=10.0)
        >>> with max_norm_constraint(opt, model, 2.0):
        ...     model(torch.ones(1, 4)).sum().backward()
        ...     opt.step()
        >>> bool((model.weight.norm(dim=1) <= 2.0 + 1e-6).all())
        True
    """
    where = "max_norm_constraint"
    optimizer = check_optimizer(optimizer, where=where)
    MaxNormConstraint.refuse_second(optimizer)
    model = unwrap_model(model)
    if not isinstance(model, nn.Module):
        raise TypeError(f"{where}: expected the model (an nn.Module), got {type(model).__name__}.")
    c = check_real("max_value", max_value, where=where, positive=True)
    p = _check_norm_type(norm_type, where=where)
    kinds = tuple(layers)
    for kind in kinds:
        if not (isinstance(kind, type) and issubclass(kind, nn.Module)):
            raise TypeError(
                f"{where}: layers must hold nn.Module subclasses such as nn.Linear, got {kind!r}."
            )
    excluded = {exclude} if isinstance(exclude, str) else set(exclude)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    targets = [t for t in _targets(model, kinds, None, excluded) if id(t.tensor) in held]
    for t in targets:
        _check_dtype(t.tensor, t.name, where=where)
    if not targets:
        names = ", ".join(k.__name__ for k in kinds)
        raise ValueError(
            f"{where}: no weight to constrain: the model has no {names} layer whose weight the "
            "optimizer holds (after exclude). Pass the model the optimizer trains, or widen layers."
        )
    return MaxNormConstraint(optimizer, targets, c, p)
