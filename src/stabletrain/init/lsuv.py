"""LSUV: layer-sequential unit-variance init (Mishkin & Matas 2016, "All you need is a good init").

Orthogonal pre-init (Saxe et al. 2014), then each layer's weights rescaled, in forward order,
until its output std on a batch is ``target_std``. Unlike the ``lsuv`` package this measures in
the model's own mode (BatchNorm in train mode normalizes with batch statistics, as in
training), measures the tensor each layer returns before any in-place op can change it, pools
all calls of a layer used more than once, and fits every layer in one forward pass (the hook
rescales the output it measured, so later layers see the corrected signal): with a check pass,
2 passes in all for a typical model instead of ~2 per layer.

``nn.MultiheadAttention`` is fitted at its output: torch applies ``out_proj`` functionally (a
hook on it never fires), so the attention module's own output is measured and ``out_proj``'s
weight and bias rescaled (the output is linear in them); the input projection keeps its init.
The report's notes say, per layer, why one was not fitted: never called on the batch, called
but returning no tensor, called with output 0 (dead), or still outside ``tol``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from stabletrain._checks import (
    UNSET,
    check_not_meta,
    check_positive_int,
    check_real,
    renamed_argument,
)
from stabletrain._wrappers import unwrap_model
from stabletrain.graph import NORM_TYPES, SnapshotDevice, check_example_input, transaction
from stabletrain.init._calibrate import Fitted, calibrate
from stabletrain.init._replicas import replicate_from_rank0
from stabletrain.init.policy.report import InitReport, ParamRecord
from stabletrain.init.schemes import orthogonal_, zeros_

_SKIP = (
    nn.RNNBase,
    nn.RNNCellBase,
    nn.Embedding,
    nn.EmbeddingBag,
    *NORM_TYPES,
)


def _own_params(module: nn.Module) -> list[nn.Parameter]:
    """The parameters a fitted layer's rescaling multiplies: its own, or for attention the
    output projection's (the output is linear in them; torch's attention never calls
    ``out_proj`` as a module, so a hook on it would never fire)."""
    if isinstance(module, nn.MultiheadAttention):
        return list(module.out_proj.parameters())
    return list(module.parameters(recurse=False))


def _weight(module: nn.Module) -> torch.Tensor:
    """The weight lsuv_ draws orthogonal and reports."""
    if isinstance(module, nn.MultiheadAttention):
        return module.out_proj.weight
    return module.get_parameter("weight")


def _param_name(layer: str, module: nn.Module) -> str:
    local = "out_proj.weight" if isinstance(module, nn.MultiheadAttention) else "weight"
    return f"{layer}.{local}" if layer else local


def _fitted_layers(
    model: nn.Module, include_frozen: bool
) -> tuple[dict[str, nn.Module], list[str], list[str]]:
    """Modules whose own ``weight`` has >= 2 dims (Linear, ConvNd, ConvTransposeNd, Bilinear...)
    and ``nn.MultiheadAttention`` (fitted at its output projection); the names of frozen ones
    (kept), and of other >= 2-D parameters lsuv_ cannot fit."""
    layers, frozen, unfitted = {}, [], []
    inside_attention: list[str] = []  # prefixes of attention modules: their parts are covered
    for name, module in model.named_modules():
        if any(name.startswith(prefix) for prefix in inside_attention):
            continue
        weight = getattr(module, "weight", None)
        attention = isinstance(module, nn.MultiheadAttention)
        if attention:
            inside_attention.append(f"{name}.")
        if attention or (
            isinstance(weight, nn.Parameter) and weight.dim() >= 2 and not isinstance(module, _SKIP)
        ):
            if include_frozen or all(p.requires_grad for p in _own_params(module)):
                layers[name] = module
            else:
                frozen.append(name)
            continue
        if isinstance(module, _SKIP):
            continue
        unfitted += [
            f"{name}.{pname}" if name else pname
            for pname, p in module.named_parameters(recurse=False)
            if p.dim() >= 2
        ]
    return layers, frozen, unfitted


@contextlib.contextmanager
def _calls(layers: dict[str, nn.Module]) -> Iterator[dict[str, bool]]:
    """Which of ``layers`` the forward passes called, and whether each returned a tensor."""
    called: dict[str, bool] = {}

    def hook(name: str) -> Callable[..., None]:
        def fn(module: nn.Module, args: Any, output: Any) -> None:
            tensor = isinstance(output, torch.Tensor) or (
                isinstance(output, tuple | list)
                and bool(output)
                and isinstance(output[0], torch.Tensor)
            )
            called[name] = called.get(name, False) or tensor

        return fn

    with contextlib.ExitStack() as stack:
        for name, module in layers.items():
            stack.callback(module.register_forward_hook(hook(name)).remove)
        yield called


def _why_missed(
    layers: dict[str, nn.Module],
    fitted: dict[str, Fitted],
    called: dict[str, bool],
    target_std: float,
    tol: float,
    max_iter: int,
) -> list[str]:
    """One note per kind of layer left outside ``tol``, each naming its layers and why."""
    never, untensored, dead, outside = [], [], [], []
    for name in layers:
        f = fitted[name]
        if abs(f.std_after - target_std) <= tol:
            continue
        if name not in called:
            never.append(name)
        elif not called[name]:
            untensored.append(name)
        elif f.std_after == 0:
            dead.append(name)
        else:
            outside.append(f"{name} (std {f.std_after:.3g})")
    notes = []
    if never:
        notes.append(
            f"not fitted: {', '.join(never)}: never called by the forward pass on this batch "
            "(kept as drawn)"
        )
    if untensored:
        notes.append(
            f"not fitted: {', '.join(untensored)}: called, but returned no tensor to measure"
        )
    if dead:
        notes.append(
            f"not fitted: {', '.join(dead)}: called, but its output is 0 on this batch (a dead "
            "layer has no std to rescale)"
        )
    if outside:
        notes.append(
            f"not within tol={tol} after {max_iter} round(s): {', '.join(outside)}"
            " (a layer that is not homogeneous in its weights, or fed by one that is not)"
        )
    return notes


def lsuv_(
    model: nn.Module,
    example_input: Any = UNSET,
    target_std: float = 1.0,
    tol: float = 0.1,
    max_iter: int = 10,
    *,
    batch: Any = UNSET,
    orthogonal: bool = True,
    include_frozen: bool = False,
    snapshot: SnapshotDevice = "device",
    generator: torch.Generator | None = None,
) -> InitReport:
    """Orthogonal pre-init, then rescale every layer until its output std is ``target_std``.

    Args:
        model: the model, in the mode it will train in (train mode: BatchNorm uses the batch).
        example_input: a tensor, a tuple of positional inputs or a dict of keyword inputs, as
            for :func:`~stabletrain.init.auto_init`.
        target_std: the output std every fitted layer is scaled to.
        tol: stop once every ``|std - target_std| <= tol``.
        max_iter: the most fit-and-check rounds (each is 2 forward passes).
        orthogonal: draw the weights orthogonal first (biases 0), as the paper does.
        include_frozen: also fit layers holding parameters with ``requires_grad=False``
            (usually pretrained: by default they are kept and listed in the report's notes).
        snapshot: where the undo copy lives while it runs (``"device"`` or ``"cpu"``): if the
            model raises, every parameter, buffer, gradient and mode is restored.
        generator: random generator for the orthogonal draws.
        batch: the former name of ``example_input`` (deprecated: a ``DeprecationWarning``).

    Returns:
        An :class:`~stabletrain.init.policy.InitReport` with each layer's scale factor and its
        output std afterwards.

    Example:
        >>> model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(inplace=True), nn.Linear(64, 5))
        >>> report = lsuv_(model, torch.randn(128, 20))
        >>> all(abs(p.output_std - 1) < 0.1 for p in report.params)
        True
    """
    model = unwrap_model(model)
    example_input = renamed_argument("example_input", example_input, "batch", batch, where="lsuv_")
    check_not_meta(model, "lsuv_")
    check_example_input(example_input, where="lsuv_")
    target_std = check_real("target_std", target_std, where="lsuv_", positive=True)
    tol = check_real("tol", tol, where="lsuv_", positive=True)
    max_iter = check_positive_int("max_iter", max_iter, where="lsuv_")
    layers, frozen, unfitted = _fitted_layers(model, include_frozen)
    if not layers:
        raise ValueError(
            "lsuv_: the model has no Linear/Conv-like layer (a module with a weight "
            "of 2 or more dims) to fit."
        )
    before = {n: float(_weight(m).detach().float().std()) for n, m in layers.items()}
    with transaction(model, "lsuv_", snapshot=snapshot) as state:
        if orthogonal:
            state.stage = "drawing orthogonal weights"
            for module in layers.values():
                orthogonal_(_weight(module), generator=generator)
                owner = module.out_proj if isinstance(module, nn.MultiheadAttention) else module
                bias = getattr(owner, "bias", None)
                if isinstance(bias, nn.Parameter):
                    zeros_(bias)
        state.stage = "fitting every layer's output std on the batch"
        with _calls(layers) as called:
            fitted, passes = calibrate(
                model,
                example_input,
                layers,
                target_std=target_std,
                tol=tol,
                max_iter=max_iter,
                params={n: _own_params(m) for n, m in layers.items()},
            )
    report = InitReport(forward_passes=passes)
    for name, module in layers.items():
        weight = _weight(module)
        f = fitted[name]
        report.params.append(
            ParamRecord(
                _param_name(name, module),
                name,
                tuple(weight.shape),
                "",
                "orthogonal + lsuv" if orthogonal else "lsuv",
                "LSUV (Mishkin & Matas 2016)",
                before[name],
                float(weight.detach().float().std()),
                calibration=f.scale,
                output_std=f.std_after,
            )
        )
    if frozen:
        report.notes.append(
            f"frozen: kept {len(frozen)} layer(s) holding parameters with requires_grad=False: "
            + ", ".join(frozen[:8])
        )
    if unfitted:
        report.notes.append(
            f"not fitted: {len(unfitted)} parameter(s) of >= 2 dims outside a Linear/Conv-like "
            "layer (e.g. batched expert weights), kept as they were: " + ", ".join(unfitted[:8])
        )
    report.notes += _why_missed(layers, fitted, called, target_std, tol, max_iter)
    return replicate_from_rank0(model, report)
