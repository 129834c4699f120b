"""diagnose: one forward and one backward pass, every layer measured next to what theory predicts.

The forward pass runs under :func:`stabletrain.graph.trace_with_grad`, which records what
follows every layer (the activation in use, normalizations, residual additions) while the
capture measures each layer's output and activation as they are computed; one backward pass
(``torch.autograd.grad``, so ``.grad`` is untouched) gives the gradients at every layer output
and weight. The theory (:mod:`stabletrain.diagnostics._theory`) then predicts every layer's
output std and gradient std for the init and the activations actually in use (claim I5:
``Var(z) = n_in·Var(w)·E[x²]``, chained through the activations' gains), so each ratio
measured/predicted says where the network leaves theory, and the whole-network gains say
whether the signal and its gradient survive the depth (claims I3, I6, I7, S1).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from stabletrain._checks import check_finite_tensors, check_not_meta, check_positive_int
from stabletrain._wrappers import unwrap_model
from stabletrain.diagnostics._capture import HISTOGRAM_RADIUS, Capture, LayerRecord
from stabletrain.diagnostics._findings import propagation_findings
from stabletrain.diagnostics._layers import (
    LayerConstants,
    LayerSpec,
    add_constants,
    layer_spec,
    read_constants,
)
from stabletrain.diagnostics._loss import compute_loss
from stabletrain.diagnostics._scheme import scheme_of
from stabletrain.diagnostics._theory import Inputs, Predictions, predict
from stabletrain.diagnostics.diagnosis import Diagnosis, LayerStats
from stabletrain.findings import SEVERITIES, Finding
from stabletrain.graph import (
    Graph,
    check_example_input,
    preserved_rng,
    preserved_state,
    snapshot_of,
    tensors_in,
    trace_with_grad,
    transaction,
)
from stabletrain.init import auto_init
from stabletrain.monitoring.metrics import moments

__all__ = ["diagnose"]

_NAN = math.nan
_RESIDUAL = re.compile(r"""residual=["'](zero|scaled|fixup)["']""")


def _moments(values: list[float], n: int) -> tuple[float, float]:
    """(mean, population std) from (Σx, Σx²) over ``n`` elements."""
    if n <= 0 or not values:
        return _NAN, _NAN
    mean = values[0] / n
    return mean, math.sqrt(max(values[1] / n - mean * mean, 0.0))  # NaN stays NaN


def _summed(read: list[list[float]], slots: list[int]) -> list[float]:
    if not slots:
        return []
    width = len(read[slots[0]])
    return [sum(read[s][i] for s in slots) for i in range(width)]


def _activation_name(graph: Graph, layer: str) -> str | None:
    act = graph.layers[layer].activation
    if act is None:
        return None
    return dataclasses.replace(act, via_dropout=False, then=None).describe()


class _Run:
    """One diagnosis: the pass, the read-back and the assembly."""

    def __init__(self, model: nn.Module, example_input: Any, bins: int) -> None:
        self.model = model
        self.example_input = example_input
        self.capture = Capture(bins)
        self.notes: list[str] = []
        self.restarted: set[str] = set()

    def measure(
        self, loss_fn: Callable[..., torch.Tensor] | None, target: Any, seed: int
    ) -> tuple[Graph, str]:
        model, capture = self.model, self.capture
        params = list(dict.fromkeys(p for p in model.parameters() if p.requires_grad))
        with (
            preserved_state(model),
            preserved_rng(model),
            contextlib.ExitStack() as stack,
        ):
            stack.callback(capture.remove_hooks)
            graph, output = trace_with_grad(model, self.example_input, capture)
            with torch.enable_grad():
                loss, text, main = compute_loss(output, loss_fn, target, seed)
            grads: tuple[torch.Tensor | None, ...] = (None,) * len(params)
            if not params:
                self.notes.append("no parameter requires grad: gradients were not measured")
            elif not loss.requires_grad:
                self.notes.append(
                    "the loss does not depend on any parameter that requires grad: gradients "
                    "were not measured"
                )
            else:
                grads = torch.autograd.grad(loss, params, allow_unused=True)
            self.grad_of = {id(p): g for p, g in zip(params, grads, strict=True)}
            ledger = capture.ledger
            self.loss_slot = ledger.add(loss.detach().double())
            first_in = next(
                (t for t in tensors_in(self.example_input) if t.is_floating_point()), None
            )
            self.in_slot = None if first_in is None else ledger.add(torch.stack(moments(first_in)))
            self.in_n = 0 if first_in is None else first_in.numel()
            self.out_slot = None if main is None else ledger.add(torch.stack(moments(main)))
            self.out_n = 0 if main is None else main.numel()
            self.specs: dict[str, LayerSpec] = {}
            self.slots: dict[str, int] = {}
            for name, info in graph.layers.items():
                spec = layer_spec(name, info.module, graph)
                weight = info.module.get_parameter(spec.weight) if spec.weight else None
                grad = self.grad_of.get(id(weight)) if weight is not None else None
                self.specs[name] = spec
                self.slots[name] = add_constants(ledger, spec, info.module, grad)
        return graph, text

    def assemble(self, graph: Graph, loss_text: str) -> Diagnosis:
        read = self.capture.ledger.read()  # the one transfer to the host
        capture = self.capture
        constants = {name: read_constants(read[slot]) for name, slot in self.slots.items()}
        measured_sq = {
            node: read[m.slot][1] / m.n
            for table in (capture.nodes, capture.activations)
            for node, m in table.items()
            if m.n > 0
        }
        grad_sq = {}
        for node, slots in capture.grads.items():
            values, n = _summed(read, slots), capture.numel.get(node, 0) * len(slots)
            if n > 0:
                grad_sq[node] = values[1] / n
        predictions = predict(
            graph.recording,
            Inputs(
                self.specs,
                constants,
                measured_sq,
                grad_sq,
                capture.numel,
                dict(self.model.named_modules(remove_duplicate=False)),
                capture.shapes,
                {
                    node: read[slot][0] * _projection(capture.numel.get(node, 0), groups)
                    for node, (slot, groups) in capture.norm_inv_sq.items()
                },
            ),
        )
        layers = tuple(
            self._layer(graph, name, depth, read, constants[name], predictions)
            for depth, name in enumerate(graph.layers)
        )
        self._note(graph, predictions)
        self.restarted = set(predictions.restarted) | set(predictions.anchored)
        loss_value = read[self.loss_slot][0]
        _, in_std = (
            _moments(read[self.in_slot], self.in_n) if self.in_slot is not None else (_NAN, _NAN)
        )
        if self.in_slot is None and layers:
            in_std = layers[0].out_std
            self.notes.append(
                "the input holds no floating-point tensor (indices): forward gain is relative "
                f"to the first layer's output ({layers[0].name})"
            )
        _, out_std = (
            _moments(read[self.out_slot], self.out_n) if self.out_slot is not None else (_NAN, _NAN)
        )
        grads = [x.grad_out_std for x in layers if math.isfinite(x.grad_out_std)]
        bins = capture.bins
        return Diagnosis(
            model=type(self.model).__name__,
            layers=layers,
            input_shape=tuple(self.example_input.shape)
            if isinstance(self.example_input, torch.Tensor)
            else None,
            loss=loss_text,
            loss_value=loss_value,
            forward_gain=_div(out_std, in_std),
            backward_gain=_div(grads[0], grads[-1]) if grads else _NAN,
            histogram_edges=tuple(
                -HISTOGRAM_RADIUS + 2 * HISTOGRAM_RADIUS * i / bins for i in range(bins + 1)
            ),
            notes=self.notes,
        )

    def _layer(
        self,
        graph: Graph,
        name: str,
        depth: int,
        read: list[list[float]],
        c: LayerConstants,
        predictions: Predictions,
    ) -> LayerStats:
        record = self.capture.layers.get(name, LayerRecord())
        spec = self.specs[name]
        out_mean, out_std = _moments(_summed(read, record.out), record.n)
        _, grad_std = _moments(_summed(read, record.grad), record.grad_n)
        hist = _summed(read, record.hist)
        acts = [
            self.capture.activations[n]
            for n in graph.layers[name].activation_nodes
            if n in self.capture.activations
        ]
        act_values = _summed(read, [m.slot for m in acts])
        act_n = sum(m.n for m in acts)
        act_sample = sum(m.sample for m in acts)
        _, act_std = _moments(act_values, act_n)
        return LayerStats(
            name=name,
            kind=type(graph.layers[name].module).__name__,
            depth=depth,
            activation=_activation_name(graph, name),
            scheme=scheme_of(spec, c),
            fan_in=spec.fans.fan_in if spec.fans is not None else 0,
            weight_std=c.w_std,
            out_mean=out_mean,
            out_std=out_std,
            act_std=act_std,
            zero_fraction=act_values[2] / act_sample if act_sample else _NAN,
            saturated_fraction=(
                act_values[3] / act_sample
                if act_sample and any(m.saturating for m in acts)
                else _NAN
            ),
            grad_out_std=grad_std,
            grad_weight_std=math.sqrt(c.gw_var) if c.gw_var >= 0 else _NAN,
            predicted_out_std=predictions.out_std(name),
            predicted_grad_out_std=predictions.grad_std(name),
            histogram=tuple(h / record.hist_n for h in hist) if record.hist_n else (),
        )

    def _note(self, graph: Graph, predictions: Predictions) -> None:
        other = [n for n, s in self.specs.items() if s.kind == "other"]
        if other:
            self.notes.append(
                f"no prediction for {len(other)} layer(s) theory does not cover here "
                f"(recurrent, attention, custom): {_names(other)}"
            )
        restarted = [n for n in predictions.restarted if n in self.specs]
        if restarted:
            self.notes.append(
                f"forward theory restarts from the measured input at {len(restarted)} layer(s), "
                f"after ops it does not follow (attention, pooling, ...): {_names(restarted)}"
            )
        if predictions.anchored:
            self.notes.append(
                f"backward theory restarts from the measured gradient at "
                f"{len(predictions.anchored)} layer(s), before ops it does not follow: "
                f"{_names(predictions.anchored)}"
            )
        repeated = [n for n, info in graph.layers.items() if info.calls > 1]
        if repeated:
            self.notes.append(
                f"statistics summed over every call of {len(repeated)} layer(s) called more than "
                f"once: {_names(repeated)}"
            )
        if graph.unused:
            self.notes.append(f"never called by the forward pass: {_names(list(graph.unused))}")


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(n or "(root)" for n in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _projection(numel: int, groups: int) -> float:
    """``(n − 2)/n``: a normalization over ``n`` values removes the gradient's components along
    the all-ones vector and the normalized output, 2 of ``n`` dimensions."""
    n = numel / groups if groups else 0
    return (n - 2) / n if n > 2 else 1.0


def _div(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else _NAN


def _fix_options(findings: list[Finding]) -> dict[str, Any]:
    """auto_init options the lint asks for: a residual mode, looks-linear init."""
    options: dict[str, Any] = {}
    for f in findings:
        if f.rule == "deep_post_ln":
            options["residual"] = "zero"
        match = _RESIDUAL.search(f.fix)
        if match and "residual" not in options and f.rule in ("deep_post_ln", "deep_plain_stack"):
            options["residual"] = match.group(1)
        if f.rule == "deep_plain_stack" and "looks_linear=True" in f.fix:
            options["looks_linear"] = True
    return options


def _check(
    model: Any,
    example_input: Any,
    loss_fn: Any,
    fix: Any,
    lint: Any,
    histogram_bins: Any,
    seed: Any,
) -> int:
    where = "diagnose"
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"{where}: expected an nn.Module, got {type(model).__name__}; pass the model itself "
            "(or build it first: diagnose(build(), x))."
        )
    check_not_meta(model, where)
    check_example_input(example_input, where=where)
    check_finite_tensors("example_input", tensors_in(example_input), where=where)
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(
            f"{where}: loss_fn must be callable as loss_fn(output, target), got "
            f"{type(loss_fn).__name__}."
        )
    for name, value in (("fix", fix), ("lint", lint)):
        if not isinstance(value, bool):
            raise TypeError(f"{where}: {name} must be True or False, got {value!r}.")
    bins = check_positive_int("histogram_bins", histogram_bins, where=where)
    if bins < 2:
        raise ValueError(f"{where}: histogram_bins must be >= 2, got {bins}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{where}: seed must be an int, got {type(seed).__name__}.")
    if not any(True for _ in model.parameters()):
        raise ValueError(
            f"{where}: {type(model).__name__} has no parameters, so it has no layer to diagnose."
        )
    return bins


def _diagnose_once(
    model: nn.Module,
    example_input: Any,
    loss_fn: Callable[..., torch.Tensor] | None,
    target: Any,
    lint: bool,
    bins: int,
    seed: int,
) -> Diagnosis:
    run = _Run(model, example_input, bins)
    graph, loss_text = run.measure(loss_fn, target, seed)
    diagnosis = run.assemble(graph, loss_text)
    weight_layers = {n for n, s in run.specs.items() if s.kind == "linear"}
    stream = {b.last_layer for b in graph.residuals if b.last_layer is not None}
    findings = propagation_findings(diagnosis.layers, weight_layers, run.restarted, stream)
    if lint:
        from stabletrain.diagnostics.lint import lint as lint_model

        findings += lint_model(model, example_input, graph=graph)
    diagnosis.findings = sorted(findings, key=lambda f: -SEVERITIES.index(f.severity))
    return diagnosis


def diagnose(
    model: nn.Module,
    example_input: Any,
    *,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    target: Any = None,
    fix: bool = False,
    lint: bool = True,
    histogram_bins: int = 41,
    seed: int = 0,
) -> Diagnosis:
    """Measure signal propagation through ``model`` and compare every layer with theory.

    One forward and one backward pass on ``example_input``, in the model's current train/eval
    mode. For every layer (a module holding parameters: Linear, ConvNd, ConvTransposeNd,
    Embedding, RNN/LSTM/GRU, MultiheadAttention, norms, GPT-2's Conv1D, custom modules), in
    execution order: its output's mean and std and a histogram, the zero and saturated
    fractions and std of the activation that follows it, the std of the gradient at its output
    and of its weight's gradient; next to the prediction of initialization theory for the
    weights and activations in use, ``Var(z) = fan_in·Var(w)·E[x²]`` forward and
    ``Var(g_x) = fan_out·Var(w)·E[f'(z)²]·Var(g_z)`` backward (He et al. 2015, "Delving Deep
    into Rectifiers"; Glorot & Bengio 2010), chained through the layers (see
    :mod:`stabletrain.diagnostics._theory`). Findings name what is wrong and the stabletrain
    call that fixes it: the propagation's own (``propagation_*``) and, with ``lint=True``, the
    architecture lint's (:func:`stabletrain.diagnostics.lint.lint`).

    Parameters, buffers (BatchNorm running statistics), train/eval modes, ``.grad`` and the
    random number generators are as before afterwards (unless ``fix=True``, which changes the
    weights on purpose).

    Args:
        model: the model.
        example_input: a tensor, a tuple of positional inputs or a dict of keyword inputs.
        loss_fn: called as ``loss_fn(output, target)`` (``loss_fn(output)`` when ``target`` is
            None); must return a scalar tensor. Default: cross-entropy against random labels
            when the output is one logits-like tensor (2-D, more than one column), else the mean
            square of the floating-point outputs (MSE against zeros); with ``target``,
            cross-entropy for class indices, else MSE. ``Diagnosis.loss`` says which.
        target: the target for ``loss_fn`` or the default loss.
        fix: apply :func:`stabletrain.auto_init` (with ``residual="zero"`` when the lint finds a
            deep Post-LN stack, ``looks_linear=True`` when it suggests it for a deep plain ReLU
            stack), diagnose again and return the diagnosis after, with the one before in
            ``before`` and the init report in ``init_report``.
        lint: add the architecture lint's findings.
        histogram_bins: bins of every layer's output histogram over ±4 RMS.
        seed: seeds the random labels of the default loss and the draws of ``fix``.

    Returns:
        A :class:`~stabletrain.diagnostics.Diagnosis`; print it for a table.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, an argument has the wrong type, or
            ``loss_fn`` returns no scalar tensor.
        ValueError: the model (or ``loss_fn``) raised on ``example_input``, the model has no
            parameters or has them on the meta device, ``example_input`` holds NaN or ±inf,
            ``histogram_bins < 2``, or no default loss fits the output.

    Example:
        >>> import torch
        >>> from stabletrain.models import mlp
        >>> from stabletrain import init
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = mlp(128, 10, depth=4, width=128, activation="tanh")
        >>> for m in model:
        ...     if isinstance(m, torch.nn.Linear):
        ...         _ = init.xavier_normal_(m.weight); _ = init.zeros_(m.bias)
        >>> d = diagnose(model, torch.randn(256, 128))
        >>> layer = d["linear4"]
        >>> layer.activation, layer.scheme, abs(layer.forward_ratio - 1) < 0.05
        ('tanh', 'xavier', True)
        >>> d.loss
        'cross_entropy(output, random labels of 10 classes, seed 0)'
    """
    model = unwrap_model(model)
    bins = _check(model, example_input, loss_fn, fix, lint, histogram_bins, seed)
    if not fix:
        return _diagnose_once(model, example_input, loss_fn, target, lint, bins, seed)
    with transaction(model, "diagnose(fix=True)") as state:
        restore = snapshot_of(model)
        state.stage = "diagnosing the model before the fix"
        before = _diagnose_once(model, example_input, loss_fn, target, lint, bins, seed)
        options = _fix_options(before.findings)
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        shown = "".join(f", {k}={v!r}" for k, v in options.items())
        state.stage = f"applying stabletrain.auto_init(model, example_input{shown})"
        report = auto_init(model, example_input, generator=generator, **options)
        state.stage = "diagnosing the fixed model"
        after = _diagnose_once(model, example_input, loss_fn, target, lint, bins, seed)
    after.before = before
    after.init_report = report.to_dict()
    worse = _measures_worse(before, after)
    if worse:
        restore()
        before.notes.append(
            f"stabletrain.auto_init(model, example_input{shown}) measured worse ({worse}): "
            "kept the model's own init"
        )
        before.init_report = report.to_dict()
        return before
    after.notes.append(f"fixed with stabletrain.auto_init(model, example_input{shown})")
    return after


# a fix may cost this much of the step-0 cross-entropy before it counts as worse
_LOSS_SLACK = 1.02
_LOGIT_BOUND = 1.05  # auto_init starts logits at ≤ 1.05·ln C (the logits role)


def _propagation_problems(d: Diagnosis) -> list[str]:
    """The propagation findings of warning severity or worse (vanishing, exploding, ...)."""
    return [
        f.rule
        for f in d.findings
        if f.rule.startswith("propagation_") and f.severity in ("warning", "error")
    ]


def _measures_worse(before: Diagnosis, after: Diagnosis) -> str:
    """Why ``after`` measures worse than ``before`` ('' if it does not): a higher step-0
    cross-entropy (beyond 2%), or more propagation problems (vanishing or exploding signals,
    warnings or worse) than before."""
    why = []
    classes = re.search(r" of (\d+) classes", before.loss)
    # a start within auto_init's own bound on ln C is not worse: logits that vanished in a
    # model that does not propagate also start at ln C
    bound = _LOGIT_BOUND * math.log(int(classes.group(1))) if classes else 0.0
    if (
        before.loss.startswith("cross_entropy")
        and math.isfinite(before.loss_value)
        and not after.loss_value <= max(before.loss_value * _LOSS_SLACK, bound)
    ):
        why.append(f"step-0 loss {before.loss_value:.4g} -> {after.loss_value:.4g}")
    was, now = _propagation_problems(before), _propagation_problems(after)
    if len(now) > len(was):
        why.append(f"propagation problems {sorted(set(was))} -> {sorted(set(now))}")
    return "; ".join(why)
