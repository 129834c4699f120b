"""P-GLOROT2010: Glorot & Bengio (2010), standard vs normalized init in a 5-layer tanh network.

"Understanding the difficulty of training deep feedforward neural networks" (AISTATS 2010),
Section 4.2 and Figures 6-8: at initialization, with the standard init U(±1/√n), activations
shrink going up and back-propagated gradients shrink going down, while the weight gradients
stay about the same at every layer; with the normalized init U(±√6/√(n_in+n_out)) activations
and back-propagated gradients stay about the same across layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from stabletrain import models
from stabletrain.lab import verdicts
from stabletrain.lab._common import digits, layer_signals
from stabletrain.lab._init_common import init_linears_
from stabletrain.lab.estimate import Estimate, over
from stabletrain.lab.experiment import Context, Figure, Table, Verdict, experiment
from stabletrain.lab.staged import Explanation, Staged, measured

HIDDEN_LAYERS = 5  # the paper's depth
# "About the same across layers": the smallest per-layer std is at least half the largest
# (a factor 2 over 5 layers); the caveat allows a factor 4.
SAME, SAME_CAVEAT = 0.5, 0.25
# "Shrinks": at most 0.3 of layer 1's value after 4 layers; the linear-regime prediction is
# (1/√3)^4 = 0.11 for a tanh layer with Var(w) = 1/(3 n_in).
SHRINKS = 0.3
SCHEMES = {"standard U(±1/√n)": "standard", "normalized (Xavier)": "xavier_uniform"}
STANDARD, NORMALIZED = SCHEMES

Profile = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class GlorotMeasurements:
    """Per-layer stds at init under both schemes, and the ratios the verdict compares."""

    act_drop: float = measured("ratio", "standard init: activation std, layer 5 / layer 1")
    grad_drop: float = measured("ratio", "standard init: back-prop gradient std, layer 1 / 5")
    standard_wgrad_same: float = measured("ratio", "standard init: weight-gradient std min/max")
    normalized_act_same: float = measured("ratio", "normalized init: activation std min/max")
    normalized_grad_same: float = measured("ratio", "normalized init: back-prop grad std min/max")
    standard: Profile = ((), (), ())  # (activations, back-prop gradients, weight gradients)
    normalized: Profile = ((), (), ())
    setup: str = ""


def _profiles(ctx: Context, scheme: str, width: int, batch: int) -> Profile:
    """Per hidden layer: activation std (tanh outputs), back-propagated gradient std (w.r.t.
    the pre-activations) and weight-gradient std, for the cross-entropy of a digits batch."""
    data = digits(ctx.seed)
    model = models.mlp(data.n_features, data.n_classes, HIDDEN_LAYERS, width, activation="tanh")
    init_linears_(model, scheme, ctx.generator(1))
    x, y = data.x_train[:batch], data.y_train[:batch]
    acts = layer_signals(model, x, layer_types=(nn.Tanh,), target=y)
    pre = layer_signals(model, x, target=y)[:HIDDEN_LAYERS]  # the head is not a hidden layer
    model.zero_grad(set_to_none=True)
    torch.autograd.backward(F.cross_entropy(model(x), y))
    hidden = [m for m in model if isinstance(m, nn.Linear)][:HIDDEN_LAYERS]
    weight_grads = [float(m.weight.grad.std()) for m in hidden if m.weight.grad is not None]
    return (
        tuple(a.forward_std for a in acts),
        tuple(p.backward_std for p in pre),
        tuple(weight_grads),
    )


def _same(values: Sequence[float]) -> float:
    """min / max over layers: 1 when every layer has the same std."""
    return min(values) / max(values)


def _mean_profile(ms: Sequence[GlorotMeasurements], scheme: str) -> Profile:
    """The per-layer stds averaged over the seeds."""
    profiles = [m.standard if scheme == STANDARD else m.normalized for m in ms]
    return tuple(  # type: ignore[return-value]
        tuple(sum(p[k][i] for p in profiles) / len(profiles) for i in range(HIDDEN_LAYERS))
        for k in range(3)
    )


@experiment("P-GLOROT2010")
class Glorot2010(Staged[GlorotMeasurements]):
    """Per-layer stds of a 5-layer tanh MLP at init, standard vs normalized (Glorot 2010, 4.2).

    Every seed draws its own init and digits batch (3 seeds quick, 5 full); each ratio is
    decided on its interval over the seeds.
    """

    def measure(self, ctx: Context) -> GlorotMeasurements:
        width, batch = ctx.pick(256, 1000), ctx.pick(512, 1437)
        std = _profiles(ctx, SCHEMES[STANDARD], width, batch)
        xav = _profiles(ctx, SCHEMES[NORMALIZED], width, batch)
        return GlorotMeasurements(
            act_drop=std[0][-1] / std[0][0],
            grad_drop=std[1][0] / std[1][-1],
            standard_wgrad_same=_same(std[2]),
            normalized_act_same=_same(xav[0]),
            normalized_grad_same=_same(xav[1]),
            standard=std,
            normalized=xav,
            setup=f"{HIDDEN_LAYERS} tanh layers of width {width} on a batch of {batch} digits",
        )

    def decide(self, ms: Sequence[GlorotMeasurements]) -> Verdict:
        return verdicts.weakest(
            [
                verdicts.at_most(over(ms, "act_drop"), SHRINKS),
                verdicts.at_most(over(ms, "grad_drop"), SHRINKS),
                verdicts.at_least(over(ms, "standard_wgrad_same"), SAME, caveat=SAME_CAVEAT),
                verdicts.at_least(over(ms, "normalized_act_same"), SAME, caveat=SAME_CAVEAT),
                verdicts.at_least(over(ms, "normalized_grad_same"), SAME, caveat=SAME_CAVEAT),
            ]
        )

    def explain(self, ms: Sequence[GlorotMeasurements], verdict: Verdict) -> Explanation:
        act_drop = Estimate.of(m.act_drop for m in ms).value
        std, xav = _mean_profile(ms, STANDARD), _mean_profile(ms, NORMALIZED)
        text = (
            "Paper: Glorot & Bengio (2010) find, at initialization of a 5-hidden-layer tanh "
            "network, that with the standard init U(±1/√n) activations shrink going up and "
            "back-propagated gradients shrink going down while weight gradients stay about "
            "constant, and that their normalized init keeps activations and gradients about "
            f"constant. Here: {ms[0].setup} (the paper: width 1000 on Shapeset-3x2), "
            f"cross-entropy gradients, {len(ms)} seed(s). Standard init: activation std "
            f"{std[0][0]:.3f} at layer 1, {std[0][-1]:.3f} at layer 5 (ratio "
            f"{over(ms, 'act_drop').describe()}, bound {SHRINKS}); back-propagated gradient std "
            f"{std[1][-1]:.2e} at layer 5, {std[1][0]:.2e} at layer 1 (ratio "
            f"{over(ms, 'grad_drop').describe()}); weight-gradient std between "
            f"{min(std[2]):.2e} and {max(std[2]):.2e} (min/max "
            f"{over(ms, 'standard_wgrad_same').describe()}, needed {SAME}): the "
            "activations' shrinkage and the gradients' growth cancel in the product, as the "
            f"paper's analysis predicts. Normalized init: activations {xav[0][0]:.3f} to "
            f"{xav[0][-1]:.3f}, back-propagated gradients {xav[1][-1]:.2e} to {xav[1][0]:.2e} "
            f"(min/max {over(ms, 'normalized_act_same').describe()} and "
            f"{over(ms, 'normalized_grad_same').describe()}, needed "
            f"{SAME}). The standard init loses {act_drop ** (1 / (HIDDEN_LAYERS - 1)):.3f} per "
            "layer (1/√3 = 0.577 in the linear regime). The paper's histograms (Figures 6-8) "
            "are replaced by stds; the sizes are smaller, the directions are the ones "
            f"compared. Verdict: {verdict.outcome}."
        )
        key = (
            f"standard init, layer 5 / layer 1: activations {act_drop:.2f}, gradients (layer 1 "
            f"/ layer 5) {Estimate.of(m.grad_drop for m in ms).value:.2f}; normalized: "
            f"{Estimate.of(m.normalized_act_same for m in ms).value:.2f}, "
            f"{Estimate.of(m.normalized_grad_same for m in ms).value:.2f} (min/max)"
        )
        return Explanation(key, text, (_table(std, xav),), _figures(std, xav))


def _table(std: Profile, xav: Profile) -> Table:
    rows = tuple(
        (label, i + 1, p[0][i], p[1][i], p[2][i])
        for label, p in ((STANDARD, std), (NORMALIZED, xav))
        for i in range(HIDDEN_LAYERS)
    )
    return Table(
        "Per-layer std at initialization (cross-entropy gradients, one digits batch; mean "
        "over seeds)",
        ("init", "layer", "activation", "back-propagated gradient", "weight gradient"),
        rows,
    )


def _figures(std: Profile, xav: Profile) -> tuple[Figure, ...]:
    layers = [float(i) for i in range(1, HIDDEN_LAYERS + 1)]
    titles = (
        ("Activation std per layer (Glorot & Bengio 2010, Fig. 6)", "std of tanh output"),
        ("Back-propagated gradient std per layer (Fig. 7)", "std of dCost/dz"),
        ("Weight-gradient std per layer (Fig. 8)", "std of dCost/dW"),
    )
    return tuple(
        Figure(
            title,
            "layer",
            ylabel,
            {STANDARD: (layers, list(std[k])), NORMALIZED: (layers, list(xav[k]))},
            logy=True,
        )
        for k, (title, ylabel) in enumerate(titles)
    )
