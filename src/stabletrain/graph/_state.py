"""Leave a model exactly as it was: buffers (BatchNorm running stats) and train/eval modes
(:func:`preserved_state`), or everything, if an operation on it fails (:func:`transaction`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Restore every buffer's values and every module's ``training`` flag on exit.

    A forward pass in train mode updates BatchNorm's running statistics and its
    ``num_batches_tracked``; measuring a model must not.
    """
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for module, training in modes:
            module.training = training


def preserved_rng(model: nn.Module) -> contextlib.AbstractContextManager[None]:
    """Restore the CPU random state and that of every CUDA device holding ``model``'s
    parameters on exit (``torch.random.fork_rng``): a measurement that runs dropout draws
    from the generators the training loop draws from, and must leave them as they were."""
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    return torch.random.fork_rng(devices=devices)


SnapshotDevice = Literal["device", "cpu"]


@dataclass
class Transaction:
    """What a model operation is doing now, named in the error if it fails."""

    where: str
    stage: str = "starting"


def snapshot_of(model: nn.Module, device: SnapshotDevice = "device") -> Callable[[], None]:
    """Copy ``model``'s parameters, buffers, gradients and modes; the returned function puts
    them back bit for bit (as often as called).

    Example:
        >>> model = nn.Linear(2, 2)
        >>> restore = snapshot_of(model)
        >>> _ = model.weight.data.zero_()
        >>> restore()
        >>> bool(model.weight.abs().sum() > 0)
        True
    """

    def copy(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to("cpu", copy=True) if device == "cpu" else t.detach().clone()

    saved = [(p, copy(p), None if p.grad is None else copy(p.grad)) for p in model.parameters()]
    buffers = [(b, copy(b)) for b in model.buffers()]
    modes = [(m, m.training) for m in model.modules()]

    def restore() -> None:
        with torch.no_grad():
            for p, value, grad in saved:
                p.copy_(value)
                p.grad = None if grad is None else grad.to(p.device, copy=True)
            for buffer, value in buffers:
                buffer.copy_(value)
        for module, training in modes:
            module.training = training

    return restore


@contextlib.contextmanager
def transaction(
    model: nn.Module, where: str, *, snapshot: SnapshotDevice = "device"
) -> Iterator[Transaction]:
    """Undo everything done to ``model`` if the block raises: parameters, buffers, gradients
    and ``training`` flags are restored bit for bit, then the error propagates with a note
    naming the stage that failed (``Transaction.stage``).

    The snapshot costs one copy of the parameters, buffers and gradients, on their own device
    (``snapshot="device"``) or in host memory (``snapshot="cpu"``, for models that fill the
    accelerator).

    Example:
        >>> model = nn.Linear(2, 2)
        >>> before = model.weight.clone()
        >>> try:
        ...     with transaction(model, "demo") as t:
        ...         t.stage = "zeroing"
        ...         _ = model.weight.data.zero_()
        ...         raise RuntimeError("boom")
        ... except RuntimeError:
        ...     pass
        >>> torch.equal(model.weight, before)
        True
    """
    if snapshot not in ("device", "cpu"):
        raise ValueError(
            f"{where}: unknown snapshot {snapshot!r}; valid options are 'device', 'cpu'."
        )

    restore = snapshot_of(model, snapshot)
    state = Transaction(where)
    try:
        yield state
    except BaseException as err:
        restore()
        note = (
            f"{where}: failed while {state.stage}; the model's parameters, buffers, gradients "
            "and train/eval modes were restored as they were."
        )
        if hasattr(err, "add_note"):
            err.add_note(note)
        raise
