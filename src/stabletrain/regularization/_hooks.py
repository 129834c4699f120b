"""Optimizer step hooks as removable handles: the plumbing of decoupled decay, proximal L1 and
max-norm.

Each technique is a subclass of :class:`OptimizerHook` that overrides up to three methods, all
run under ``torch.no_grad()`` (the optimizer's own ``step`` disables autograd only inside itself,
not around its hooks):

- ``_before_step``: at the start of ``optimizer.step()`` (``register_step_pre_hook``), before
  any gradient of this step may exist;
- ``_before_update``: once per step, when this step's gradients exist and before the optimizer
  updates the parameters. Without a closure that is the start of ``step()`` (``backward`` ran
  before it); with ``optimizer.step(closure)`` the gradients appear only inside ``step``, when
  the optimizer calls the closure, so the closure is wrapped and this runs right after its first
  call returns (optimizers that call it again per step, like LBFGS, run it once);
- ``_after_step``: after ``step()`` returns (``register_step_post_hook``).

One handle per technique and optimizer: registering a second one of the same kind on the same
optimizer raises ``ValueError`` (it would apply the technique twice per step) until the first is
removed. The handle removes its hooks in ``remove()``, which ``with`` calls in ``finally``
(through ``__exit__``), so a hook never outlives its block.

Hooks read the optimizer's ``param_groups`` afresh at every step: ``load_state_dict`` replaces the
group dicts, ``add_param_group`` appends new ones, LR schedulers rewrite ``"lr"``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, ClassVar, TypeVar, overload

import torch
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

from stabletrain._checks import check_real
from stabletrain._wrappers import unwrap_optimizer

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
    """The ``torch.optim.Optimizer`` itself (unwrapped from accelerate/Lightning wrappers: hooks go
    on the optimizer whose ``step`` the wrapper calls), else raise ``TypeError``."""
    optimizer = unwrap_optimizer(optimizer)
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


# The active handle of each kind on each optimizer (weak: an optimizer can still be collected).
_ACTIVE: weakref.WeakKeyDictionary[Optimizer, dict[type[OptimizerHook], OptimizerHook]] = (
    weakref.WeakKeyDictionary()
)


class OptimizerHook:
    """Step hooks on one optimizer, removed by :meth:`remove` or ``with``; one per kind.

    Subclasses set ``where`` (the public function, for messages), override ``_before_step``,
    ``_before_update`` and/or ``_after_step`` (see the module docstring), and call
    :meth:`_register` last in their ``__init__``.

    Raises:
        ValueError: the optimizer already has an active hook of this kind.
    """

    where: ClassVar[str] = "OptimizerHook"

    def __init__(self, optimizer: Optimizer) -> None:
        self.refuse_second(optimizer)
        self.optimizer = optimizer
        self._handles: list[RemovableHandle] = []

    @classmethod
    def refuse_second(cls, optimizer: Optimizer) -> None:
        """Raise ``ValueError`` if ``optimizer`` already has an active hook of this kind (public
        functions call it before their other checks, so this is the error a repeat call gets)."""
        other = _ACTIVE.get(optimizer, {}).get(cls)
        if other is not None and other.active:
            raise ValueError(
                f"{cls.where}: this {type(optimizer).__name__} already has a {cls.__name__} hook "
                f"({other!r}); a second one would apply it twice at every step. Remove the first "
                "handle (handle.remove(), or leave its with block) before registering again."
            )

    def _register(self, *, before: bool, after: bool) -> None:
        """Register the pre-hook (``_before_step`` and ``_before_update``) and/or the post-hook
        (``_after_step``), and make this the optimizer's active hook of its kind."""
        if before:
            self._handles.append(self.optimizer.register_step_pre_hook(self._pre))
        if after:
            self._handles.append(self.optimizer.register_step_post_hook(self._post))
        _ACTIVE.setdefault(self.optimizer, {})[type(self)] = self

    def _pre(
        self, optimizer: Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        with torch.no_grad():
            self._before_step()
        # step(self, closure=None): the closure is args[1] or kwargs["closure"]
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
        if closure is None:
            with torch.no_grad():
                self._before_update()
            return None
        wrapped = self._after_first_call(closure)
        if "closure" in kwargs:
            return args, {**kwargs, "closure": wrapped}
        return (args[0], wrapped, *args[2:]), kwargs

    def _after_first_call(self, closure: Callable[[], Any]) -> Callable[[], Any]:
        """``closure``, then ``_before_update`` after its first call (its gradients exist)."""
        pending = True

        def closure_then_update() -> Any:
            nonlocal pending
            loss = closure()
            if pending:
                pending = False
                with torch.no_grad():
                    self._before_update()
            return loss

        return closure_then_update

    def _post(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        with torch.no_grad():
            self._after_step()

    def _before_step(self) -> None:
        """Run at the start of every ``optimizer.step()``."""

    def _before_update(self) -> None:
        """Run once per step, after this step's gradients exist, before the update."""

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
            active = _ACTIVE.get(self.optimizer, {})
            if active.get(type(self)) is self:
                del active[type(self)]
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
