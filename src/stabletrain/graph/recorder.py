"""Run a model once and record every torch operation as a dataflow graph of tensor nodes.

Observation happens at run time, not by symbolic tracing, so data-dependent control flow and
Hugging Face models work: a ``TorchFunctionMode`` sees every torch function, method and operator
(``F.relu``, ``torch.tanh``, ``x + y``, ``torch.lstm``), and module hooks mark where each layer's
call begins and ends. Hooks live only inside :func:`record` and are removed in ``finally``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.modules.module import (
    _global_forward_hooks_with_kwargs,
    register_module_forward_hook,
    register_module_forward_pre_hook,
)
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves
from torch.utils.hooks import RemovableHandle

from stabletrain.graph._modules import module_activation
from stabletrain.graph.ops import (
    ACTIVATION_OPS,
    VALUE_PRESERVING_OPS,
    activation_params,
    op_name,
)


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


class Observer(Protocol):
    """Sees every recorded op and layer call as it happens, with the tensors themselves.

    Both methods run with torch function handling disabled (what they compute is not
    recorded), right after the op or the call, so they see values before any later in-place
    operation changes them (``nn.ReLU(inplace=True)`` after a layer).
    """

    def on_op(
        self, op: Op, inputs: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor]
    ) -> None:
        """``op`` just ran on ``inputs`` (its non-parameter tensors) and returned ``outputs``."""

    def on_call(
        self,
        call: Call,
        module: nn.Module,
        inputs: Sequence[torch.Tensor],
        outputs: Sequence[torch.Tensor],
    ) -> None:
        """``module``, which holds parameters, just returned; tensors in ``call``'s node order."""


@dataclass
class Recording:
    """Everything one forward pass did."""

    ops: list[Op] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    input_nodes: tuple[int, ...] = ()
    output_nodes: tuple[int, ...] = ()


# Argument types that hold no tensor: skipped without asking pytree (most ops' extra arguments).
_LEAF_TYPES = frozenset({bool, int, float, complex, str, torch.dtype, torch.device, torch.Size})


def _remove_global_hook(handle: RemovableHandle) -> None:
    """Remove a global forward hook registered ``with_kwargs=True``, entirely: torch's handle
    leaves its id in the with-kwargs registry, after which every ``torch.compile(module)`` call
    warns that global hooks exist."""
    handle.remove()
    _global_forward_hooks_with_kwargs.pop(handle.id, None)


def tensors_in(tree: Any) -> list[torch.Tensor]:
    """The tensors in a nest of tuples, lists and dicts (any other container via pytree), in
    order; scalars, strings and None hold none.

    Example:
        >>> a, b = torch.zeros(1), torch.ones(2)
        >>> [t.shape[0] for t in tensors_in({"x": (a, 3, None), "y": [b, "s"]})]
        [1, 2]
    """
    if isinstance(tree, torch.Tensor):
        return [tree]
    if tree is None or type(tree) in _LEAF_TYPES:
        return []
    if type(tree) in (tuple, list):
        return [t for item in tree for t in tensors_in(item)]
    if type(tree) is dict:
        return [t for item in tree.values() for t in tensors_in(item)]
    if isinstance(tree, dict):  # e.g. Hugging Face ModelOutput
        return tensors_in(dict(tree))
    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor)]


_OP_NAMES: dict[Callable[..., Any], str] = {}
_RAISED: Any = object()  # the output a post-hook gets when its module raised


class _Recorder(TorchFunctionMode):
    def __init__(self, named_state: dict[int, str], observer: Observer | None = None) -> None:
        super().__init__()
        self.observer = observer
        self.named_state = named_state  # id(parameter or buffer) -> qualified name
        self.nodes: dict[int, int] = {}
        self.keep: list[torch.Tensor] = []  # alive until the end, so ids are not reused
        self.next_node = 0
        self.rec = Recording()
        self.stack: list[str] = [""]
        self.opaque = 0  # > 0 inside an activation module recorded as one op

    def add_op(
        self,
        name: str,
        inputs: Sequence[torch.Tensor],
        params: Sequence[str],
        outputs: Sequence[torch.Tensor],
        module: str,
        act_params: tuple[tuple[str, float], ...] = (),
    ) -> Op:
        """Record one op on (non-parameter) ``inputs``; ``outputs`` become new nodes."""
        op = Op(
            index=len(self.rec.ops),
            name=name,
            inputs=tuple(self.node(t) for t in inputs),
            params=tuple(params),
            outputs=tuple(self.node(t, new=True) for t in outputs),
            module=module,
            act_params=act_params,
        )
        self.rec.ops.append(op)
        return op

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
        if self.opaque:
            return func(*args, **kwargs)
        name = _OP_NAMES.get(func)
        if name is None:
            name = _OP_NAMES.setdefault(func, op_name(func))
        params, tensors = [], []
        for t in tensors_in((args, kwargs)):
            if id(t) in self.named_state:
                params.append(self.named_state[id(t)])
            else:
                self.node(t)
                tensors.append(t)
        out = func(*args, **kwargs)
        outs = tensors_in(out)
        if not outs or (
            name in VALUE_PRESERVING_OPS and all(any(o is t for t in tensors) for o in outs)
        ):
            return out  # nothing computed (``x.to(x.dtype)`` returns x): x keeps its node
        act = activation_params(name, args, kwargs) if name in ACTIVATION_OPS else {}
        if name == "scaled_dot_product_attention":
            act = _attention_params(args, kwargs)
        if name == "gelu" and kwargs.get("approximate", "none") == "tanh":
            name = "gelu_tanh"
        op = self.add_op(name, tensors, params, outs, self.stack[-1], tuple(sorted(act.items())))
        if self.observer is not None:  # the mode is off inside __torch_function__
            self.observer.on_op(op, tensors, outs)
        return out


def _attention_params(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, float]:
    """SDPA's score scale (``None``: its default 1/sqrt(head_dim)) and the query's head dim."""
    query = args[0] if args else kwargs.get("query")
    scale = kwargs.get("scale", args[6] if len(args) > 6 else None)
    head_dim = query.shape[-1] if isinstance(query, torch.Tensor) and query.dim() else 0
    found = {"head_dim": float(head_dim)}
    if isinstance(scale, int | float):
        found["scale"] = float(scale)
    return found


@contextlib.contextmanager
def _hooks(model: nn.Module, recorder: _Recorder) -> Iterator[None]:
    """Keep the module stack and record the calls of modules that hold parameters.

    Two global module hooks (not two per module: registering thousands of hooks costs more than
    the forward pass of a small model); modules outside ``model`` are ignored. Always removed.
    A module that raises still gets its post-hook call (``always_call``), with the output
    :data:`_RAISED`: the stack and an activation module's opacity are unwound there, and no call
    is recorded, so a model that catches the error goes on being recorded.
    """
    names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
    holders = {
        id(m) for m in model.modules() if next(m.parameters(recurse=False), None) is not None
    }
    activations = {id(m): a for m in model.modules() if (a := module_activation(m)) is not None}
    open_calls: dict[int, list[int]] = {}

    def pre(module: nn.Module, args: tuple[Any, ...]) -> None:
        key = id(module)
        name = names.get(key)
        if name is None:
            return
        recorder.stack.append(name)
        if key in activations:
            if not recorder.opaque:  # the input's node, before the module can change it in place
                for t in tensors_in(args):
                    recorder.node(t)
            recorder.opaque += 1
        if key in holders:
            open_calls.setdefault(key, []).append(len(recorder.rec.ops))

    def post(module: nn.Module, args: Any, kwargs: Any, output: Any = _RAISED) -> None:
        key = id(module)
        name = names.get(key)
        if name is None:
            return
        while len(recorder.stack) > 1 and recorder.stack.pop() != name:
            pass  # a submodule raised and the model caught it: its post-hook never ran
        if key in activations:
            recorder.opaque -= 1
            if not recorder.opaque and output is not _RAISED:
                _activation_op(recorder, activations[key], name, args, kwargs, output)
        if output is _RAISED:
            if open_calls.get(key):
                open_calls[key].pop()
            return
        pending = open_calls.get(key)
        if pending:
            first = pending.pop()
            state = recorder.named_state
            in_tensors = [t for t in tensors_in((args, kwargs)) if id(t) not in state]
            out_tensors = tensors_in(output)
            ins = tuple(recorder.node(t) for t in in_tensors)
            outs = tuple(recorder.node(t) for t in out_tensors)
            call = Call(name, len(recorder.rec.calls), ins, outs, first, len(recorder.rec.ops))
            recorder.rec.calls.append(call)
            if recorder.observer is not None:
                with torch._C.DisableTorchFunction():
                    recorder.observer.on_call(call, module, in_tensors, out_tensors)

    with contextlib.ExitStack() as stack:
        stack.callback(register_module_forward_pre_hook(pre).remove)
        handle = register_module_forward_hook(post, with_kwargs=True, always_call=True)
        stack.callback(_remove_global_hook, handle)
        yield


def _activation_op(
    recorder: _Recorder, activation: str, module: str, args: Any, kwargs: Any, output: Any
) -> None:
    """Record an activation module's whole call as one op named ``activation``."""
    state = recorder.named_state
    ins = [t for t in tensors_in((args, kwargs)) if id(t) not in state]
    outs = tensors_in(output)
    if not outs:
        return
    op = recorder.add_op(activation, ins, (), outs, module)
    if recorder.observer is not None:
        with torch._C.DisableTorchFunction():
            recorder.observer.on_op(op, ins, outs)


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
    return run(model, example_input, grad=False)[0]


def run(
    model: nn.Module, example_input: Any, *, grad: bool, observer: Observer | None = None
) -> tuple[Recording, Any]:
    """Run ``model`` once on ``example_input``, gradients enabled or not, reporting every op
    and layer call to ``observer``; returns what it did and the model's output."""
    named_state = {id(t): n for n, t in model.named_parameters(remove_duplicate=False)}
    named_state.update({id(t): n for n, t in model.named_buffers(remove_duplicate=False)})
    # shared parameters: the first name wins, as in model.named_parameters()
    for n, t in model.named_parameters():
        named_state[id(t)] = n
    recorder = _Recorder(named_state, observer)
    recorder.rec.input_nodes = tuple(recorder.node(t) for t in tensors_in(example_input))
    with torch.set_grad_enabled(grad), _hooks(model, recorder), recorder:
        output = call_model(model, example_input)
    recorder.rec.output_nodes = tuple(
        recorder.nodes[id(t)] for t in tensors_in(output) if id(t) in recorder.nodes
    )
    return recorder.rec, output
