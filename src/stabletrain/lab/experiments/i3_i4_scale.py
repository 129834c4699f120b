"""Claims I3 and I4: the scale of the init decides the signal over depth.

Both send a batch of N(0, 1) inputs through a deep MLP of width 256 (biases 0) and read the
std of every Linear layer's output and of the gradient there (backward from a standard normal
probe at the output) with :func:`stabletrain.lab._common.layer_signals`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from stabletrain import init, models
from stabletrain.lab import verdicts
from stabletrain.lab._common import LayerSignal, layer_signals
from stabletrain.lab._init_common import (
    Scheme,
    init_linears_,
    per_layer_factor,
    profile_figure,
    profile_table,
)
from stabletrain.lab.estimate import Estimate, over
from stabletrain.lab.experiment import Context, Figure, Table, Verdict, experiment
from stabletrain.lab.staged import Explanation, Staged, measured
from stabletrain.monitoring.metrics import saturated_count

WIDTH = 256
SMALL_STD = 0.01  # the tutorials' "small random" N(0, 0.01²): sqrt(256)·0.01 = 0.16 per layer
LARGE_STD = 1.0  # "too large": N(0, 1) weights, sqrt(256)·1 = 16 times the unit-gain scale
# A signal that drifts by 15% per layer changes 16x over 20 layers and 66x over 30; the good
# inits (Xavier for tanh, He for ReLU, shown as controls) stay within 10% per layer.
DRIFT = 1.15
# "Saturated": more than half of the units sit in the flat tails (|tanh| > 0.99, sigmoid
# within 0.01 of 0 or 1), where the derivative is below 0.02.
SATURATED = 0.5
_SATURATION = {nn.Tanh: (0.0, 0.99), nn.Sigmoid: (0.5, 0.49)}  # (center, |v - center| >)
# I4: pre-activation variance within 10% of 1/3 holds; within 90% (not 12 orders of
# magnitude off) would be a caveat.
I4_TOL, I4_CAVEAT_TOL = 0.1, 0.9
I4_DEPTH = 50
I4_TARGET = 1.0 / 3.0


@dataclass(frozen=True)
class ScaleProfile:
    """One init and activation: its hidden layers' signals and saturated fraction."""

    label: str
    activation: str
    signals: tuple[LayerSignal, ...]  # hidden layers only
    saturation: float | None  # mean saturated fraction of the hidden activations (None: ReLU)

    @property
    def forward_factor(self) -> float:
        """Per-layer factor of the input-dependent forward std, layer 1 -> L."""
        return per_layer_factor([s.batch_std for s in self.signals])

    @property
    def backward_factor(self) -> float:
        """Per-layer factor of the gradient std going backward, layer L -> 1."""
        return per_layer_factor([s.backward_std for s in reversed(self.signals)])


def _saturation(model: nn.Sequential, x: torch.Tensor) -> float | None:
    fractions = []
    with torch.no_grad():
        for module in model:
            x = module(x)
            spec = _SATURATION.get(type(module))
            if spec is not None:
                fractions.append(float(saturated_count(x, *spec)) / x.numel())
    return sum(fractions) / len(fractions) if fractions else None  # None: unbounded (ReLU)


def _profile(
    ctx: Context, label: str, activation: str, scheme: str | Scheme, depth: int, batch: int
) -> ScaleProfile:
    model = models.mlp(WIDTH, WIDTH, depth, WIDTH, activation=activation)
    init_linears_(model, scheme, ctx.generator(1))
    x = torch.randn(batch, WIDTH, generator=ctx.generator(2))  # Var(x) = 1
    signals = layer_signals(model, x, generator=ctx.generator(3))[:-1]  # drop the head
    return ScaleProfile(label, activation, tuple(signals), _saturation(model, x))


def _normal(std: float) -> Scheme:
    return lambda w, g: init.normal_(w, 0.0, std, generator=g)


def _factor_table(profiles: Sequence[ScaleProfile]) -> Table:
    return Table(
        "Per-layer factors (geometric mean over depth) and saturation",
        ("init", "activation", "forward factor", "backward factor", "saturated fraction"),
        tuple(
            (p.label, p.activation, p.forward_factor, p.backward_factor, p.saturation)
            for p in profiles
        ),
    )


@dataclass(frozen=True)
class ScaleCheck:
    """I3's measurements on one seed: per-layer factors of too-small and too-large inits."""

    small_tanh_forward: float = measured("per layer", "N(0, 0.01²) + tanh, input-dependent std")
    small_sigmoid_forward: float = measured("per layer", "N(0, 0.01²) + sigmoid, same")
    small_relu_forward: float = measured("per layer", "N(0, 0.01²) + ReLU, same")
    large_relu_forward: float = measured("per layer", "N(0, 1) + ReLU, input-dependent std")
    large_tanh_saturated: float = measured("fraction", "N(0, 1) + tanh: outputs in the tails")
    large_sigmoid_saturated: float = measured("fraction", "N(0, 1) + sigmoid: same")
    least_backward_drift: float = measured(
        "per layer", "smallest max(f, 1/f) of the bad inits' gradient factors f"
    )
    depth: int = measured("layers", "hidden layers")
    profiles: tuple[ScaleProfile, ...] = ()  # 3 small, 3 large, 2 controls

    def profile(self, label: str, activation: str) -> ScaleProfile:
        """The profile whose label starts with ``label`` ("small", "large", "Xavier", "He")."""
        return next(
            p for p in self.profiles if p.label.split()[0] == label and p.activation == activation
        )


ACTIVATIONS = ("tanh", "sigmoid", "relu")


def _scale_profiles(ctx: Context, depth: int, batch: int) -> tuple[ScaleProfile, ...]:
    bad = [
        _profile(ctx, f"{size} N(0, {std:g}²)", a, _normal(std), depth, batch)
        for size, std in (("small", SMALL_STD), ("large", LARGE_STD))
        for a in ACTIVATIONS
    ]
    controls = [
        _profile(ctx, "Xavier (control)", "tanh", "xavier_normal", depth, batch),
        _profile(ctx, "He (control)", "relu", "he_normal", depth, batch),
    ]
    return (*bad, *controls)


@experiment("I3")
class InitScale(Staged[ScaleCheck]):
    """Too-small and too-large N(0, s²) inits over depth, with Xavier and He as controls.

    Three seeds: the closest margin (large sigmoid's gradient factor, ~1.24 against 1.15) moves
    with the draw of the weights.
    """

    def measure(self, ctx: Context) -> ScaleCheck:
        depth, batch = ctx.pick(20, 30), ctx.pick(256, 512)
        profiles = _scale_profiles(ctx, depth, batch)
        bad = [p for p in profiles if "control" not in p.label]
        by = {(p.label.split()[0], p.activation): p for p in bad}
        return ScaleCheck(
            small_tanh_forward=by["small", "tanh"].forward_factor,
            small_sigmoid_forward=by["small", "sigmoid"].forward_factor,
            small_relu_forward=by["small", "relu"].forward_factor,
            large_relu_forward=by["large", "relu"].forward_factor,
            large_tanh_saturated=by["large", "tanh"].saturation or 0.0,
            large_sigmoid_saturated=by["large", "sigmoid"].saturation or 0.0,
            least_backward_drift=min(max(p.backward_factor, 1 / p.backward_factor) for p in bad),
            depth=depth,
            profiles=profiles,
        )

    def decide(self, ms: Sequence[ScaleCheck]) -> Verdict:
        return verdicts.weakest(
            [
                # too small: the input-dependent signal shrinks toward 0, for every activation
                *(verdicts.at_most(over(ms, f"small_{a}_forward"), 1 / DRIFT) for a in ACTIVATIONS),
                # too large: ReLU activations explode, tanh and sigmoid saturate
                verdicts.at_least(over(ms, "large_relu_forward"), DRIFT),
                verdicts.at_least(over(ms, "large_tanh_saturated"), SATURATED),
                verdicts.at_least(over(ms, "large_sigmoid_saturated"), SATURATED),
                # either way the gradients vanish or explode: every bad init leaves the band
                verdicts.at_least(over(ms, "least_backward_drift"), DRIFT),
            ]
        )

    def explain(self, ms: Sequence[ScaleCheck], verdict: Verdict) -> Explanation:
        m = ms[0]
        small, large = m.profile("small", "tanh"), m.profile("large", "tanh")
        xavier = m.profile("Xavier", "tanh")
        relu = Estimate.of(x.large_relu_forward for x in ms)
        tanh_sat = Estimate.of(x.large_tanh_saturated for x in ms)
        everything = {f"{p.label} {p.activation}": p.signals for p in m.profiles}
        return Explanation(
            key_number=(
                f"per-layer factor: small {m.small_tanh_forward:.2f} (tanh), large ReLU "
                f"{relu.value:.1f}; large tanh {tanh_sat.value:.0%} saturated"
            ),
            text=_scale_text(ms, verdict),
            tables=(
                _factor_table(m.profiles),
                profile_table(
                    "Per-layer std, tanh", {p.label: p.signals for p in (small, large, xavier)}
                ),
            ),
            figures=(
                profile_figure(
                    "Input-dependent activation std over depth", everything, what="input-dependent"
                ),
                profile_figure("Gradient std over depth", everything, what="backward"),
            ),
        )


def _scale_text(ms: Sequence[ScaleCheck], verdict: Verdict) -> str:
    m = ms[0]
    small = [m.profile("small", a) for a in ACTIVATIONS]
    large = [m.profile("large", a) for a in ACTIVATIONS]
    controls = [m.profile("Xavier", "tanh"), m.profile("He", "relu")]

    return (
        "Claim: too-large init explodes activations or saturates tanh/sigmoid; too-small "
        "init shrinks activations toward 0; either way gradients vanish or explode with "
        f"depth. Depth-{m.depth} MLPs of width {WIDTH}, N(0, 1) inputs, biases 0, "
        f"{len(ms)} seed(s) (per-profile numbers from the first). With N(0, {SMALL_STD:g}²) "
        "weights the input-dependent signal shrinks by a factor "
        + ", ".join(f"{p.forward_factor:.3g} ({p.activation})" for p in small)
        + f" per layer (bound {1 / DRIFT:.3g}). With N(0, {LARGE_STD:g}²) weights ReLU "
        f"activations grow {over(ms, 'large_relu_forward').describe()}x per layer, while tanh "
        f"and sigmoid stay bounded but saturate: {over(ms, 'large_tanh_saturated').describe()} "
        f"and {over(ms, 'large_sigmoid_saturated').describe()} of their outputs lie in the flat "
        "tails (bound "
        f"{SATURATED:.0%}). The gradient changes per layer going back by "
        + ", ".join(
            f"{p.backward_factor:.3g} ({p.label.split()[0]} {p.activation})" for p in small + large
        )
        + f" (outside [{1 / DRIFT:.3g}, {DRIFT:g}]: vanishing or exploding; the closest, "
        f"max(f, 1/f) = {over(ms, 'least_backward_drift').describe()}). "
        + (
            "Saturated tanh explodes rather than vanishes (the chaotic regime: the few "
            "units near 0 have slope 1 and weights 16x the unit scale). "
            if large[0].backward_factor >= DRIFT
            else ""
        )
        + "The controls (Xavier + tanh, He + ReLU) stay within "
        + ", ".join(
            f"{c.forward_factor:.3g}/{c.backward_factor:.3g} ({c.activation})" for c in controls
        )
        + f" per layer (forward/backward). Verdict: {verdict.outcome}."
    )


@dataclass(frozen=True)
class StandardInit:
    """I4's measurements: pre-activation variances of a depth-50 tanh MLP, standard init."""

    layer1_variance: float = measured("variance", "pre-activation variance at layer 1")
    deep_variance: float = measured("variance", f"pre-activation variance at layer {I4_DEPTH}")
    layer1_mean: float = measured("", "pre-activation mean at layer 1")
    per_layer: float = measured("per layer", "geometric-mean factor of the std over depth")
    variances: tuple[float, ...] = ()  # layer 1 .. I4_DEPTH


@experiment("I4")
class StandardInitDepth(Staged[StandardInit]):
    """The "standard" U(±1/√n) init's pre-activation variance, at layer 1 and over depth.

    One seed: layer 1's variance pools batch x 256 entries (0.5% scatter against a 10%
    tolerance) and the deep variance is off by ~24 orders of magnitude: no seed flips either.
    """

    seeds = (1, 1)

    def measure(self, ctx: Context) -> StandardInit:
        batch = ctx.pick(512, 4096)
        model = models.mlp(WIDTH, WIDTH, I4_DEPTH, WIDTH, activation="tanh")
        init_linears_(model, "standard", ctx.generator(1))  # biases 0: the claim's mean 0
        x = torch.randn(batch, WIDTH, generator=ctx.generator(2))  # Var(x) = 1
        signals = layer_signals(model, x, generator=ctx.generator(3))[:-1]
        with torch.no_grad():
            mean1 = float(model[0](x).mean())
        variances = tuple(s.forward_std**2 for s in signals)
        return StandardInit(
            layer1_variance=variances[0],
            deep_variance=variances[-1],
            layer1_mean=mean1,
            per_layer=per_layer_factor([s.forward_std for s in signals]),
            variances=variances,
        )

    def decide(self, ms: Sequence[StandardInit]) -> Verdict:
        return verdicts.weakest(self._parts(ms))

    @staticmethod
    def _parts(ms: Sequence[StandardInit]) -> tuple[Verdict, Verdict]:
        first = Estimate.of(m.layer1_variance for m in ms)
        deep = Estimate.of(m.deep_variance for m in ms)
        return (
            verdicts.close_to(first, I4_TARGET, rel_tol=I4_TOL),
            verdicts.close_to(deep, I4_TARGET, rel_tol=I4_TOL, caveat_rel_tol=I4_CAVEAT_TOL),
        )

    def explain(self, ms: Sequence[StandardInit], verdict: Verdict) -> Explanation:
        m = ms[0]
        first, deep = self._parts(ms)
        v = m.variances
        layers = [float(i) for i in range(1, I4_DEPTH + 1)]
        shown = [i for i in (1, 2, 5, 10, 20, 30, 40, 50) if i <= I4_DEPTH]
        text = (
            'Claim: "standard" init U(-1/sqrt(n), 1/sqrt(n)) with Var(x)=1 gives hidden '
            "pre-activations of mean 0 and variance 1/3, independent of depth. Layer 1: "
            f"mean {m.layer1_mean:.1e}, variance {v[0]:.4f} (claimed 1/3, tolerance "
            f"{I4_TOL:.0%}), as Var(z) = n·(1/(3n))·1 predicts. Past layer 1 the input is "
            "tanh(z), of variance below 1, and each layer multiplies the variance by about "
            f"n·Var(w)·tanh'(0)² = 1/3. In a depth-{I4_DEPTH} tanh MLP of width {WIDTH} the std "
            f"shrinks by {m.per_layer:.3f} per layer (1/√3 = 0.577): variance {v[1]:.3g} at "
            f"layer 2, {v[9]:.2g} at layer 10 (std {v[9] ** 0.5:.2g}), {v[-1]:.2g} at layer "
            f"{I4_DEPTH}. The layer-1 part: {first.outcome}; the depth-{I4_DEPTH} part: "
            f"{deep.outcome} (off by {I4_TARGET / max(v[-1], 1e-300):.0e}x). Verdict: "
            f"{verdict.outcome}. Xavier (I6) or LSUV fix the scale."
        )
        # tanh is linear near 0, so past layer 1 each layer multiplies the variance by about
        # n·Var(w)·tanh'(0)² = 1/3: the depth dependence the claim leaves out
        return Explanation(
            key_number=(
                f"pre-activation variance: layer 1 {v[0]:.3f}, layer {I4_DEPTH} "
                f"{v[-1]:.1e} (claim: 1/3 at every depth)"
            ),
            text=text,
            tables=(
                Table(
                    "Pre-activation variance by layer, standard init, tanh",
                    ("layer", "variance", "claimed", "(1/3)^layer (linear regime)"),
                    tuple((i, v[i - 1], I4_TARGET, I4_TARGET**i) for i in shown),
                ),
            ),
            figures=(
                Figure(
                    "Pre-activation variance over depth under standard init",
                    "layer",
                    "variance",
                    {
                        "measured": (layers, list(v)),
                        "claimed (1/3)": (layers, [I4_TARGET] * I4_DEPTH),
                        "(1/3)^layer": (layers, [I4_TARGET**i for i in range(1, I4_DEPTH + 1)]),
                    },
                    logy=True,
                ),
            ),
        )
