"""Optimizer step hooks as removable handles: the plumbing of decoupled decay, proximal L1 and
max-norm.

Each technique is a subclass of :class:`OptimizerHook` that overrides ``_before_step`` (run by
``optimizer.register_step_pre_hook``) and/or ``_after_step`` (``register_step_post_hook``).
Both run under ``torch.no_grad()``: the optimizer's own ``step`` disables autograd only inside
itself, not around its hooks. The handle removes its hooks in ``remove()``, which ``with`` calls
in ``finally`` (through ``__exit__``), so a hook never outlives its block.

Hooks read the optimizer's ``param_groups`` afresh at every step: ``load_state_dict`` replaces the
group dicts, ``add_param_group`` appends new ones, LR schedulers rewrite ``"lr"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, TypeVar, overload

import torch
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

from stabletrain._checks import check_real

__all__ = [
    "OptimizerHook",
    "by_device_and_dtype",
    "check_optimizer",
    "group_lr",
    "group_value",
    "on_device",
]

H = TypeVar("H", bound="OptimizerHook")
Scalar = float | torch.Tensor
Bucket = tuple[torch.device, torch.dtype]


def check_optimizer(optimizer: Any, *, where: str) -> Optimizer:
    """Return ``optimizer`` if it is a ``torch.optim.Optimizer``, else raise ``TypeError``."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"{where}: expected a torch.optim.Optimizer (e.g. torch.optim.Adam(...)), got "
            f"{type(optimizer).__name__}; pass the optimizer itself, not a model, its parameters "
            "or a wrapper."
        )
    return optimizer


def group_lr(group: Mapping[str, Any], *, where: str) -> Scalar:
    """The group's learning rate now (a float, or a tensor for tensor-lr optimizers)."""
    if "lr" not in group:
        raise ValueError(
            f"{where}: a parameter group has no 'lr' key; this optimizer has no learning rate "
            "to scale the step by. Use an optimizer with an lr (SGD, Adam, ...)."
        )
    lr = group["lr"]
    if isinstance(lr, torch.Tensor):
        return lr
    return check_real("lr", lr, where=where, non_negative=True)


def group_value(group: Mapping[str, Any], key: str, default: Scalar, *, where: str) -> Scalar:
    """``group[key]`` (default ``default``): a non-negative float, or a tensor left unread."""
    value = group.get(key, default)
    if isinstance(value, torch.Tensor):
        return value  # reading it would be a host sync at every step
    return check_real(f"parameter group {key!r}", value, where=where, non_negative=True)


def by_device_and_dtype(group: Mapping[str, Any]) -> list[list[torch.Tensor]]:
    """The group's parameters that have a gradient (those the step updates, as AdamW skips the
    rest), bucketed by (device, dtype) so each bucket takes one fused ``torch._foreach_*`` call."""
    params = [p for p in group["params"] if p.grad is not None]
    if not params:
        return []
    device, dtype = params[0].device, params[0].dtype
    if all(p.device == device and p.dtype == dtype for p in params):
        return [params]  # the usual case, in half the time of building the dict below
    buckets: dict[Bucket, list[torch.Tensor]] = {}
    for p in params:
        buckets.setdefault((p.device, p.dtype), []).append(p)
    return list(buckets.values())


@overload
def on_device(value: torch.Tensor, tensors: list[torch.Tensor]) -> torch.Tensor: ...


@overload
def on_device(value: float, tensors: list[torch.Tensor]) -> float: ...


def on_device(value: Scalar, tensors: list[torch.Tensor]) -> Scalar:
    """``value`` as a 0-d tensor on the bucket's device if it is a tensor (a copy, not a sync)."""
    if isinstance(value, torch.Tensor):
        return value.reshape(()).to(tensors[0].device, non_blocking=True)
    return value


class OptimizerHook:
    """A step pre- and/or post-hook on one optimizer, removed by :meth:`remove` or ``with``.

    Subclasses override ``_before_step`` and/or ``_after_step`` and call :meth:`_register`.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self._handles: list[RemovableHandle] = []

    def _register(self, *, before: bool, after: bool) -> None:
        if before:
            self._handles.append(self.optimizer.register_step_pre_hook(self._pre))
        if after:
            self._handles.append(self.optimizer.register_step_post_hook(self._post))

    def _pre(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        with torch.no_grad():
            self._before_step()

    def _post(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        with torch.no_grad():
            self._after_step()

    def _before_step(self) -> None:
        """Run before every ``optimizer.step()``."""

    def _after_step(self) -> None:
        """Run after every ``optimizer.step()``."""

    def _on_remove(self) -> None:
        """Undo what registering changed in the optimizer (nothing by default)."""

    @property
    def active(self) -> bool:
        """Whether the hooks are still registered."""
        return bool(self._handles)

    def remove(self) -> None:
        """Remove the hooks; the optimizer behaves as before registration. Idempotent."""
        if not self._handles:
            return
        try:
            for handle in self._handles:
                handle.remove()
        finally:
            self._handles.clear()
            self._on_remove()

    def __enter__(self: H) -> H:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"{type(self).__name__}({type(self.optimizer).__name__}, {state})"
