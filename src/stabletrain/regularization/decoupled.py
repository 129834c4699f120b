"""Decoupled weight decay for any ``torch.optim`` optimizer: AdamW's rule, for Adam, SGD, RMSprop...

Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization": with an adaptive optimizer,
an L2 term in the loss (or the optimizer's coupled ``weight_decay``) is divided by √v̂ like the
rest of the gradient, so weights with large gradients are barely regularized (claim R2). Decay
the weights directly instead, once the step's gradients exist and before the optimizer's update,
exactly as ``torch.optim.AdamW``:

    g ← ∇L(θ_t)        θ ← θ_t · (1 − η_t·λ)        θ ← optimizer update of θ with g (no L2)

With ``optimizer.step(closure)`` the gradients are computed inside ``step``, so the decay runs
right after the closure returns (the hook wraps it), never before: decaying then would skip every
parameter whose gradient is still None (``zero_grad()`` sets them so).

Why a hook and not a wrapper class: ``register_step_pre_hook`` keeps the optimizer the user
built (its type, ``param_groups``, ``state_dict``, LR schedulers, ``GradScaler.step`` and
:class:`~stabletrain.stability.StepGuard` all see the same object; a skipped step decays
nothing, as with AdamW), and the hook goes away with :meth:`DecoupledWeightDecay.remove` or at
the end of a ``with`` block.

Why λ stays in ``group["weight_decay"]``: each group's λ is the one it was given, e.g. by
:func:`~stabletrain.regularization.param_groups` (0 for biases and norms). At the start of each
step the hook sets it aside (``group["weight_decay"] = 0``) and decays the parameters with it
once the gradients exist, so the inner optimizer takes no L2 step; just after, it puts it
back. Between steps the groups are exactly as built: ``state_dict()`` saves the true λ,
printing the optimizer shows it, and a weight-decay schedule that rewrites
``group["weight_decay"]`` is followed at the next step. (If a step raises, λ stays set aside
until the next step or ``remove()``, which put it back.)
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch.optim import Optimizer

from stabletrain._checks import check_choice, check_real
from stabletrain.regularization._hooks import (
    OptimizerHook,
    Scalar,
    by_device_and_dtype,
    check_optimizer,
    group_lr,
    group_value,
    on_device,
)

__all__ = ["DECAY_SCALINGS", "DecayScaling", "DecoupledWeightDecay", "decouple_weight_decay"]

DecayScaling = Literal["lr", "schedule"]
DECAY_SCALINGS: tuple[DecayScaling, ...] = ("lr", "schedule")
_WHERE = "decouple_weight_decay"
_MISSING = object()
# torch optimizers whose own weight_decay is already decoupled (θ ← θ·(1 − lr·λ) in their step)
_ALREADY_DECOUPLED = tuple(
    cls
    for cls in (getattr(torch.optim, name, None) for name in ("AdamW", "Adafactor", "Muon"))
    if isinstance(cls, type)
)


def _refuse_double_decay(optimizer: Optimizer) -> None:
    name = type(optimizer).__name__
    if isinstance(optimizer, _ALREADY_DECOUPLED):
        raise ValueError(
            f"{_WHERE}: {name} already decays its weights decoupled (θ ← θ·(1 − lr·λ)); adding "
            "decoupled decay would decay twice. Use it as it is, or build torch.optim.Adam (or "
            "another optimizer with coupled decay) and decouple that."
        )
    if any(group.get("decoupled_weight_decay") is True for group in optimizer.param_groups):
        if optimizer.defaults.get("decoupled_weight_decay") is not True:
            # torch fills each group dict it is given with its defaults, in place: dicts first
            # given to AdamW carry decoupled_weight_decay=True into the next optimizer.
            raise ValueError(
                f"{_WHERE}: this {name}'s param groups hold decoupled_weight_decay=True though "
                f"the {name} was built without it: the same group dicts were passed to "
                "torch.optim.AdamW (or another optimizer with decoupled decay) before, and torch "
                "writes its options into the dicts it is given. Build fresh groups for each "
                "optimizer (call st.param_groups(model, ...) again), then decouple."
            )
        raise ValueError(
            f"{_WHERE}: this {name} was built with decoupled_weight_decay=True, so its decay is "
            "already decoupled; adding decoupled decay would decay twice. Build it with "
            "decoupled_weight_decay=False, or do not call decouple_weight_decay."
        )


class DecoupledWeightDecay(OptimizerHook):
    """The handle of :func:`decouple_weight_decay`: ``remove()`` it (or leave its ``with``
    block) and the optimizer is back to its own, coupled, weight decay."""

    where = _WHERE

    def __init__(
        self, optimizer: Optimizer, weight_decay: float | None, scaling: DecayScaling
    ) -> None:
        super().__init__(optimizer)
        self.scaling = scaling
        self._held: dict[int, Scalar] = {}  # group index -> λ set aside during a step
        self._shrinks: list[tuple[int, Scalar]] = []  # group index -> 1 − η·λ, for this step
        # the groups' own entries, put back on remove() when the call's λ replaced them
        self._replaced: list[object] = []
        if weight_decay is not None:
            for group in optimizer.param_groups:
                self._replaced.append(group.get("weight_decay", _MISSING))
                group["weight_decay"] = weight_decay
        self._register(before=True, after=True)

    def _restore(self) -> None:
        """Put back the λ set aside (after the step, or at the next one if a step raised)."""
        groups = self.optimizer.param_groups
        for i, lam in self._held.items():
            if i < len(groups):
                groups[i]["weight_decay"] = lam
        self._held.clear()

    def _multiplier(self, group: dict[str, Any]) -> Scalar:
        """η_t (``"lr"``) or η_t/η_0 (``"schedule"``), with η_0 the scheduler's initial lr."""
        lr = group_lr(group, where=_WHERE)
        if self.scaling == "lr":
            return lr
        initial = group.get("initial_lr")
        if initial is None or (not isinstance(initial, torch.Tensor) and initial == 0):
            return 1.0  # no schedule: decay by λ per step
        ratio: Scalar = lr / initial
        return ratio

    def _before_step(self) -> None:
        # set λ aside now, whatever the closure does: the inner step must never see it
        self._restore()
        self._shrinks = []
        for i, group in enumerate(self.optimizer.param_groups):
            lam = group_value(group, "weight_decay", 0.0, where=_WHERE)
            if not isinstance(lam, torch.Tensor) and lam == 0:
                continue
            self._held[i] = group["weight_decay"]
            group["weight_decay"] = 0.0
            # AdamW's expression, so results match
            self._shrinks.append((i, 1 - self._multiplier(group) * lam))

    def _before_update(self) -> None:
        # the parameters that have a gradient now are those the update moves (AdamW's rule)
        groups = self.optimizer.param_groups
        for i, shrink in self._shrinks:
            for params in by_device_and_dtype(groups[i]):
                torch._foreach_mul_(params, on_device(shrink, params))
        self._shrinks = []

    def _after_step(self) -> None:
        self._restore()

    def _on_remove(self) -> None:
        self._restore()
        for group, original in zip(self.optimizer.param_groups, self._replaced, strict=False):
            if original is _MISSING:
                group.pop("weight_decay", None)
            else:
                group["weight_decay"] = original


def decouple_weight_decay(
    optimizer: Optimizer,
    weight_decay: float | None = None,
    *,
    scaling: DecayScaling = "lr",
) -> DecoupledWeightDecay:
    """Make ``optimizer``'s weight decay decoupled (AdamW-style) with a removable step hook.

    At every step, once its gradients exist (after ``backward``, or after the closure of
    ``optimizer.step(closure)`` returns) and before the update, for each parameter group g with
    λ_g = ``g["weight_decay"]`` > 0 and each of its parameters that has a gradient (AdamW skips
    the others too):

        θ ← θ · (1 − η_t·λ_g)                       (``scaling="lr"``, torch's AdamW)
        θ ← θ · (1 − (η_t / η_0)·λ_g)               (``scaling="schedule"``)

    then the optimizer steps with λ_g set aside, so it adds no coupled L2 gradient (Loshchilov &
    Hutter 2019, "Decoupled Weight Decay Regularization", Algorithm 2). η_t is the group's
    ``"lr"`` at step time, so LR schedulers are followed; a tensor lr is used as a tensor (no
    host sync). ``"schedule"`` is the paper's form, in which η_t/η_0 is only the schedule's
    multiplier (η_0: the group's ``"initial_lr"``, set by every ``torch.optim.lr_scheduler``;
    1 without one): λ then is the shrink per step, independent of the base lr.

    ``Adam(param_groups(model, λ))`` + this hook takes the same steps as ``AdamW`` with the same
    groups; groups with λ = 0 (biases, norms) are untouched. One fused ``torch._foreach_mul_``
    per group and (device, dtype); the λ read from the groups costs no sync.

    Args:
        optimizer: any ``torch.optim.Optimizer`` whose decay is coupled (SGD, Adam, RMSprop,
            Adagrad, NAdam, ...). AdamW, Adafactor, Muon and optimizers built with
            ``decoupled_weight_decay=True`` already decouple and are refused.
        weight_decay: None (default): each group's own ``"weight_decay"``. A number λ >= 0: set
            the ``"weight_decay"`` of every group present now to λ (only allowed when all have
            0, so that no-decay groups are never overwritten by mistake; ``remove()`` puts the
            old entries back). Groups added later decay with their own value.
        scaling: ``"lr"`` (default) or ``"schedule"``, see above.

    Returns:
        A :class:`DecoupledWeightDecay` handle; ``remove()`` it or use it in ``with``.

    Raises:
        TypeError: ``optimizer`` is not a ``torch.optim.Optimizer``.
        ValueError: an optimizer that already decouples or already has this hook, a negative
            λ, a ``weight_decay`` given while groups set their own, an unknown ``scaling``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Linear(3, 1)
        >>> opt = torch.optim.Adam(model.parameters(), lr=0.1, weight_decay=0.5)
        >>> handle = decouple_weight_decay(opt)  # now the steps of AdamW(lr=0.1, weight_decay=0.5)
        >>> model(torch.ones(2, 3)).sum().backward()
        >>> before = model.weight.detach().clone()
        >>> opt.step()
        >>> expected = before * (1 - 0.1 * 0.5) - 0.1 * torch.sign(model.weight.grad)
        >>> torch.allclose(model.weight, expected, atol=1e-6)  # first Adam step: lr·sign(g)
        True
        >>> opt.param_groups[0]["weight_decay"]  # unchanged between steps
        0.5
        >>> handle.remove()
    """
    optimizer = check_optimizer(optimizer, where=_WHERE)
    DecoupledWeightDecay.refuse_second(optimizer)
    check_choice("scaling", scaling, DECAY_SCALINGS, where=_WHERE)
    _refuse_double_decay(optimizer)
    own = [group_value(g, "weight_decay", 0.0, where=_WHERE) for g in optimizer.param_groups]
    if weight_decay is not None:
        weight_decay = check_real("weight_decay", weight_decay, where=_WHERE, non_negative=True)
        set_by_groups = [v for v in own if isinstance(v, torch.Tensor) or v != 0]
        if set_by_groups:
            raise ValueError(
                f"{_WHERE}: weight_decay={weight_decay} was given, but the optimizer's groups set "
                f"their own (e.g. {set_by_groups[0]}). Pass weight_decay=None to decouple the "
                "groups' values, or build the optimizer without weight_decay."
            )
    return DecoupledWeightDecay(optimizer, weight_decay, scaling)
