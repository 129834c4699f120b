"""Findings from the propagation measurements: what is wrong, where, and the stabletrain fix.

Rules (severity in brackets; thresholds are the module constants):

- ``propagation_nonfinite`` [error]: a layer's output or gradient holds NaN or inf.
- ``propagation_forward_vanishing`` / ``_exploding`` [warning]: the output std of the weight
  layers (Linear/Conv, in execution order), fitted geometrically over depth (Theil–Sen), falls
  (grows) by more than :data:`DEPTH_RATIO` from the first weight layer to the last (claim I3).
- ``propagation_backward_vanishing`` / ``_exploding`` [warning]: the same for the gradient std
  at their outputs, from the last weight layer back to the first (claim S1).
- ``propagation_dead`` [warning]: more than :data:`DEAD_FRACTION` of a ReLU-family activation's
  outputs are exactly 0.
- ``propagation_saturated`` [warning]: more than :data:`SATURATED_FRACTION` of a bounded
  activation's outputs lie within 1% of a bound (claim I3).
- ``propagation_theory_mismatch`` [info]: layers whose measured std differs from the
  prediction by more than :data:`RATIO_BAND` either way; one finding, naming the worst layer.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from stabletrain._stats import pairwise_slopes
from stabletrain.diagnostics.diagnosis import LayerStats
from stabletrain.findings import Finding
from stabletrain.monitoring.activations import RECTIFIERS

DEPTH_RATIO = 10.0
"""A std that changes by more than this factor across the weight layers vanishes/explodes."""
MIN_DEPTH = 4
"""The fewest weight layers for a depth fit."""
DEAD_FRACTION = 0.9
SATURATED_FRACTION = 0.25
RATIO_BAND = 2.0
_FIT_POINTS = 200

FIX_INIT = "stabletrain.auto_init(model, example_input)"
FIX_DIAGNOSE = "stabletrain.diagnostics.diagnose(model, example_input, fix=True)"
_FIX_DEPTH = (
    f"{FIX_INIT} (or {FIX_DIAGNOSE}, which applies it and measures again); for deep plain "
    "stacks add normalization or residual connections "
    '(stabletrain.models.mlp(..., norm="layer", residual=True))'
)


def _fitted_change(values: Sequence[float]) -> float:
    """The fitted ``v_last / v_first`` of a geometric trend: the Theil–Sen slope (the median of
    the pairwise slopes) of ``log v`` on the index. Robust where least squares is not: a block
    whose query/key projections get gradients 1000x smaller than its other layers, at every
    depth, is no trend, and the median ignores it (at most :data:`_FIT_POINTS` points, evenly
    spaced, keep the pairs few)."""
    ys = [math.log(v) for v in values]
    slopes = pairwise_slopes(range(len(ys)), ys, _FIT_POINTS)
    return math.exp(statistics.median(slopes) * (len(values) - 1))


def _trend(
    layers: Sequence[LayerStats], weight_layers: AbstractSet[str], backward: bool
) -> list[Finding]:
    attr = "grad_out_std" if backward else "out_std"
    seq = [
        (x.name, getattr(x, attr))
        for x in layers
        if x.name in weight_layers and math.isfinite(getattr(x, attr)) and getattr(x, attr) > 0
    ]
    if len(seq) < MIN_DEPTH:
        return []
    if backward:  # the way gradients flow: from the last weight layer back to the first
        seq.reverse()
    change = _fitted_change([v for _, v in seq])
    if 1 / DEPTH_RATIO <= change <= DEPTH_RATIO:
        return []
    vanishing = change < 1
    what = "gradient" if backward else "output"
    (start, v_start), (end, v_end) = seq[0], seq[-1]
    return [
        Finding(
            severity="warning",
            layer=end,
            metric=attr,
            value=change,
            threshold=1 / DEPTH_RATIO if vanishing else DEPTH_RATIO,
            message=f"{what.capitalize()}s {'vanish' if vanishing else 'explode'} with depth at "
            f"initialization: the {what} std changes ×{change:.3g} over {len(seq)} weight "
            f"layers (geometric fit), from {v_start:.3g} at {start} to {v_end:.3g} at {end}.",
            fix=_FIX_DEPTH,
            rule=f"propagation_{'backward' if backward else 'forward'}_"
            f"{'vanishing' if vanishing else 'exploding'}",
        )
    ]


def _nonfinite(layers: Sequence[LayerStats]) -> list[Finding]:
    for x in layers:
        for attr, what in (("out_std", "output"), ("grad_out_std", "gradient")):
            value = getattr(x, attr)
            if math.isinf(value) or (math.isnan(value) and attr == "out_std"):
                return [
                    Finding(
                        severity="error",
                        layer=x.name,
                        metric=attr,
                        value=value,
                        threshold=0.0,
                        message=f"The {what} of {x.name or '(root)'} holds NaN or inf at "
                        "initialization "
                        "(the first layer where it does).",
                        fix="check example_input for NaN/inf and the weights for overflow; "
                        f"{FIX_INIT} re-initializes every layer",
                        rule="propagation_nonfinite",
                    )
                ]
    return []


def _activations(layers: Sequence[LayerStats]) -> list[Finding]:
    found = []
    for x in layers:
        act = (x.activation or "").partition("(")[0]
        if act in RECTIFIERS and x.zero_fraction > DEAD_FRACTION:
            found.append(
                Finding(
                    severity="warning",
                    layer=x.name,
                    metric="zero_fraction",
                    value=x.zero_fraction,
                    threshold=DEAD_FRACTION,
                    message=f"{x.zero_fraction:.0%} of the {act} outputs after {x.name} are 0: "
                    "those "
                    "units pass no gradient (dying ReLU).",
                    fix=f"{FIX_INIT} (He init, zero biases); a negative bias or a shifted input "
                    "kills units: center the input, or use nn.LeakyReLU",
                    rule="propagation_dead",
                )
            )
        if x.saturated_fraction > SATURATED_FRACTION:
            found.append(
                Finding(
                    severity="warning",
                    layer=x.name,
                    metric="saturated_fraction",
                    value=x.saturated_fraction,
                    threshold=SATURATED_FRACTION,
                    message=f"{x.saturated_fraction:.0%} of the {act} outputs after {x.name} are "
                    "saturated (within 1% of a bound), where the derivative is below 0.02.",
                    fix=f"{FIX_INIT} (Xavier for tanh/sigmoid: smaller weights); scale the input "
                    "to unit variance",
                    rule="propagation_saturated",
                )
            )
    return found


def _mismatch(layers: Sequence[LayerStats]) -> list[Finding]:
    off = []
    for x in layers:
        for ratio, what in ((x.forward_ratio, "output"), (x.backward_ratio, "gradient")):
            if math.isfinite(ratio) and ratio > 0 and abs(math.log(ratio)) > math.log(RATIO_BAND):
                off.append((abs(math.log(ratio)), ratio, x.name, what))
    if not off:
        return []
    _, ratio, name, what = max(off)
    return [
        Finding(
            severity="info",
            layer=name,
            metric="forward_ratio" if what == "output" else "backward_ratio",
            value=ratio,
            threshold=RATIO_BAND,
            message=f"Measured and predicted std differ by more than ×{RATIO_BAND:g} at {len(off)} "
            f"place(s); the largest: the {what} std of {name} is ×{ratio:.3g} the prediction. "
            "Theory assumes independent zero-mean weights and inputs: constant, correlated or "
            "shifted weights, or an input far from zero mean, break it.",
            fix=f"check the weights and the input's scale; {FIX_INIT} re-initializes with the "
            "schemes "
            "the theory describes",
            rule="propagation_theory_mismatch",
        )
    ]


def propagation_findings(
    layers: Sequence[LayerStats],
    weight_layers: set[str],
    restarted: set[str],
    stream_layers: AbstractSet[str] = frozenset(),
) -> list[Finding]:
    """Every propagation finding of one diagnosis, errors first.

    ``weight_layers`` are the Linear/Conv-like layers the depth trends fit over, less those in
    ``restarted`` (where the theory's chain restarted: their values come through attention or
    other ops off the depth path, e.g. the tiny gradients of a query projection).
    ``stream_layers``: the last layers of residual branches, whose output gradient is the
    residual stream's at their depth. Where there are :data:`MIN_DEPTH` of them, the backward
    trend is fitted over them alone: inside a branch a layer's gradient is scaled by the
    branch's own weights (a ViT's ``fc1`` gets ``0.02×`` the stream's), which alternates along
    the execution order and is no trend with depth.
    """
    chained = weight_layers - restarted
    stream = stream_layers & weight_layers
    found = _nonfinite(layers)
    found += _trend(layers, chained, backward=False)
    found += _trend(layers, stream if len(stream) >= MIN_DEPTH else chained, backward=True)
    found += _activations(layers)
    found += _mismatch(layers)
    return found
