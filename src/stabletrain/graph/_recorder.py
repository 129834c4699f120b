"""Run a model once and record every torch operation as a dataflow graph of tensor nodes.

Observation happens at run time, not by symbolic tracing, so data-dependent control flow and
Hugging Face models work: a ``TorchFunctionMode`` sees every torch function, method and operator
(``F.relu``, ``torch.tanh``, ``x + y``, ``torch.lstm``), and module hooks mark where each layer's
call begins and ends. Hooks live only inside :func:`record` and are removed in ``finally``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from stabletrain.graph._ops import ACTIVATION_OPS, activation_params, op_name


@dataclass(frozen=True)
class Op:
    """One executed torch operation. Node ids name tensors; parameters are named instead."""

    index: int
    name: str
    inputs: tuple[int, ...]
    params: tuple[str, ...]
    outputs: tuple[int, ...]
    module: str  # the innermost module running it ('' for the root)
    act_params: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Call:
    """One call of a module that holds parameters directly."""

    module: str
    order: int  # execution order among all such calls
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]  # the main output first (an LSTM's sequence, attention's values)
    first_op: int  # ops[first_op:last_op] ran inside the call
    last_op: int


@dataclass
class Recording:
    """Everything one forward pass did."""

    ops: list[Op] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    input_nodes: tuple[int, ...] = ()
    output_nodes: tuple[int, ...] = ()


def _tensors(tree: Any) -> list[torch.Tensor]:
    if isinstance(tree, dict) and type(tree) is not dict:  # e.g. Hugging Face ModelOutput
        tree = dict(tree)
    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor)]


class _Recorder(TorchFunctionMode):
    def __init__(self, named_state: dict[int, str]) -> None:
        super().__init__()
        self.named_state = named_state  # id(parameter or buffer) -> qualified name
        self.nodes: dict[int, int] = {}
        self.keep: list[torch.Tensor] = []  # alive until the end, so ids are not reused
        self.next_node = 0
        self.rec = Recording()
        self.stack: list[str] = [""]

    def node(self, t: torch.Tensor, *, new: bool = False) -> int:
        if new or id(t) not in self.nodes:
            self.nodes[id(t)] = self.next_node
            self.next_node += 1
            self.keep.append(t)
        return self.nodes[id(t)]

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = op_name(func)
        inputs, params = [], []
        for t in _tensors((args, kwargs)):
            if id(t) in self.named_state:
                params.append(self.named_state[id(t)])
            else:
                inputs.append(self.node(t))
        out = func(*args, **kwargs)
        outs = _tensors(out)
        if not outs:
            return out
        act = activation_params(name, args, kwargs) if name in ACTIVATION_OPS else {}
        if name == "gelu" and kwargs.get("approximate", "none") == "tanh":
            name = "gelu_tanh"
        self.rec.ops.append(
            Op(
                index=len(self.rec.ops),
                name=name,
                inputs=tuple(inputs),
                params=tuple(params),
                outputs=tuple(self.node(t, new=True) for t in outs),
                module=self.stack[-1],
                act_params=tuple(sorted(act.items())),
            )
        )
        return out


@contextlib.contextmanager
def _hooks(model: nn.Module, recorder: _Recorder) -> Iterator[None]:
    """Module hooks that keep the module stack and record calls; always removed."""
    open_calls: dict[int, list[tuple[int, tuple[int, ...]]]] = {}

    def pre(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            recorder.stack.append(name)
            if any(True for _ in module.parameters(recurse=False)):
                ins = tuple(
                    recorder.node(t)
                    for t in _tensors((args, kwargs))
                    if id(t) not in recorder.named_state
                )
                open_calls.setdefault(id(module), []).append((len(recorder.rec.ops), ins))

        return hook

    def post(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
            recorder.stack.pop()
            pending = open_calls.get(id(module))
            if pending:
                first, ins = pending.pop()
                outs = tuple(recorder.node(t) for t in _tensors(output))
                recorder.rec.calls.append(
                    Call(name, len(recorder.rec.calls), ins, outs, first, len(recorder.rec.ops))
                )

        return hook

    with contextlib.ExitStack() as stack:
        for name, module in model.named_modules():
            stack.callback(module.register_forward_pre_hook(pre(name), with_kwargs=True).remove)
            stack.callback(
                module.register_forward_hook(post(name), with_kwargs=True, always_call=True).remove
            )
        yield


def check_example_input(example_input: Any, *, where: str) -> None:
    """Raise ``TypeError`` unless ``example_input`` is a tensor, tuple/list or dict."""
    if not isinstance(example_input, torch.Tensor | tuple | list | dict):
        raise TypeError(
            f"{where}: example_input must be a tensor, a tuple of positional inputs or a dict of "
            f"keyword inputs, got {type(example_input).__name__}."
        )


def call_model(model: nn.Module, example_input: Any) -> Any:
    """``model(x)``, ``model(*x)`` for a tuple or list, ``model(**x)`` for a dict."""
    if isinstance(example_input, tuple | list):
        return model(*example_input)
    if isinstance(example_input, dict):
        return model(**example_input)
    return model(example_input)


def record(model: nn.Module, example_input: Any) -> Recording:
    """Run ``model`` once on ``example_input`` (no grad) and return what it did."""
    named_state = {id(t): n for n, t in model.named_parameters(remove_duplicate=False)}
    named_state.update({id(t): n for n, t in model.named_buffers(remove_duplicate=False)})
    # shared parameters: the first name wins, as in model.named_parameters()
    for n, t in model.named_parameters():
        named_state[id(t)] = n
    recorder = _Recorder(named_state)
    recorder.rec.input_nodes = tuple(recorder.node(t) for t in _tensors(example_input))
    with torch.no_grad(), _hooks(model, recorder), recorder:
        output = call_model(model, example_input)
    recorder.rec.output_nodes = tuple(
        recorder.nodes[id(t)] for t in _tensors(output) if id(t) in recorder.nodes
    )
    return recorder.rec
