"""From one logged step's measurements to findings: what is wrong, where, and how to fix it.

Each rule is a pure function ``(StepMetrics, Thresholds) -> list[Finding]``; the monitor runs
:data:`RULES` on every logged step and merges repeated findings (same rule, same layer). Every
``fix`` names the stabletrain call or setting that addresses the problem.

Rules (severity in brackets; every threshold is a field of :class:`Thresholds`):

- ``nonfinite`` [error]: a layer's gradient or weights, or the loss, hold NaN or inf.
- ``exploding`` [error]: a layer's gradient norm (else the total one) > ``exploding_norm``.
- ``depth_trend`` [warning]: the weight layers' gradient norms, fitted geometrically over depth,
  change by more than ``depth_ratio`` from the last weight layer back to the first: gradients
  vanish (or explode) with depth.
- ``vanishing`` [warning]: a weight layer's gradient norm < ``vanishing_ratio`` x the median
  over the weight layers.
- ``dead_units`` [warning]: > ``dead_fraction`` of a ReLU/ReLU6 layer's units were never
  positive over the last ``dead_window`` logged batches (smooth rectifiers such as SiLU and
  GELU have no dead region and are not tested).
- ``saturation`` [warning]: > ``saturation_fraction`` of a bounded activation's outputs lie
  within 1% of a bound.
- ``symmetric_units`` [error]: two rows of a weight matrix have cosine similarity >=
  ``symmetric_cosine`` and above what random rows that short reach by chance
  (:attr:`LayerMeta.chance_cosine`; rows of one entry are not tested: any two point the same
  way or opposite).
- ``update_ratio`` [warning]: ``‖Δθ‖/‖θ‖`` above ``update_ratio_high`` or below
  ``update_ratio_low`` (for a layer whose weights start at zero, ``‖θ‖`` is at least the scale
  ``zero_init_scale`` per entry: see :class:`Thresholds`).
- ``clipping`` [warning]: gradient clipping scaled the gradients down on more than
  ``clip_fraction`` of the last ``clip_window`` logged steps; the finding quotes the median
  clip ratio ``‖g clipped‖ / ‖g‖``.
- ``loss_plateau`` [info]: the mean loss of the last ``loss_window / 2`` steps is not below
  that of the ``loss_window / 2`` steps before.

The depth rules follow the tutorials' claim S1 (gradients vanish or explode through many factors
below or above 1) and S6 (monitor per-layer gradient norms to catch it early).
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stabletrain._checks import check_positive_int, check_real
from stabletrain._stats import pairwise_slopes
from stabletrain.findings import (
    SEVERITIES,
    Finding,
    FindingKey,
    Severity,
    fold_findings,
    ordered_findings,
)

__all__ = [
    "RULES",
    "SEVERITIES",
    "Finding",
    "FindingKey",
    "FindingRule",
    "LayerMeta",
    "Severity",
    "StepMetrics",
    "Thresholds",
    "clipping",
    "dead_units",
    "depth_trend",
    "exploding",
    "fold_findings",
    "loss_plateau",
    "nonfinite",
    "ordered_findings",
    "saturation",
    "symmetric_units",
    "update_ratio",
    "vanishing",
]


@dataclass(frozen=True)
class Thresholds:
    """When the rules fire, and the windows they look over. Every field is checked once.

    Attributes:
        vanishing_ratio: a weight layer whose gradient norm is below this fraction of the median
            gradient norm of the weight layers has vanishing gradients.
        depth_ratio: gradients vanish (explode) with depth when the geometric fit of the weight
            layers' gradient norms over depth falls (rises) by more than this factor from the
            last weight layer back to the first.
        min_depth: the fewest weight layers for a depth fit.
        exploding_norm: a gradient norm above this explodes (a layer's, or the total).
        dead_fraction: a ReLU-like layer with more than this fraction of dead units is flagged.
        dead_window: a unit is dead when never positive over this many logged batches; the rule
            waits for a full window.
        saturation_level: an output within ``1 − saturation_level`` of a bound (relative to the
            half-range) is saturated: ``|tanh(z)| > 0.99``.
        saturation_fraction: a layer with more than this fraction of saturated outputs is
            flagged.
        symmetric_cosine: two rows of a weight matrix with at least this cosine similarity are
            symmetric (the same unit twice).
        symmetric_rows: compare at most this many rows per layer (a fixed random sample), which
            bounds the cost at ``rows² × fan_in``.
        update_ratio_low, update_ratio_high: the healthy band of ``‖Δθ‖/‖θ‖`` per step; the
            rule of thumb is about 1e-3 (Karpathy, CS231n), the defaults are two decades either
            side of it.
        loss_window: the loss is compared over the last this-many steps (every step's loss is
            kept, in a ring buffer); the rule waits for a full window.
        loss_min_decrease: the relative decrease of the mean loss from the first half of the
            window to the second half below which the loss is not decreasing.
        zero_init_rms: a layer whose trainable weights have an RMS below this when the monitor
            starts is zero-initialized by design (the last BatchNorm gain of a residual block,
            layer-scale gammas of 1e-6): its update ratio is ``‖Δθ‖ / max(‖θ‖, √n ·
            zero_init_scale)``, as any update of a weight at zero is infinitely large
            relative to it.
        zero_init_scale: the per-entry scale such a layer is judged against until its weights
            grow past it.
        clip_window: the clipping rule looks at the clip ratios of this many logged steps and
            waits for a full window.
        clip_fraction: clipping is reported when it was active on more than this fraction of
            them.

    Example:
        >>> Thresholds(dead_fraction=0.1).dead_fraction
        0.1
    """

    vanishing_ratio: float = 1e-3
    depth_ratio: float = 1e2
    min_depth: int = 4
    exploding_norm: float = 1e3
    dead_fraction: float = 0.25
    dead_window: int = 8
    saturation_level: float = 0.99
    saturation_fraction: float = 0.25
    symmetric_cosine: float = 0.999
    symmetric_rows: int = 256
    update_ratio_low: float = 1e-5
    update_ratio_high: float = 1e-1
    loss_window: int = 100
    loss_min_decrease: float = 0.0
    zero_init_rms: float = 1e-3
    zero_init_scale: float = 0.1
    clip_window: int = 10
    clip_fraction: float = 0.5

    def __post_init__(self) -> None:
        where = "Thresholds"
        for name in (
            "vanishing_ratio",
            "depth_ratio",
            "exploding_norm",
            "update_ratio_high",
            "zero_init_scale",
        ):
            check_real(name, getattr(self, name), where=where, positive=True)
        check_real("update_ratio_low", self.update_ratio_low, where=where, non_negative=True)
        check_real("zero_init_rms", self.zero_init_rms, where=where, non_negative=True)
        check_real("loss_min_decrease", self.loss_min_decrease, where=where, non_negative=True)
        for name in ("min_depth", "dead_window", "symmetric_rows", "clip_window"):
            check_positive_int(name, getattr(self, name), where=where)
        if check_positive_int("loss_window", self.loss_window, where=where) < 2:
            raise ValueError(f"{where}: loss_window must be >= 2, got {self.loss_window}.")
        if self.symmetric_rows < 2:
            raise ValueError(f"{where}: symmetric_rows must be >= 2, got {self.symmetric_rows}.")
        for name in ("dead_fraction", "saturation_fraction", "saturation_level", "clip_fraction"):
            value = check_real(name, getattr(self, name), where=where)
            if not 0 < value < 1:
                raise ValueError(f"{where}: {name} must be in (0, 1), got {value}.")
        check_real("symmetric_cosine", self.symmetric_cosine, where=where)
        if not 0 < self.symmetric_cosine <= 1:
            raise ValueError(
                f"{where}: symmetric_cosine must be in (0, 1], got {self.symmetric_cosine}."
            )
        if self.depth_ratio <= 1:
            raise ValueError(f"{where}: depth_ratio must be > 1, got {self.depth_ratio}.")
        if self.update_ratio_low >= self.update_ratio_high:
            raise ValueError(
                f"{where}: update_ratio_low ({self.update_ratio_low}) must be below "
                f"update_ratio_high ({self.update_ratio_high})."
            )


@dataclass(frozen=True)
class LayerMeta:
    """What the rules know about a layer besides its measurements.

    ``depth`` is the position among the weight layers (not normalizations or embeddings) in
    execution order, None for the others; ``activation`` is the activation whose statistics the
    layer reports, if known; ``chance_cosine`` the largest row cosine that independent random
    rows of its weight reach by chance among the pairs compared
    (``stabletrain.monitoring.metrics.chance_cosine``, at 1e-3), None where not known.
    """

    name: str
    depth: int | None = None
    activation: str | None = None
    chance_cosine: float | None = None


@dataclass(frozen=True)
class StepMetrics:
    """One logged step's measurements, as the rules see them.

    ``values`` maps ``(layer, metric)`` to a float (layer None: the whole model); ``losses`` are
    the most recent per-step losses, oldest first; ``window_batches`` how many logged batches
    the dead-unit window holds; ``lr`` the optimizer's first learning rate, if known;
    ``clip_ratios`` the clip ratios of the latest logged steps, oldest first.
    """

    step: int
    layers: tuple[LayerMeta, ...]
    values: Mapping[tuple[str | None, str], float]
    losses: tuple[float, ...] = ()
    window_batches: int = 0
    lr: float | None = None
    clip_ratios: tuple[float, ...] = ()

    def get(self, layer: str | None, metric: str) -> float | None:
        """The value of ``metric`` for ``layer``, None if it was not measured."""
        return self.values.get((layer, metric))


FindingRule = Callable[[StepMetrics, Thresholds], list[Finding]]
"""A monitor rule: one logged step's measurements and the thresholds in, findings out (named
apart from :class:`stabletrain.Rule`, the init policy's rule)."""


def __getattr__(name: str) -> Any:
    if name == "Rule":  # the former name, until 1.0
        warnings.warn(
            "stabletrain.monitoring.Rule is deprecated and will be removed in 1.0: it is now "
            "FindingRule (stabletrain.Rule is the init policy's rule).",
            DeprecationWarning,
            stacklevel=2,
        )
        return FindingRule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_FIX_INIT = "stabletrain.auto_init(model, example_input)"
_FIX_NORM_RESIDUAL = (
    "add LayerNorm/BatchNorm or residual connections "
    '(stabletrain.models.mlp(..., norm="layer", residual=True))'
)
_FIX_CLIP = (
    "stabletrain.stability.clip_grad_norm_(model, max_norm=1.0), or "
    "StepGuard(opt, max_norm=1.0) to clip and skip non-finite steps"
)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _lr_text(m: StepMetrics) -> str:
    return f" (now {m.lr:g})" if m.lr is not None else ""


def nonfinite(m: StepMetrics, t: Thresholds) -> list[Finding]:
    """NaN or inf in a layer's gradient or weights, or in the loss."""
    found = []
    fix = (
        "StepGuard(opt, max_norm=1.0) skips the update of a step with non-finite gradients; "
        "then remove the cause: lower the learning rate, "
        "stabletrain.stability.clip_grad_norm_(model, max_norm=1.0), or a stable loss "
        "(F.cross_entropy on logits rather than log(softmax))"
    )
    for layer in m.layers:
        for metric, what in (("grad_nonfinite", "gradient"), ("weight_nonfinite", "weights")):
            count = m.get(layer.name, metric)
            if count is not None and count > 0:
                found.append(
                    Finding(
                        severity="error",
                        layer=layer.name,
                        metric=metric,
                        value=count,
                        threshold=0.0,
                        message=f"{int(count)} non-finite (NaN/inf) entries in the {what} of "
                        f"{layer.name or '(root)'}.",
                        fix=fix,
                        rule="nonfinite",
                    )
                )
    loss = m.get(None, "loss")
    if loss is not None and not math.isfinite(loss):
        found.append(
            Finding(
                severity="error",
                layer=None,
                metric="loss",
                value=loss,
                threshold=0.0,
                message=f"The loss is {loss}.",
                fix=fix,
                rule="nonfinite",
            )
        )
    return found


def exploding(m: StepMetrics, t: Thresholds) -> list[Finding]:
    """A gradient norm above ``exploding_norm``: a layer's, else the total one."""
    fix = f"{_FIX_CLIP}; lower the learning rate; if it starts at init, {_FIX_INIT}"
    found = []
    for layer in m.layers:
        g = m.get(layer.name, "grad_norm")
        if g is not None and g > t.exploding_norm:  # inf too: a norm that overflowed
            found.append(
                Finding(
                    severity="error",
                    layer=layer.name,
                    metric="grad_norm",
                    value=g,
                    threshold=t.exploding_norm,
                    message=f"Exploding gradient: norm {g:.3g} in {layer.name or '(root)'}.",
                    fix=fix,
                    rule="exploding",
                )
            )
    total = m.get(None, "grad_norm")
    if not found and total is not None and total > t.exploding_norm:
        found.append(
            Finding(
                severity="error",
                layer=None,
                metric="grad_norm",
                value=total,
                threshold=t.exploding_norm,
                message=f"Exploding gradient: total norm {total:.3g}.",
                fix=fix,
                rule="exploding",
            )
        )
    return found


def _weight_layer_norms(m: StepMetrics) -> list[tuple[LayerMeta, float]]:
    """(layer, gradient norm) of the weight layers with a finite norm, by depth."""
    pairs = []
    for layer in m.layers:
        g = m.get(layer.name, "grad_norm")
        if layer.depth is not None and g is not None and math.isfinite(g):
            pairs.append((layer, g))
    return sorted(pairs, key=lambda p: p[0].depth or 0)


_TREND_POINTS = 64  # at most this many layers (evenly spaced) in the pairwise fit


def _like_for_like_slopes(
    names: Sequence[str], xs: Sequence[float], ys: Sequence[float]
) -> list[float]:
    """The pairwise slopes between the same layer of repeated blocks (names equal up to their
    numeric path parts: ``layer.0.attention.q_lin`` and ``layer.1.attention.q_lin``) where
    such repeats cover most layers; else between every two layers. Within a block the layers'
    gradients differ by design (a query projection's is 100x smaller than the MLP's): that
    is no trend with depth."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        key = ".".join("#" if part.isdigit() else part for part in name.split("."))
        groups.setdefault(key, []).append(i)
    repeated = [g for g in groups.values() if len(g) >= 2]
    if sum(len(g) for g in repeated) * 2 < len(names) or len(repeated) == 1:
        return pairwise_slopes(
            xs, ys, _TREND_POINTS
        )  # no repeated blocks (or one repeated layer: a chain)
    return [
        slope
        for g in repeated
        for slope in pairwise_slopes([xs[i] for i in g], [ys[i] for i in g], _TREND_POINTS)
    ]


def depth_trend(m: StepMetrics, t: Thresholds) -> list[Finding]:
    """Gradient norms decaying (or growing) geometrically from the output back to the input.

    The Theil–Sen slope (the median of the pairwise slopes, Sen 1968) of ``log10 ‖g_l‖`` on the
    depth ``l`` of the weight layers with a positive norm; the fitted change from the last
    layer to the first, ``10^(−slope·(l_last − l_first))``, is the value; the finding names the
    first weight layer, where the gradient is extreme. The median, not least squares: a
    Transformer's query/key projections get gradients 100x smaller than the other layers of
    their block at every depth, which is no trend, but their first one pulls a least-squares
    line (a healthy DistilBERT read as "vanishing").
    """
    pairs = [(layer, g) for layer, g in _weight_layer_norms(m) if g > 0]
    if len(pairs) < t.min_depth:
        return []
    xs = [float(layer.depth or 0) for layer, _ in pairs]
    ys = [math.log10(g) for _, g in pairs]
    slopes = _like_for_like_slopes([layer.name for layer, _ in pairs], xs, ys)
    if not slopes:
        return []
    slope = statistics.median(slopes)
    ratio = 10 ** (-slope * (xs[-1] - xs[0]))  # first layer's norm / last layer's, fitted
    first = pairs[0][0].name
    if ratio < 1 / t.depth_ratio:
        return [
            Finding(
                severity="warning",
                layer=first,
                metric="grad_norm",
                value=ratio,
                threshold=1 / t.depth_ratio,
                message="Vanishing gradients with depth: the gradient norm shrinks geometrically "
                "from "
                f"the last weight layer back to {first or '(root)'} (fitted ratio {ratio:.2g} "
                f"over {len(pairs)} layers).",
                fix=f"{_FIX_INIT} (He init for ReLU, Xavier for tanh/sigmoid); use ReLU-family "
                f"activations rather than sigmoid/tanh; {_FIX_NORM_RESIDUAL}",
                rule="depth_trend",
            )
        ]
    if ratio > t.depth_ratio:
        return [
            Finding(
                severity="warning",
                layer=first,
                metric="grad_norm",
                value=ratio,
                threshold=t.depth_ratio,
                message="Exploding gradients with depth: the gradient norm grows geometrically "
                "from "
                f"the last weight layer back to {first or '(root)'} (fitted ratio {ratio:.2g} "
                f"over {len(pairs)} layers).",
                fix=f"{_FIX_INIT} (the init is too large for this depth); {_FIX_NORM_RESIDUAL}; "
                f"{_FIX_CLIP}",
                rule="depth_trend",
            )
        ]
    return []


def vanishing(m: StepMetrics, t: Thresholds) -> list[Finding]:
    """A weight layer whose gradient norm is far below the median of the weight layers."""
    pairs = _weight_layer_norms(m)
    if len(pairs) < 2:
        return []
    median = statistics.median(g for _, g in pairs)
    if median <= 0:
        return []
    found = []
    for layer, g in pairs:
        if g < t.vanishing_ratio * median:
            found.append(
                Finding(
                    severity="warning",
                    layer=layer.name,
                    metric="grad_norm",
                    value=g,
                    threshold=t.vanishing_ratio * median,
                    message=f"Vanishing gradient in {layer.name or '(root)'}: norm {g:.3g}, "
                    f"{g / median:.2g} x the median layer's {median:.3g}.",
                    fix=f"{_FIX_INIT}; {_FIX_NORM_RESIDUAL}; check for dead or saturated units "
                    "feeding this layer",
                    rule="vanishing",
                )
            )
    return found


def dead_units(m: StepMetrics, t: Thresholds) -> list[Finding]:
    """ReLU-like layers with many units never positive over a full window."""
    if m.window_batches < t.dead_window:
        return []
    found = []
    for layer in m.layers:
        dead = m.get(layer.name, "dead_fraction")
        if _finite(dead) and dead is not None and dead > t.dead_fraction:
            found.append(
                Finding(
                    severity="warning",
                    layer=layer.name,
                    metric="dead_fraction",
                    value=dead,
                    threshold=t.dead_fraction,
                    message=f"{dead:.0%} of the units after {layer.name or '(root)'} "
                    f"({layer.activation or 'ReLU-like'}) were never positive over the last "
                    f"{t.dead_window} logged batches: they get no gradient.",
                    fix=f"{_FIX_INIT} (He init, zero biases); lower the learning "
                    f"rate{_lr_text(m)}; "
                    "or LeakyReLU/GELU, whose units cannot die",
                    rule="dead_units",
                )
            )
    return found


def saturation(m: StepMetrics, t: Thresholds) -> list[Finding]:
    """Bounded activations (tanh, sigmoid) stuck near their bounds, where the slope is ~0."""
    found = []
    for layer in m.layers:
        sat = m.get(layer.name, "saturation_fraction")
        if _finite(sat) and sat is not None and sat > t.saturation_fraction:
            found.append(
                Finding(
                    severity="warning",
                    layer=layer.name,
                    metric="saturation_fraction",
                    value=sat,
                    threshold=t.saturation_fraction,
                    message=f"{sat:.0%} of the {layer.activation or 'bounded'} outputs after "
                    f"{layer.name or '(root)'} are saturated: their gradient is ~0.",
                    fix=f"{_FIX_INIT} (Xavier for tanh/sigmoid: the init is too large); add "
                    "normalization before the activation (stabletrain.models.mlp(..., "
                    'norm="layer")); or a ReLU-family activation',
                    rule="saturation",
                )
            )
    return found


def symmetric_units(m: StepMetrics, t: Thresholds) -> list[Finding]:
    """Two units of a layer with the same weights: they stay equal under gradient descent.

    The bar is ``symmetric_cosine``, or the cosine chance reaches for the layer's rows where
    that is higher (short rows: 48 rows of 2 entries always hold a pair above 0.999)."""
    found = []
    for layer in m.layers:
        cos = m.get(layer.name, "max_row_cosine")
        chance = layer.chance_cosine if layer.chance_cosine is not None else -1.0
        bar = max(t.symmetric_cosine, chance)
        if chance >= 1.0 or not _finite(cos) or cos is None or cos < bar:
            continue
        found.append(
            Finding(
                severity="error",
                layer=layer.name,
                metric="max_row_cosine",
                value=cos,
                threshold=bar,
                message=f"Symmetric units in {layer.name or '(root)'}: two rows of its weight "
                f"have cosine similarity {cos:.4f}; identical units get identical gradients and "
                "never differ (claim I1).",
                fix="break the symmetry with a random init: "
                "stabletrain.init.orthogonal_(weight)"
                f" or {_FIX_INIT}; never initialize weights to a constant",
                rule="symmetric_units",
            )
        )
    return found


def update_ratio(m: StepMetrics, t: Thresholds) -> list[Finding]:
    """Relative weight updates far from the ~1e-3 rule of thumb."""
    found = []
    for layer in m.layers:
        r = m.get(layer.name, "update_ratio")
        if not _finite(r) or r is None:
            continue
        name = layer.name or "(root)"
        if r > t.update_ratio_high:
            found.append(
                Finding(
                    severity="warning",
                    layer=layer.name,
                    metric="update_ratio",
                    value=r,
                    threshold=t.update_ratio_high,
                    message=f"One step changes the weights of {name} by {r:.2g} of their norm "
                    "(rule of thumb ~1e-3): the learning rate is too high for this layer.",
                    fix=f"lower the learning rate{_lr_text(m)}, or clip: {_FIX_CLIP}",
                    rule="update_ratio",
                )
            )
        elif r < t.update_ratio_low:
            found.append(
                Finding(
                    severity="warning",
                    layer=layer.name,
                    metric="update_ratio",
                    value=r,
                    threshold=t.update_ratio_low,
                    message=f"One step changes the weights of {name} by only {r:.2g} of their norm "
                    "(rule of thumb ~1e-3): it barely learns.",
                    fix=f"raise the learning rate{_lr_text(m)}; check that the optimizer holds "
                    "this "
                    "layer's parameters and that its gradient does not vanish",
                    rule="update_ratio",
                )
            )
    return found


_CLIPPED = 1.0 - 1e-6  # a clip ratio below this: the gradients were scaled down


def clipping(m: StepMetrics, t: Thresholds) -> list[Finding]:
    """Gradient clipping active on most of the recent logged steps."""
    ratios = m.clip_ratios[-t.clip_window :]
    if len(ratios) < t.clip_window:
        return []
    clipped = [r for r in ratios if r < _CLIPPED]
    share = len(clipped) / len(ratios)
    if share <= t.clip_fraction:
        return []
    median = statistics.median(clipped)
    return [
        Finding(
            severity="warning",
            layer=None,
            metric="clip_ratio",
            value=median,
            threshold=t.clip_fraction,
            message=f"Gradient clipping is active on {share:.0%} of the last {len(ratios)} logged "
            "steps, "
            f"scaling the gradients by {median:.2g} (median): the clipping threshold, not the "
            "learning rate, sets the step size.",
            fix=f"lower the learning rate{_lr_text(m)} until clipping is rare; if the gradient "
            "norms "
            "are healthy, raise max_norm (StepGuard(opt, max_norm=...)); see the exploding and "
            "depth findings",
            rule="clipping",
        )
    ]


def loss_plateau(m: StepMetrics, t: Thresholds) -> list[Finding]:
    """The loss does not decrease over the last ``loss_window`` steps."""
    losses = [v for v in m.losses[-t.loss_window :] if math.isfinite(v)]
    if len(m.losses) < t.loss_window or len(losses) < t.loss_window:
        return []
    half = t.loss_window // 2
    before, after = statistics.fmean(losses[:half]), statistics.fmean(losses[-half:])
    if after < before - t.loss_min_decrease * abs(before):
        return []
    return [
        Finding(
            severity="info",
            layer=None,
            metric="loss",
            value=after,
            threshold=before,
            message=f"The loss is not decreasing: mean {after:.4g} over the last {half} steps, "
            f"{before:.4g} over the {half} before.",
            fix=f"check the learning rate{_lr_text(m)} (try 3-10x higher or lower) and the other "
            "findings: vanishing gradients, dead or saturated units stop learning",
            rule="loss_plateau",
        )
    ]


RULES: dict[str, FindingRule] = {
    "nonfinite": nonfinite,
    "exploding": exploding,
    "depth_trend": depth_trend,
    "vanishing": vanishing,
    "dead_units": dead_units,
    "saturation": saturation,
    "symmetric_units": symmetric_units,
    "update_ratio": update_ratio,
    "clipping": clipping,
    "loss_plateau": loss_plateau,
}
"""Every rule, by name, in the order the monitor runs them."""
