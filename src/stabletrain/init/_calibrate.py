"""Data-dependent rescaling of layers so their outputs reach a target std (LSUV-style).

Mishkin & Matas (2016), "All you need is a good init": rescale each layer's weights until its
output std on a batch is the target. Here the rescaling happens *during* one forward pass: a hook
on each fitted layer measures the std of its output, divides the weights (and bias) by it and
returns the output divided by the same factor, so every later layer already sees the corrected
signal. For layers that are homogeneous in their parameters (Linear, ConvNd: ``y = Wx + b``) that
is exact, so one pass fits every layer; further passes (with the same random state, so dropout
draws the same masks) pool the statistics of layers called more than once and check ``tol``.
Measurements are made on the output tensor the layer returns, before any in-place operation can
modify it, so in-place ReLU is harmless.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from stabletrain.graph import call_model, preserved_state


@dataclass
class Fitted:
    """The outcome for one layer: the std before, the total scale applied and the std after."""

    std_before: float
    scale: float
    std_after: float


def _main_output(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


# the largest correction calibration applies: beyond it the example batch, not the init, is off
MAX_CORRECTION = 1e6


def _rescale_(params: Sequence[nn.Parameter], factor: float) -> None:
    with torch.no_grad():
        for p in params:
            p.mul_(factor)


def _check_correction(name: str, params: Sequence[nn.Parameter], std: float, factor: float) -> None:
    """Refuse a correction that only a badly scaled batch can ask for, or that overflows."""
    if not math.isfinite(std):
        raise ValueError(
            f"calibration: layer {name!r} outputs non-finite values on example_input (output std "
            f"{std}); check that the example batch is finite and the layer's weights are too."
        )
    if not 1 / MAX_CORRECTION <= factor <= MAX_CORRECTION:
        raise ValueError(
            f"calibration: layer {name!r} has output std {std:.3g} on example_input, so fitting "
            f"it would multiply its weights by {factor:.3g} (the bound is ×{MAX_CORRECTION:g} "
            "either way). Pass an example batch at the scale of real data (e.g. normalized "
            "inputs), or calibrate_layers=False."
        )
    for p in params:
        if p.dtype.is_floating_point and p.numel():
            largest = float(p.detach().abs().max()) * factor
            if largest > torch.finfo(p.dtype).max:
                raise ValueError(
                    f"calibration: scaling layer {name!r} by {factor:.3g} would overflow its "
                    f"{p.dtype} weights (largest entry {largest:.3g}). Calibrate the model in "
                    "float32 (model.float()) and cast it back afterwards."
                )


@contextlib.contextmanager
def _hooks(
    hooks: Sequence[tuple[nn.Module, Callable[..., Any]]],
    pre: Sequence[tuple[nn.Module, Callable[..., Any]]] = (),
) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for module, hook in pre:
            stack.callback(module.register_forward_pre_hook(hook).remove)
        for module, hook in hooks:
            stack.callback(module.register_forward_hook(hook).remove)
        yield


def _centre_bias_(module: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """Subtract each output unit's batch mean from ``module.bias``; returns the shift (0 where
    the module has no bias over ``y``'s last dim)."""
    bias = getattr(module, "bias", None)
    if not isinstance(bias, torch.Tensor) or bias.shape != y.shape[-1:]:
        return torch.zeros((), dtype=y.dtype, device=y.device)
    shift = y.detach().reshape(-1, y.shape[-1]).mean(0)
    with torch.no_grad():
        bias.sub_(shift.to(bias.dtype))
    return shift


def _std(y: torch.Tensor) -> float:
    return float(y.detach().double().std()) if y.numel() > 1 else 0.0


def _measure(
    model: nn.Module, example_input: Any, layers: dict[str, nn.Module], seed: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Per layer, the output std pooled over all its calls and the ratio pooled / first call."""
    sums: dict[str, list[float]] = {n: [0.0, 0.0, 0.0] for n in layers}  # n, sum, sum of squares
    first: dict[str, float] = {}

    def hook(name: str) -> Callable[..., None]:
        def fn(module: nn.Module, args: Any, output: Any) -> None:
            y = _main_output(output)
            if y is not None:
                first.setdefault(name, _std(y))
                y = y.detach().double()
                acc = sums[name]
                acc[0] += y.numel()
                acc[1] += float(y.sum())
                acc[2] += float((y * y).sum())

        return fn

    with torch.random.fork_rng(devices=[]), _hooks([(m, hook(n)) for n, m in layers.items()]):
        torch.manual_seed(seed)
        call_model(model, example_input)
    pooled, ratio = {}, {}
    for name, (n, s, ss) in sums.items():
        if n > 1:
            pooled[name] = max(ss / n - (s / n) ** 2, 0.0) ** 0.5 * (n / (n - 1)) ** 0.5
            ratio[name] = pooled[name] / first[name] if first.get(name) else 1.0
    return pooled, ratio


def calibrate(
    model: nn.Module,
    example_input: Any,
    layers: dict[str, nn.Module],
    *,
    target_std: float = 1.0,
    tol: float = 0.1,
    max_iter: int = 10,
    seed: int = 0,
    check: bool = True,
    post_scale: Mapping[str, float] | None = None,
    relative: Mapping[str, tuple[nn.Module, float]] | None = None,
    params: Mapping[str, Sequence[nn.Parameter]] | None = None,
    goal_of: Mapping[str, Callable[[torch.Tensor], float]] | None = None,
    centre: Collection[str] = (),
) -> tuple[dict[str, Fitted], int]:
    """Rescale ``layers`` (name -> module) so each output std is within ``tol`` of the target.

    Returns the per-layer outcome and the number of forward passes used. Buffers and modes are
    restored afterwards; gradients are not computed. ``check=False`` skips the check pass: right
    when every layer is called once and is homogeneous in its parameters (Linear, ConvNd), since
    the fitting pass then leaves each output std exactly at the target.

    ``post_scale`` (name -> factor) sets a layer's goal to ``factor · target_std`` instead: the
    residual-branch factors of ``auto_init``, applied inside the pass so that every later layer
    is fitted to the signal of the final model, not of the model before the factors. A layer's
    ``Fitted.scale`` then includes its factor.

    ``relative`` (name -> (module, factor)) sets a layer's goal to ``factor`` times the std of
    ``module``'s input in the same pass: a Pre-LN branch's last layer against the residual
    stream its normalization reads. ``params`` (name -> parameters) rescales only those (the
    last weight of a module that applies several, such as a mixture of experts); default: all
    of the layer's own parameters. ``goal_of`` (name -> function of the layer's output) sets
    a layer's goal from what it computes: logits fitted to a step-0 loss
    (:func:`stabletrain.init.policy._roles.fitted_logit_std`); a non-finite goal keeps the
    layer as it is. ``centre`` (names of layers with a bias over their last output dim): after
    the fit the bias takes minus each output unit's mean over the batch, so a logits layer
    starts with no class preferred (a uniform prior, as a final bias set to the log prior).

    Raises:
        ValueError: a layer's output is non-finite, or its correction exceeds
            :data:`MAX_CORRECTION` either way or overflows the weights' dtype (the layer is
            named). A layer whose output std is 0 is left as it is (reported by its ``Fitted``).
    """
    post = dict(post_scale or {})
    rel = dict(relative or {})
    own = {
        n: list(params[n]) if params and n in params else list(m.parameters(recurse=False))
        for n, m in layers.items()
    }
    stream: dict[int, float] = {}  # id(module) -> std of its input in this pass
    goals: dict[str, float] = {}  # each layer's output std goal in the last pass

    def probe(module: nn.Module, args: Any) -> None:
        x = _main_output(args)
        if x is not None:
            stream[id(module)] = _std(x)

    fitted = {n: Fitted(float("nan"), 1.0, float("nan")) for n in layers}
    done: set[str] = set()
    dead: set[str] = set()  # layers with no std to fit whose post_scale factor was applied
    ratio: dict[str, float] = {}  # pooled std / first call's std, from the last measurement

    def fit(name: str) -> Callable[..., Any]:
        def fn(module: nn.Module, args: Any, output: Any) -> Any:
            y = _main_output(output)
            if name in done or y is None:
                return None
            done.add(name)
            std = _std(y) * ratio.get(name, 1.0)  # estimate of the std over all calls
            fitted[name].std_after = std
            if std == 0:  # a dead layer: nothing to fit by
                if name in dead or post.get(name, 1.0) == 1.0:
                    return None
                dead.add(name)  # its factor still applies, once
                factor = post[name]
                _rescale_(own[name], factor)
                fitted[name].scale *= factor
                return output * factor if isinstance(output, torch.Tensor) else None
            goal = target_std * post.get(name, 1.0)
            if goal_of and name in goal_of:
                goal = goal_of[name](y)
                if not 0 < goal < float("inf"):
                    return None
            elif name in rel:
                ref, times = rel[name]
                goal = times * stream.get(id(ref), float("nan"))
                if not 0 < goal < float("inf"):
                    return None  # the stream was not measured: keep the layer as it is
            fitted[name].std_after = goals[name] = goal
            if fitted[name].std_before != fitted[name].std_before:  # nan: first pass
                fitted[name].std_before = std
            factor = goal / std
            moved[name] = factor
            _check_correction(name, own[name], std, factor)
            _rescale_(own[name], factor)
            fitted[name].scale *= factor
            y = y * factor
            if name in centre:
                y = y - _centre_bias_(module, y)
            if isinstance(output, torch.Tensor):
                return y
            return (y, *output[1:])

        return fn

    passes = 0
    moved: dict[str, float] = {}  # the factor each layer took in the last fitting pass
    with preserved_state(model), torch.no_grad():
        for _ in range(max_iter):
            done.clear()
            moved.clear()
            with (
                torch.random.fork_rng(devices=[]),
                _hooks(
                    [(m, fit(n)) for n, m in layers.items()],
                    [(ref, probe) for ref in {id(r): r for r, _ in rel.values()}.values()],
                ),
            ):
                torch.manual_seed(seed)
                call_model(model, example_input)
            if not check:
                return fitted, 1
            if rel and any(abs(f - 1) > tol / 10 for f in moved.values()):
                passes += 1  # a relative goal's stream moved under it (a tied table was
                continue  # fitted after the stream was measured): fit again before checking
            stds, ratio = _measure(model, example_input, layers, seed)
            passes += 2
            for name, std in stds.items():
                fitted[name].std_after = std
            if all(
                abs(s - goals.get(n, target_std * post.get(n, 1.0)))
                <= tol * goals.get(n, target_std * post.get(n, 1.0)) / target_std
                for n, s in stds.items()
            ):
                break
    return fitted, passes
