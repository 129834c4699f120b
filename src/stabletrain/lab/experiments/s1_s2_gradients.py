"""Claims S1 and S2: gradients over depth are products of per-layer factors; ReLU keeps them ~1.

Both read, in a deep MLP of width 128 on digits, the std of the gradient at every hidden
Linear layer's output (backward from a standard normal probe at the output, with
:func:`stabletrain.lab._common.layer_signals`), and compare the first hidden layer with the last.

S1 also predicts the per-layer factor from mean-field theory (Poole et al. 2016, "Exponential
expressivity in deep neural networks through transient chaos"; Schoenholz et al. 2017, "Deep
Information Propagation"): with ``σ_w² = fan_in · Var(w)``, ``σ_b² = Var(b)`` and
pre-activations ``z_l ~ N(0, q_l)``,

    q_{l+1} = σ_w² · E[f(z_l)²] + σ_b²,        ‖δ_l‖ / ‖δ_{l+1}‖ ≈ sqrt(σ_w² · E[f'(z_l)²]),

the expectations computed by the quadrature of :func:`stabletrain.init.gain` (its backward gain
of ``z -> f(√q·z)`` is ``1 / sqrt(q · E[f'(√q·z)²])``). Backprop multiplies one such factor per
layer: below 1 the gradient vanishes geometrically, above 1 it explodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from stabletrain import init, models
from stabletrain.lab import verdicts
from stabletrain.lab._common import LayerSignal, digits, layer_signals
from stabletrain.lab._init_common import Scheme, init_linears_, per_layer_factor, profile_figure
from stabletrain.lab._stab_common import fan_in_normal, scaled_he
from stabletrain.lab.experiment import Context, Result, Table, Verdict, experiment

WIDTH = 128
# "Vanished": the gradient at the first hidden layer is below 1% of the last one's; "exploded":
# above 100x. Over 20 layers that is a factor below 0.79 or above 1.27 per layer.
VANISHED, EXPLODED = 1e-2, 1e2
# "Roughly constant": within 10x over the whole depth (He + ReLU measures 0.9 at depth 50).
FLAT_DECADES = 1.0
# The measured per-layer factor agrees with the mean-field prediction within 5% (finite width
# 128 and a finite batch scatter it by ~1-2%).
MEAN_FIELD_TOL = 0.05

Expect = Literal["vanish", "explode", "flat"]
_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
}


@dataclass(frozen=True)
class _Profile:
    label: str
    signals: list[LayerSignal]  # hidden layers only

    @property
    def ratio(self) -> float:
        """Gradient std at the first hidden layer / at the last hidden layer."""
        return self.signals[0].backward_std / self.signals[-1].backward_std

    @property
    def factor(self) -> float:
        """Per-layer factor of the gradient going backward (geometric mean, layer L -> 1)."""
        return per_layer_factor([s.backward_std for s in reversed(self.signals)])


def _depth_batch(ctx: Context) -> tuple[int, torch.Tensor]:
    depth = ctx.pick(20, 50)
    x = digits(ctx.seed).x_train[: ctx.pick(256, 512)]  # (B, 64), standardized
    return depth, x


def _profile(model: nn.Module, x: torch.Tensor, label: str, ctx: Context) -> _Profile:
    return _Profile(label, layer_signals(model, x, generator=ctx.generator(3))[:-1])


def _second_moments(f: Callable[[torch.Tensor], torch.Tensor], q: float) -> tuple[float, float]:
    """``(E[f(z)²], E[f'(z)²])`` for ``z ~ N(0, q)``, by :func:`stabletrain.init.gain`."""
    root = math.sqrt(q)

    def scaled(z: torch.Tensor) -> torch.Tensor:
        return f(root * z)

    forward = init.gain(scaled, "forward")
    backward = init.gain(scaled, "backward")
    return 1.0 / forward**2, 1.0 / (q * backward**2)


def mean_field_factors(model: nn.Module, x: torch.Tensor, activation: str) -> list[float]:
    """Predicted backward factors ``‖δ_l‖/‖δ_{l+1}‖`` for hidden layers ``l = 1 .. L−1``.

    ``σ_w²`` and ``σ_b²`` are read from each layer's actual weights (``fan_in · mean(W²)``,
    ``mean(b²)``), ``q_1`` from the input's second moment.
    """
    f = _FUNCTIONS[activation]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]

    def sigmas(layer: nn.Linear) -> tuple[float, float]:
        w2 = float(layer.weight.detach().double().pow(2).mean()) * layer.in_features
        b2 = 0.0 if layer.bias is None else float(layer.bias.detach().double().pow(2).mean())
        return w2, b2

    w2, b2 = sigmas(linears[0])
    q = w2 * float(x.double().pow(2).mean()) + b2
    factors = []
    for layer in linears[1:-1]:  # hidden -> hidden; the head is not between two hidden layers
        w2, b2 = sigmas(layer)
        f2, fp2 = _second_moments(f, q)
        factors.append(math.sqrt(w2 * fp2))
        q = w2 * f2 + b2
    return factors


def _geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _direction(ratio: float, expect: Expect) -> Verdict:
    if expect == "vanish":
        return verdicts.at_most(ratio, VANISHED)
    if expect == "explode":
        return verdicts.at_least(ratio, EXPLODED)
    return verdicts.at_most(abs(math.log10(ratio)), FLAT_DECADES)


@dataclass(frozen=True)
class _S1Case:
    label: str
    activation: str
    scheme: str | Scheme
    expect: Expect


S1_CASES = (
    _S1Case("sigmoid, Xavier", "sigmoid", "xavier_normal", "vanish"),
    _S1Case("tanh, standard U(±1/√n)", "tanh", "standard", "vanish"),
    _S1Case("tanh, 3x Xavier std", "tanh", fan_in_normal(9.0), "explode"),
    _S1Case("ReLU, 1.5x He std", "relu", scaled_he(1.5), "explode"),
    _S1Case("ReLU, He (control)", "relu", "he_normal", "flat"),
)


@experiment("S1")
def gradient_factors(ctx: Context) -> Result:
    depth, x = _depth_batch(ctx)
    rows, checks, mechanism, profiles = [], [], [], {}
    for case in S1_CASES:
        model = models.mlp(x.shape[1], 10, depth, WIDTH, activation=case.activation)
        init_linears_(model, case.scheme, ctx.generator(1))
        profile = _profile(model, x, case.label, ctx)
        factors = mean_field_factors(model, x, case.activation)
        predicted = _geometric_mean(factors)
        checks.append(_direction(profile.ratio, case.expect))
        mechanism.append(verdicts.close_to(profile.factor, predicted, rel_tol=MEAN_FIELD_TOL))
        profiles[case.label] = profile.signals
        rows.append(
            (case.label, case.expect, profile.ratio, profile.factor, predicted, math.prod(factors))
        )
    direction = verdicts.weakest(checks)
    worst_fit = max(mechanism, key=lambda v: v.measured)
    verdict = direction
    if direction.outcome == "holds" and worst_fit.outcome != "holds":
        verdict = Verdict(
            "holds with caveat",
            direction.measured,
            direction.threshold,
            f"{direction.rule}; caveat: mean-field fit off by {worst_fit.measured:.0%}",
        )
    by = {r[0]: r for r in rows}
    sig, tanh_std = by[S1_CASES[0].label], by[S1_CASES[1].label]
    tanh_big, relu_big, he = by[S1_CASES[2].label], by[S1_CASES[3].label], by[S1_CASES[4].label]
    return Result(
        verdict=verdict,
        key_number=(
            f"layer-1/layer-{depth} gradient: sigmoid {sig[2]:.1e} (x{sig[3]:.3f}/layer), "
            f"1.5x He ReLU {relu_big[2]:.1e} (x{relu_big[3]:.3f}/layer)"
        ),
        explanation=(
            "Claim: gradients vanish in deep networks when backprop multiplies many factors "
            "below 1 (sigmoid/tanh), and explode when they are above 1. Depth-"
            f"{depth} MLPs of width {WIDTH} on digits, biases 0; the gradient std at each "
            "hidden layer, backward from a random probe at the output. Each layer multiplies "
            "the gradient by sqrt(σ_w²·E[f'(z)²]), predicted by mean-field theory from the "
            "weights' variance and the pre-activations' spread. Sigmoid + Xavier: "
            f"measured {sig[3]:.3f} per layer, predicted {sig[4]:.3f} (σ' <= 1/4), so "
            f"layer 1 gets {sig[2]:.1e} of the last layer's gradient. Tanh with the standard "
            f"U(±1/√n) init: {tanh_std[3]:.3f} (predicted {tanh_std[4]:.3f}; σ_w² = 1/3), "
            f"ratio {tanh_std[2]:.1e}. Factors above 1 explode: tanh with 3x Xavier's std "
            f"(the chaotic regime) {tanh_big[3]:.3f} per layer (predicted {tanh_big[4]:.3f}), "
            f"ratio {tanh_big[2]:.1e}; ReLU with 1.5x He's std {relu_big[3]:.3f} (predicted "
            f"{relu_big[4]:.3f}), ratio {relu_big[2]:.1e}. Control: ReLU + He, factor "
            f"{he[3]:.3f}, ratio {he[2]:.2f}. Bounds: vanished <= {VANISHED:g}, exploded >= "
            f"{EXPLODED:g}, flat within {10**FLAT_DECADES:g}x; largest deviation from the "
            f"mean-field factor {worst_fit.measured:.1%} (tolerance {MEAN_FIELD_TOL:.0%}). Note "
            "that tanh is not doomed: with Xavier's variance it sits near the edge of chaos and "
            "loses only a few percent per layer (claim S2's table)."
        ),
        tables=(
            Table(
                "Gradient over depth: measured against the mean-field factor",
                (
                    "setting",
                    "expected",
                    f"grad std layer 1 / layer {depth}",
                    "measured factor per layer",
                    "mean-field factor",
                    f"mean-field ratio layer 1 / layer {depth}",
                ),
                tuple(rows),
            ),
        ),
        figures=(profile_figure("Gradient std over depth", profiles, what="backward"),),
    )


@dataclass(frozen=True)
class _S2Case:
    label: str
    activation: str | type[nn.Module]
    family: Literal["saturating", "relu"]
    scheme: str | None  # None: auto_init's choice for the activation (He or Xavier)


S2_CASES = (
    _S2Case("sigmoid (Xavier)", "sigmoid", "saturating", None),
    _S2Case("tanh (Xavier)", "tanh", "saturating", None),
    _S2Case("ReLU (He)", "relu", "relu", None),
    _S2Case("LeakyReLU 0.01 (He)", "leaky_relu", "relu", None),
    _S2Case("PReLU 0.25 (He)", nn.PReLU, "relu", None),
    _S2Case("ReLU with Xavier (mismatched)", "relu", "relu", "xavier_normal"),
    _S2Case("ReLU with standard U(±1/√n)", "relu", "relu", "standard"),
)


@experiment("S2")
def relu_gradients(ctx: Context) -> Result:
    depth, x = _depth_batch(ctx)
    profiles: dict[str, _Profile] = {}
    for case in S2_CASES:
        ctx.seed_all(1)
        model = models.mlp(x.shape[1], 10, depth, WIDTH, activation=case.activation)
        if case.scheme is None:  # the init the tutorials pair with the activation
            init.auto_init(model, x, calibrate_layers=False, generator=ctx.generator(1))
        else:
            init_linears_(model, case.scheme, ctx.generator(1))
        profiles[case.label] = _profile(model, x, case.label, ctx)
    matched = [c for c in S2_CASES if c.scheme is None]
    relu_family = [profiles[c.label] for c in matched if c.family == "relu"]
    worst = max(abs(math.log10(p.ratio)) for p in relu_family)
    sigmoid = profiles[S2_CASES[0].label]
    strict = verdicts.weakest(
        [verdicts.at_most(worst, FLAT_DECADES), verdicts.at_most(sigmoid.ratio, VANISHED)]
    )
    mismatched = [profiles[c.label] for c in S2_CASES if c.scheme is not None]
    worst_mismatched = min(p.ratio for p in mismatched)
    verdict = Verdict(strict.outcome, worst, FLAT_DECADES, strict.rule)
    if strict.outcome == "holds" and worst_mismatched <= VANISHED:
        verdict = Verdict(
            "holds with caveat",
            worst,
            FLAT_DECADES,
            f"ReLU family within {FLAT_DECADES:g} decade(s) and sigmoid <= {VANISHED:g}; "
            f"caveat: a mismatched init makes ReLU vanish too ({worst_mismatched:.1e})",
        )
    rows = tuple(
        (c.label, "matched" if c.scheme is None else "mismatched", p.ratio, p.factor)
        for c, p in ((c, profiles[c.label]) for c in S2_CASES)
    )
    tanh = profiles[S2_CASES[1].label]
    xavier_relu, standard_relu = mismatched
    return Result(
        verdict=verdict,
        key_number=(
            f"layer-1/layer-{depth} gradient: ReLU family within {10**worst:.2g}x, sigmoid "
            f"{sigmoid.ratio:.1e}"
        ),
        explanation=(
            "Claim: ReLU and its variants (LeakyReLU, PReLU) avoid the vanishing of saturating "
            f"activations. Depth-{depth} MLPs of width {WIDTH} on digits, the same model with "
            "only the activation swapped, each with the init the tutorials pair with it "
            "(stabletrain.auto_init: Xavier for sigmoid/tanh, He with the exact gain for the "
            "ReLU family). The gradient at layer 1 relative to the last hidden layer: "
            + ", ".join(f"{c.label} {profiles[c.label].ratio:.3g}" for c in matched)
            + f". ReLU's slope is 1 wherever a unit is active, so with He's σ_w² = 2 the "
            f"per-layer factor is sqrt(2·1/2) = 1; sigmoid's slope is at most 1/4 "
            f"({sigmoid.factor:.3f} per layer). Tanh with Xavier loses {1 - tanh.factor:.1%} "
            f"per layer (ratio {tanh.ratio:.2g}): it vanishes far less than sigmoid. Caveat: "
            "the activation alone does not do it. The same ReLU network with Xavier's variance "
            f"(σ_w² = 1) loses 1/√2 per layer ({xavier_relu.factor:.3f}, ratio "
            f"{xavier_relu.ratio:.1e}), and with the standard U(±1/√n) init, PyTorch's "
            f"default for Linear weights ({standard_relu.factor:.3f}, ratio "
            f"{standard_relu.ratio:.1e}): ReLU avoids vanishing gradients only with He's "
            f"scale. Bounds: ReLU family within {10**FLAT_DECADES:g}x, sigmoid <= {VANISHED:g}."
        ),
        tables=(
            Table(
                "Gradient over depth, activation swapped",
                (
                    "activation (init)",
                    "init",
                    f"grad std layer 1 / layer {depth}",
                    "factor per layer",
                ),
                rows,
            ),
        ),
        figures=(
            profile_figure(
                "Gradient std over depth by activation",
                {label: p.signals for label, p in profiles.items()},
                what="backward",
            ),
        ),
    )
