"""Proximal L1: exact zeros by soft-thresholding after each optimizer step, and a sparsity report.

The subgradient of λ‖θ‖₁ (:func:`~stabletrain.regularization.l1_penalty` in the loss) moves each
weight by η·λ·sign(θ) per step: it oscillates around 0 and never lands on it (claim R3). The
proximal operator of η·λ‖·‖₁ lands there (Parikh & Boyd 2014, "Proximal Algorithms", Sec. 6.5.2;
with SGD this is ISTA, Daubechies, Defrise & De Mol 2004):

    prox(θ) = sign(θ) · max(|θ| − η·λ, 0)

applied after the optimizer's step on the loss without the L1 term. Weights within η·λ of 0
become exactly 0, which :func:`sparsity` counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeAlias

import torch
from rich.text import Text
from torch import nn
from torch.optim import Optimizer

from stabletrain._checks import check_real
from stabletrain._fit import Cell, Col, FitTable
from stabletrain._norms import at_most
from stabletrain._render import render_text
from stabletrain._wrappers import unwrap_model
from stabletrain.regularization._hooks import (
    OptimizerHook,
    Scalar,
    by_device_and_dtype,
    check_optimizer,
    group_lr,
    group_value,
    on_device,
)

__all__ = [
    "L1_KEY",
    "ProximalL1",
    "SparsityReport",
    "SparsityRow",
    "proximal_l1",
    "soft_threshold_",
    "sparsity",
]

L1_KEY = "l1"  # the parameter-group key of the proximal L1 strength λ₁
_WHERE = "proximal_l1"
Tensors: TypeAlias = "torch.Tensor | Iterable[torch.Tensor]"
Measured: TypeAlias = "nn.Module | torch.Tensor | Iterable[torch.Tensor | tuple[str, torch.Tensor]]"


def _soft_threshold_bucket(params: list[torch.Tensor], threshold: Scalar) -> None:
    """θ ← θ − clamp(θ, −t, t) on tensors of one device and dtype, in place (under no_grad).

    θ − clamp(θ, −t, t) is sign(θ)·max(|θ| − t, 0) with the same rounding: θ − t for θ > t,
    θ + t for θ < −t (the negation of |θ| − t, exact), and θ − θ = 0 exactly in between.
    """
    if isinstance(threshold, torch.Tensor):  # no Tensor overload of clamp: sign · relu(|θ| − t)
        t = on_device(threshold, params)
        magnitude = torch._foreach_abs(params)
        torch._foreach_add_(magnitude, t, alpha=-1)
        torch._foreach_clamp_min_(magnitude, 0.0)
        torch._foreach_mul_(magnitude, torch._foreach_sign(params))
        torch._foreach_copy_(params, magnitude)
        return
    inside = torch._foreach_clamp_max(params, threshold)
    torch._foreach_clamp_min_(inside, -threshold)
    torch._foreach_sub_(params, inside)


def _tensor_list(tensors: Tensors, *, where: str) -> list[torch.Tensor]:
    if isinstance(tensors, torch.Tensor):
        return [tensors]
    if not isinstance(tensors, Iterable):
        raise TypeError(
            f"{where}: expected a tensor or an iterable of tensors (model.parameters()), got "
            f"{type(tensors).__name__}."
        )
    out = list(tensors)
    for t in out:
        if not isinstance(t, torch.Tensor):
            raise TypeError(
                f"{where}: expected tensors, got an element of type {type(t).__name__}."
            )
    return out


def soft_threshold_(tensors: Tensors, threshold: float | torch.Tensor) -> Tensors:
    """Soft-threshold in place, θ ← sign(θ)·max(|θ| − t, 0): the proximal operator of t‖θ‖₁.

    One fused pass per (device, dtype) of the tensors; a tensor ``threshold`` is not read back.
    (Donoho 1995, "De-noising by soft-thresholding"; Parikh & Boyd 2014, "Proximal Algorithms".)

    Args:
        tensors: a tensor or an iterable of tensors (e.g. ``model.parameters()``).
        threshold: t >= 0.

    Returns:
        ``tensors``.

    Example:
        >>> import torch
        >>> soft_threshold_(torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5]), 0.5)
        tensor([-1.5000,  0.0000,  0.0000,  0.0000,  1.0000])
    """
    where = "soft_threshold_"
    if not isinstance(threshold, torch.Tensor):
        threshold = check_real("threshold", threshold, where=where, non_negative=True)
    buckets: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for t in _tensor_list(tensors, where=where):
        buckets.setdefault((t.device, t.dtype), []).append(t)
    with torch.no_grad():
        for params in buckets.values():
            _soft_threshold_bucket(params, threshold)
    return tensors


class ProximalL1(OptimizerHook):
    """The handle of :func:`proximal_l1`; ``remove()`` it or leave its ``with`` block."""

    where = _WHERE

    def __init__(self, optimizer: Optimizer, l1: float) -> None:
        super().__init__(optimizer)
        self.l1 = l1
        self._register(before=False, after=True)

    def _after_step(self) -> None:
        for group in self.optimizer.param_groups:
            lam = group_value(group, L1_KEY, self.l1, where=_WHERE)
            if not isinstance(lam, torch.Tensor) and lam == 0:
                continue
            threshold = group_lr(group, where=_WHERE) * lam
            for params in by_device_and_dtype(group):
                _soft_threshold_bucket(params, threshold)


def proximal_l1(optimizer: Optimizer, l1: float = 0.0) -> ProximalL1:
    """Soft-threshold the parameters after every optimizer step: proximal L1, exact zeros.

    After each ``optimizer.step()``, for each parameter group g with λ₁ = ``g["l1"]`` (default
    ``l1``) > 0, and each of its parameters that has a gradient:

        θ ← sign(θ) · max(|θ| − η_t·λ₁, 0)

    with η_t the group's ``"lr"`` at step time (schedules are followed; a tensor lr is not read
    back). With SGD this is proximal gradient descent (ISTA) on loss + λ₁‖θ‖₁ (Parikh & Boyd
    2014, "Proximal Algorithms"); with adaptive optimizers it is the decoupled analogue of L1, as
    AdamW is of L2. Do not also put :func:`~stabletrain.regularization.l1_penalty` in the loss.

    For feature selection prefer SGD: Adam moves every coordinate by about η per step whatever
    the size of its gradient, so a weight zeroed at one step is pushed off zero at the next. On
    a synthetic regression with 5 informative inputs of 50, SGD with λ₁ = 0.1 kept exactly the
    5 informative first-layer input columns; Adam (λ₁ from 0.1 to 1) made 30–85% of the weights
    exactly zero but kept nearly all 50 columns.

    Which parameters: every group, unless it sets its own ``"l1"``; to spare biases and norms,
    give their groups ``"l1": 0``, e.g. ``[{**g, "l1": 0.0 if g["weight_decay"] == 0 else 1e-3}
    for g in param_groups(model, 0.0)]``. Three fused ``torch._foreach_*`` calls per group and
    (device, dtype).

    Runs after ``step()`` returns, so ``optimizer.step(closure)`` is thresholded like a plain
    step. One hook per optimizer: a second call before ``remove()`` raises (it would threshold
    twice per step).

    Args:
        optimizer: any ``torch.optim.Optimizer`` with an lr.
        l1: λ₁ >= 0 for the groups without an ``"l1"`` key.

    Returns:
        A :class:`ProximalL1` handle; ``remove()`` it or use it in ``with``.

    Raises:
        TypeError: ``optimizer`` is not a ``torch.optim.Optimizer``.
        ValueError: a negative λ₁ (in the call or in a group), or the optimizer already has a
            proximal L1 hook.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([0.05, -0.02, 1.0]))
        >>> opt = torch.optim.SGD([w], lr=0.1)
        >>> with proximal_l1(opt, l1=1.0):  # threshold lr·λ₁ = 0.1
        ...     w.grad = torch.zeros(3)
        ...     opt.step()
        >>> w.data
        tensor([0.0000, 0.0000, 0.9000])
    """
    optimizer = check_optimizer(optimizer, where=_WHERE)
    ProximalL1.refuse_second(optimizer)
    lam = check_real("l1", l1, where=_WHERE, non_negative=True)
    for group in optimizer.param_groups:
        group_value(group, L1_KEY, lam, where=_WHERE)  # a negative group λ₁ fails now
    return ProximalL1(optimizer, lam)


# --- sparsity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SparsityRow:
    """One parameter: its size, exact zeros and near zeros (|θ| <= atol, zeros included)."""

    name: str
    shape: tuple[int, ...]
    numel: int
    zeros: int
    near_zeros: int

    @property
    def zero_fraction(self) -> float:
        """Exact zeros / numel (0 for an empty tensor)."""
        return self.zeros / self.numel if self.numel else 0.0

    @property
    def near_zero_fraction(self) -> float:
        """Near zeros / numel (0 for an empty tensor)."""
        return self.near_zeros / self.numel if self.numel else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The row as plain data, fractions included."""
        return {
            **asdict(self),
            "zero_fraction": self.zero_fraction,
            "near_zero_fraction": self.near_zero_fraction,
        }


@dataclass
class SparsityReport:
    """Exact and near zeros of each parameter, and in total; prints as a table."""

    rows: list[SparsityRow] = field(default_factory=list)
    atol: float = 1e-6

    @property
    def total(self) -> SparsityRow:
        """The sums over every row."""
        return SparsityRow(
            "total",
            (),
            sum(r.numel for r in self.rows),
            sum(r.zeros for r in self.rows),
            sum(r.near_zeros for r in self.rows),
        )

    def __getitem__(self, name: str) -> SparsityRow:
        for row in self.rows:
            if row.name == name:
                return row
        names = ", ".join(r.name for r in self.rows[:5])
        raise KeyError(f"no parameter {name!r} in this report; it has {names}, ...")

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dict per parameter, then the total."""
        return [row.to_dict() for row in (*self.rows, self.total)]

    def __rich__(self) -> FitTable:
        columns = (  # on a narrow terminal the counts give way to the percentages
            Col("parameter", justify="left", key=True),
            Col("shape", justify="left", drop=3),
            Col("values", drop=2),
            Col("zeros", drop=1),
            Col("zero %"),
            Col("near zeros", drop=1, short="near"),
            Col("near zero %", short="near %"),
        )
        rows: list[list[Cell]] = [
            [
                Text(row.name),
                "×".join(map(str, row.shape)) or ("" if row.name == "total" else "scalar"),
                str(row.numel),
                str(row.zeros),
                f"{100 * row.zero_fraction:.2f}",
                str(row.near_zeros),
                f"{100 * row.near_zero_fraction:.2f}",
            ]
            for row in (*self.rows, self.total)
        ]
        return FitTable(columns, rows, title=f"sparsity (near zero: |θ| <= {self.atol:g})")

    def __str__(self) -> str:
        return render_text(self)


def _named(target: Measured) -> list[tuple[str, torch.Tensor]]:
    if isinstance(target, nn.Module):  # names as the user wrote them: no "_orig_mod." or "module."
        return list(unwrap_model(target).named_parameters())
    if isinstance(target, torch.Tensor):
        return [("0", target)]
    if not isinstance(target, Iterable):
        raise TypeError(
            f"sparsity: expected a model, a tensor, tensors or (name, tensor) pairs, got "
            f"{type(target).__name__}."
        )
    named = []
    for i, item in enumerate(target):
        if isinstance(item, torch.Tensor):
            named.append((str(i), item))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], torch.Tensor):
            named.append((str(item[0]), item[1]))
        else:
            raise TypeError(
                f"sparsity: element {i} is a {type(item).__name__}; expected a tensor or a "
                "(name, tensor) pair, as from model.parameters() or model.named_parameters()."
            )
    return named


def _near_zeros(t: torch.Tensor, tol: float) -> torch.Tensor:
    """How many entries of ``t`` have |x| <= tol, exactly, for every dtype (0-d count)."""
    if t.is_complex():  # |z| in float64: complex64's own abs rounds near the bound
        t = t.to(torch.complex128).abs()
    if t.is_floating_point():
        return (t.abs() <= at_most(tol, t.dtype)).sum()
    k = math.floor(tol)  # an integer x has |x| <= tol exactly when |x| <= floor(tol)
    if t.dtype == torch.bool:
        return (t == 0).sum() if k < 1 else torch.tensor(t.numel(), device=t.device)
    info = torch.iinfo(t.dtype)  # bounds in range: -x of the smallest int overflows
    return ((t >= max(-k, info.min)) & (t <= min(k, info.max))).sum()


def sparsity(model_or_params: Measured, *, atol: float = 1e-6) -> SparsityReport:
    """Count the exact zeros and the near zeros (|θ| <= atol) of each parameter.

    One host read for the whole report. Near zeros include the exact zeros. Every dtype is
    counted exactly: floating and complex tensors against ``atol`` itself (not ``atol``
    rounded to their dtype), integer and bool ones as numbers (``True`` is 1).

    Args:
        model_or_params: a model (its named parameters, tied ones once; a ``torch.compile``,
            DDP or FSDP1 wrapper is read through the model inside, so the names carry no
            ``_orig_mod.``/``module.`` prefix), a tensor, tensors or ``(name, tensor)`` pairs.
        atol: the near-zero bound, >= 0.

    Returns:
        A :class:`SparsityReport`: ``rows`` (one per parameter), ``total``, ``to_dicts()``;
        ``print(report)`` draws the table.

    Example:
        >>> import torch
        >>> report = sparsity([("w", torch.tensor([0.0, 1e-8, 0.5, 0.0]))])
        >>> report["w"].zeros, report["w"].near_zeros, report.total.zero_fraction
        (2, 3, 0.5)
    """
    tol = check_real("atol", atol, where="sparsity", non_negative=True)
    named = _named(model_or_params)
    counts: list[list[int]] = []
    if named:
        device = named[0][1].device
        with torch.no_grad():
            stacked = [
                torch.stack([(t == 0).sum(), _near_zeros(t, tol)]).to(device) for _, t in named
            ]
        counts = torch.stack(stacked).tolist()  # the one host read
    rows = [
        SparsityRow(name, tuple(t.shape), t.numel(), zeros, near)
        for (name, t), (zeros, near) in zip(named, counts, strict=True)
    ]
    return SparsityReport(rows, tol)
