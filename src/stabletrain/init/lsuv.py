"""LSUV: layer-sequential unit-variance init (Mishkin & Matas 2016, "All you need is a good init").

Orthogonal pre-init (Saxe et al. 2014), then each layer's weights rescaled, in forward order,
until its output std on a batch is ``target_std``. Unlike the ``lsuv`` package this measures in
the model's own mode (BatchNorm in train mode normalizes with batch statistics, as in
training), measures the tensor each layer returns before any in-place op can change it, pools
all calls of a layer used more than once, and fits every layer in one forward pass (the hook
rescales the output it measured, so later layers see the corrected signal): with a check pass,
2 passes in all for a typical model instead of ~2 per layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stabletrain._checks import check_not_meta, check_positive_int, check_real
from stabletrain._wrappers import unwrap_model
from stabletrain.graph import NORM_TYPES, SnapshotDevice, check_example_input, transaction
from stabletrain.init._calibrate import calibrate
from stabletrain.init._replicas import replicate_from_rank0
from stabletrain.init.policy._report import InitReport, ParamRecord
from stabletrain.init.schemes import orthogonal_, zeros_

_SKIP = (
    nn.RNNBase,
    nn.RNNCellBase,
    nn.MultiheadAttention,
    nn.Embedding,
    nn.EmbeddingBag,
    *NORM_TYPES,
)


def _fitted_layers(
    model: nn.Module, include_frozen: bool
) -> tuple[dict[str, nn.Module], list[str], list[str]]:
    """Modules whose own ``weight`` has >= 2 dims (Linear, ConvNd, ConvTransposeNd, Bilinear...);
    the names of frozen ones (kept), and of other >= 2-D parameters lsuv_ cannot fit."""
    layers, frozen, unfitted = {}, [], []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter) and weight.dim() >= 2 and not isinstance(module, _SKIP):
            if include_frozen or all(p.requires_grad for p in module.parameters(recurse=False)):
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


def lsuv_(
    model: nn.Module,
    batch: Any,
    target_std: float = 1.0,
    tol: float = 0.1,
    max_iter: int = 10,
    *,
    orthogonal: bool = True,
    include_frozen: bool = False,
    snapshot: SnapshotDevice = "device",
    generator: torch.Generator | None = None,
) -> InitReport:
    """Orthogonal pre-init, then rescale every layer until its output std is ``target_std``.

    Args:
        model: the model, in the mode it will train in (train mode: BatchNorm uses the batch).
        batch: a tensor, a tuple of positional inputs or a dict of keyword inputs.
        target_std: the output std every fitted layer is scaled to.
        tol: stop once every ``|std - target_std| <= tol``.
        max_iter: the most fit-and-check rounds (each is 2 forward passes).
        orthogonal: draw the weights orthogonal first (biases 0), as the paper does.
        include_frozen: also fit layers holding parameters with ``requires_grad=False``
            (usually pretrained: by default they are kept and listed in the report's notes).
        snapshot: where the undo copy lives while it runs (``"device"`` or ``"cpu"``): if the
            model raises, every parameter, buffer, gradient and mode is restored.
        generator: random generator for the orthogonal draws.

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
    check_not_meta(model, "lsuv_")
    check_example_input(batch, where="lsuv_")
    target_std = check_real("target_std", target_std, where="lsuv_", positive=True)
    tol = check_real("tol", tol, where="lsuv_", positive=True)
    max_iter = check_positive_int("max_iter", max_iter, where="lsuv_")
    layers, frozen, unfitted = _fitted_layers(model, include_frozen)
    if not layers:
        raise ValueError(
            "lsuv_: the model has no Linear/Conv-like layer (a module with a weight "
            "of 2 or more dims) to fit."
        )
    before = {n: float(m.get_parameter("weight").detach().float().std()) for n, m in layers.items()}
    with transaction(model, "lsuv_", snapshot=snapshot) as state:
        if orthogonal:
            state.stage = "drawing orthogonal weights"
            for module in layers.values():
                orthogonal_(module.get_parameter("weight"), generator=generator)
                bias = getattr(module, "bias", None)
                if isinstance(bias, nn.Parameter):
                    zeros_(bias)
        state.stage = "fitting every layer's output std on the batch"
        fitted, passes = calibrate(
            model, batch, layers, target_std=target_std, tol=tol, max_iter=max_iter
        )
    report = InitReport(forward_passes=passes)
    for name, module in layers.items():
        weight = module.get_parameter("weight")
        f = fitted[name]
        report.params.append(
            ParamRecord(
                f"{name}.weight" if name else "weight",
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
    missed = [n for n, f in fitted.items() if not abs(f.std_after - target_std) <= tol]
    if missed:
        report.notes.append(
            f"not within tol={tol} after {max_iter} round(s): {', '.join(missed)}"
            " (dead or never-called layers cannot be rescaled)"
        )
    return replicate_from_rank0(model, report)
