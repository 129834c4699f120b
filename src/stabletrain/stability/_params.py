"""What the clipping functions are given: the distinct parameters, their names and owners, and
the error raised when a gradient is not finite."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

import torch
from torch import nn

Parameters: TypeAlias = (
    "nn.Module | torch.Tensor | Iterable[torch.Tensor] | Iterable[tuple[str, torch.Tensor]]"
)
NAMED_AT_MOST = 5  # parameters listed in an error message


GRAD_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_grad_dtype(grad: torch.Tensor, name: str, *, where: str) -> None:
    """Raise ``TypeError`` unless ``grad`` is real floating point: a norm of an integer or bool
    gradient, or of a complex one clipped as a whole, is not what a clipping rule is about."""
    if grad.dtype in GRAD_DTYPES:
        return
    fix = (
        "clip its real view instead (torch.view_as_real(p.grad))"
        if grad.dtype.is_complex
        else "gradients of trainable parameters are floating point; cast the tensor with .float()"
    )
    valid = ", ".join(str(d).removeprefix("torch.") for d in GRAD_DTYPES)
    raise TypeError(
        f"{where}: the gradient of {name} has dtype {grad.dtype}; supported dtypes are {valid}: "
        f"{fix}."
    )


class NonFiniteGradError(RuntimeError):
    """A gradient norm is NaN or infinite and ``error_if_nonfinite=True`` was asked for."""


class Params:
    """The distinct parameters given (a tensor given twice counts once); their names, layers
    and owning modules are looked up only when needed (per layer, AGC, error messages)."""

    def __init__(self, params: Parameters, *, where: str) -> None:
        self.where = where
        self.module = params if isinstance(params, nn.Module) else None
        self._names: list[str] | None = None  # given names, for pairs and bare tensors
        self.named = self.module is not None
        self.tensors: list[torch.Tensor] = []
        if isinstance(params, nn.Module):
            self.tensors = [*params.parameters()]
            return
        if isinstance(params, torch.Tensor):
            self.tensors, self._names = [params], ["0"]
            return
        if not isinstance(params, Iterable):
            raise TypeError(
                f"{where}: expected a model, a tensor, tensors or (name, tensor) pairs, got "
                f"{type(params).__name__}; pass model or model.parameters()."
            )
        self._names = []
        seen: set[int] = set()
        for i, item in enumerate(params):
            if isinstance(item, torch.Tensor):
                name, tensor = str(i), item
            elif (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and isinstance(item[1], torch.Tensor)
            ):
                (name, tensor), self.named = item, True
            else:
                raise TypeError(
                    f"{where}: element {i} is a {type(item).__name__}; expected a tensor or a "
                    "(name, tensor) pair, as from model.parameters() or model.named_parameters()."
                )
            if id(tensor) not in seen:
                seen.add(id(tensor))
                self.tensors.append(tensor)
                self._names.append(name)

    def with_grads(self) -> tuple[list[int], list[torch.Tensor]]:
        """Positions of the parameters that have a gradient, and the gradients.

        Raises:
            TypeError: a gradient is not real floating point (integer, bool, complex).
        """
        idx, grads = [], []
        for i, t in enumerate(self.tensors):
            if t.grad is not None:
                if t.grad.dtype not in GRAD_DTYPES:  # names only on the error path
                    check_grad_dtype(t.grad, self.names([i])[0], where=self.where)
                idx.append(i)
                grads.append(t.grad)
        return idx, grads

    def info(self) -> list[tuple[str, str, nn.Module | None]]:
        """(qualified name, owning layer, owning module) of each parameter.

        A model's parameters are owned by the module that registers them (the root is ``""``);
        named pairs by their name's prefix; bare tensors are named by position.
        """
        if self.module is None:
            names = self._names or []
            return [(n, n.rpartition(".")[0] if self.named else n, None) for n in names]
        owners: dict[int, tuple[str, str, nn.Module | None]] = {}
        for layer, module in self.module.named_modules():
            for pname, p in module.named_parameters(recurse=False):
                owners.setdefault(id(p), (f"{layer}.{pname}" if layer else pname, layer, module))
        return [owners[id(t)] for t in self.tensors]

    def names(self, idx: Sequence[int]) -> list[str]:
        info = self.info()
        return [info[i][0] for i in idx]


def raise_nonfinite(where: str, what: str, names: Sequence[str]) -> None:
    located = f" in {', '.join(names)}" if names else " (in a norm that overflowed float32)"
    raise NonFiniteGradError(
        f"{where}: the gradient {what} is not finite{located}. The gradients were left "
        "unchanged. Find the first non-finite value with torch.autograd.set_detect_anomaly(True); "
        "lower the learning rate or use mixed precision with a GradScaler; or let "
        "stabletrain.StepGuard skip such steps."
    )
